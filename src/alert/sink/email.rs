//! Email over SMTP with lettre: STARTTLS (required, never opportunistic) or implicit TLS with
//! rustls on ring; plain only to a loopback relay (the config refuses anything else). One
//! connection per delivery round; the reply to DATA is the receipt.

use super::{BoxFuture, Receipt, Sink, SinkError};
use crate::alert::render::{html, AlertDoc};
use crate::config::{self, SmtpSecurity};
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// The email of an alert: text and HTML parts, `Message-ID` from the alert id. The `.eml` of the
/// file sink is this message too.
pub fn message(doc: &AlertDoc) -> Result<Message, SinkError> {
    let from: Mailbox = doc
        .from
        .parse()
        .map_err(|e| SinkError::Setup(format!("from address {:?}: {e}", doc.from)))?;
    let mut b = Message::builder()
        .from(from)
        .subject(doc.subject.clone())
        .message_id(Some(doc.message_id.clone()))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("X-Awxguard-Alert"),
            format!("{} {} {}", doc.id, doc.kind.as_str(), doc.severity),
        ))
        .raw_header(HeaderValue::new(
            HeaderName::new_from_ascii_str("Auto-Submitted"),
            "auto-generated".into(),
        ));
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&doc.created_at) {
        b = b.date(t.into());
    }
    if doc.to.is_empty() {
        return Err(SinkError::Setup(
            "the alert has no recipient: set [alerts] fallback".into(),
        ));
    }
    for to in &doc.to {
        let m: Mailbox = to
            .parse()
            .map_err(|e| SinkError::Setup(format!("recipient {to:?}: {e}")))?;
        b = b.to(m);
    }
    b.multipart(MultiPart::alternative_plain_html(
        doc.text.clone(),
        html(doc),
    ))
    .map_err(|e| SinkError::Setup(format!("cannot build the message: {e}")))
}

/// The SMTP sink.
pub struct EmailSink {
    cfg: config::EmailSink,
}

impl EmailSink {
    pub fn new(cfg: config::EmailSink) -> Self {
        EmailSink { cfg }
    }

    fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, SinkError> {
        let c = &self.cfg;
        let tls = || -> Result<TlsParameters, SinkError> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.ca_file {
                let pem = crate::files::read_capped(
                    ca,
                    crate::files::cap::CERTIFICATES,
                    "certificate files",
                )
                .map_err(|e| SinkError::Setup(e.to_string()))?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    SinkError::Setup(format!("{} is not a PEM certificate: {e}", ca.display()))
                })?;
                // A configured CA is the only one trusted.
                b = b
                    .certificate_store(CertificateStore::None)
                    .add_root_certificate(cert);
            }
            b.build_rustls()
                .map_err(|e| SinkError::Setup(format!("TLS set-up: {e}")))
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(c.port)
            .timeout(Some(c.timeout))
            .tls(match c.security {
                SmtpSecurity::StartTls => Tls::Required(tls()?),
                SmtpSecurity::Tls => Tls::Wrapper(tls()?),
                SmtpSecurity::Plain => {
                    if !config::is_loopback_host(&c.host) {
                        return Err(SinkError::Setup(format!(
                            "plain SMTP is allowed only to loopback, not {}",
                            c.host
                        )));
                    }
                    Tls::None
                }
            });
        if let Some(name) = &c.hello_name {
            b = b.hello_name(ClientId::Domain(name.clone()));
        }
        if let (Some(user), Some(pw)) = (&c.username, &c.password) {
            let secret = pw
                .resolve()
                .map_err(|e| SinkError::Setup(format!("SMTP password ({pw}): {e}")))?;
            b = b.credentials(Credentials::new(user.clone(), secret.expose().to_string()));
        }
        Ok(b.build())
    }
}

impl Sink for EmailSink {
    fn name(&self) -> &'static str {
        "email"
    }

    fn describe(&self) -> String {
        let c = &self.cfg;
        let sec = match c.security {
            SmtpSecurity::StartTls => "STARTTLS",
            SmtpSecurity::Tls => "TLS",
            SmtpSecurity::Plain => "plain, loopback",
        };
        format!("smtp://{}:{} ({sec})", c.host, c.port)
    }

    fn send<'a>(&'a self, doc: &'a AlertDoc) -> BoxFuture<'a, Result<Receipt, SinkError>> {
        Box::pin(async move {
            let msg = message(doc)?;
            let transport = self.transport()?;
            // One deadline for the whole exchange (lettre's timeout is per read): a server that
            // trickles or never ends its replies is given up on, not waited for.
            let deadline = self.cfg.timeout.saturating_mul(3);
            let sent = match tokio::time::timeout(deadline, transport.send(msg)).await {
                Ok(r) => r,
                Err(_) => {
                    return Err(SinkError::Transient(format!(
                        "{}: no complete answer within {} s",
                        self.describe(),
                        deadline.as_secs()
                    )))
                }
            };
            match sent {
                Ok(r) => Ok(Receipt {
                    reply: format!("{} {}", r.code(), r.message().collect::<Vec<_>>().join(" "))
                        .trim()
                        .to_string(),
                }),
                Err(e) if e.is_permanent() => Err(SinkError::Rejected(format!(
                    "{}: the server refused the message: {e}",
                    self.describe()
                ))),
                Err(e) => Err(SinkError::Transient(format!("{}: {e}", self.describe()))),
            }
        })
    }
}
