//! Where alerts go, behind one interface: email over SMTP, a webhook, a directory of files.
//! A sink either returns what the server said when it accepted the alert, or an error that
//! says why not; the outbox retries on error and marks the alert sent on acceptance.

mod email;
mod file;
mod webhook;

pub use email::{message, EmailSink};
pub use file::FileSink;
pub use webhook::WebhookSink;

use super::render::AlertDoc;
use crate::config::AlertsConfig;
use std::future::Future;
use std::pin::Pin;

/// A boxed future, so `Sink` can be used as a trait object.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the receiving end said when it accepted an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The server's words: `250 2.0.0 OK queued`, `HTTP 200 ok`, `wrote ...`.
    pub reply: String,
}

/// Why a sink did not accept an alert. Never holds a credential or a webhook URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The sink's own settings cannot work (unreadable credential or CA file, bad URL).
    #[error("{0}")]
    Setup(String),
    /// The server could not be reached, timed out or refused for now.
    #[error("{0}")]
    Transient(String),
    /// The server refused the message (SMTP 5xx, HTTP 4xx).
    #[error("{0}")]
    Rejected(String),
}

/// One place alerts are delivered to.
pub trait Sink: Send + Sync {
    /// `email`, `webhook` or `file`: the outbox keeps one delivery per alert and sink name.
    fn name(&self) -> &'static str;
    /// Where it delivers, for `alerts test` and `alerts list` (no credential, no URL token).
    fn describe(&self) -> String;
    /// Delivers one alert.
    fn send<'a>(&'a self, doc: &'a AlertDoc) -> BoxFuture<'a, Result<Receipt, SinkError>>;
}

/// The sinks `[alerts]` configures, in a fixed order (email, webhook, file).
pub fn from_config(cfg: &AlertsConfig) -> Vec<Box<dyn Sink>> {
    let mut out: Vec<Box<dyn Sink>> = Vec::new();
    if let Some(e) = &cfg.email {
        out.push(Box::new(EmailSink::new(e.clone())));
    }
    if let Some(w) = &cfg.webhook {
        out.push(Box::new(WebhookSink::new(w.clone())));
    }
    if let Some(f) = &cfg.file {
        out.push(Box::new(FileSink::new(f.clone())));
    }
    out
}
