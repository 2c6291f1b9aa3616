//! A webhook: the alert document as a JSON POST (its `text` field makes it a Slack-compatible
//! incoming-webhook payload), with `Idempotency-Key` set to the alert id so a receiver can fold a
//! resend. HTTPS, or plain HTTP to loopback only; no redirects; the URL is never printed, since
//! chat webhook URLs carry a token.

use super::{BoxFuture, Receipt, Sink, SinkError};
use crate::alert::render::AlertDoc;
use crate::config::{self, UrlSpec};

pub struct WebhookSink {
    cfg: config::WebhookSink,
}

impl WebhookSink {
    pub fn new(cfg: config::WebhookSink) -> Self {
        WebhookSink { cfg }
    }

    fn url(&self) -> Result<String, SinkError> {
        let url = match &self.cfg.url {
            UrlSpec::Literal(u) => u.clone(),
            UrlSpec::Ref(r) => r
                .resolve()
                .map_err(|e| SinkError::Setup(format!("webhook URL ({r}): {e}")))?
                .expose()
                .trim()
                .to_string(),
        };
        config::check_webhook_url(&url)
            .map_err(|e| SinkError::Setup(format!("webhook URL {e}")))?;
        Ok(url)
    }
}

/// Scheme, host and port of a URL: how a webhook is named without its path (which may hold a
/// token).
fn origin(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit('@').next().unwrap_or(authority);
            format!("{scheme}://{host}/…")
        }
        None => "webhook".into(),
    }
}

/// The most of a webhook's answer that is read.
const MAX_REPLY: usize = 4 << 10;

/// The start of the answer's body (at most `MAX_REPLY` bytes), as text.
async fn read_reply(mut resp: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_REPLY {
        match resp.chunk().await {
            Ok(Some(c)) => body.extend_from_slice(&c[..c.len().min(MAX_REPLY - body.len())]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&body).into_owned()
}

impl Sink for WebhookSink {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn describe(&self) -> String {
        match &self.cfg.url {
            UrlSpec::Literal(u) => origin(u),
            UrlSpec::Ref(r) => format!("webhook from {r}"),
        }
    }

    fn send<'a>(&'a self, doc: &'a AlertDoc) -> BoxFuture<'a, Result<Receipt, SinkError>> {
        Box::pin(async move {
            let url = self.url()?;
            let client = reqwest::Client::builder()
                .timeout(self.cfg.timeout)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|e| SinkError::Setup(format!("HTTP client: {e}")))?;
            let resp = client
                .post(&url)
                .header("Idempotency-Key", &doc.id)
                .json(doc)
                .send()
                .await
                .map_err(|e| {
                    SinkError::Transient(format!("{}: {}", origin(&url), e.without_url()))
                })?;
            let status = resp.status();
            // At most a few KiB of the answer are read (within the timeout): a receiver that
            // streams without end costs nothing.
            let mut body = read_reply(resp).await;
            if body.len() > 300 {
                let mut cut = 300;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
                body.push('…');
            }
            let reply = format!("HTTP {} {}", status.as_u16(), body.trim())
                .trim()
                .to_string();
            if status.is_success() {
                Ok(Receipt { reply })
            } else if status.is_client_error() && status.as_u16() != 429 && status.as_u16() != 408 {
                Err(SinkError::Rejected(format!("{}: {reply}", origin(&url))))
            } else {
                Err(SinkError::Transient(format!("{}: {reply}", origin(&url))))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_hides_path_and_userinfo() {
        assert_eq!(
            super::origin("https://user:pw@hooks.example.com/services/T0/B0/secret"),
            "https://hooks.example.com/…"
        );
    }
}
