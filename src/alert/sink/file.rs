//! A directory of files for SIEM pick-up and the offline demo: one `<id>.eml` (the email) and
//! one `<id>.json` (the alert document) per alert, each written to a temporary file, synced and
//! renamed into place, so a reader never sees half a file and a resend overwrites, not doubles.

use super::{BoxFuture, Receipt, Sink, SinkError};
use crate::alert::render::AlertDoc;
use crate::config;
use std::path::{Path, PathBuf};

pub struct FileSink {
    cfg: config::FileSink,
}

impl FileSink {
    pub fn new(cfg: config::FileSink) -> Self {
        FileSink { cfg }
    }
}

/// Writes `bytes` to `dir/name` atomically (the one helper: temporary file beside it, fsync,
/// rename), owner-only: an alert holds findings.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let target = dir.join(name);
    crate::files::write_atomic(&target, bytes, 0o600).map_err(crate::files::FileError::into_io)?;
    Ok(target)
}

impl Sink for FileSink {
    fn name(&self) -> &'static str {
        "file"
    }

    fn describe(&self) -> String {
        format!("directory {}", self.cfg.dir.display())
    }

    fn send<'a>(&'a self, doc: &'a AlertDoc) -> BoxFuture<'a, Result<Receipt, SinkError>> {
        Box::pin(async move {
            let eml = super::message(doc)?.formatted();
            let json = serde_json::to_vec_pretty(doc).expect("alert documents serialize");
            let dir = self.cfg.dir.clone();
            let id = doc.id.clone();
            tokio::task::spawn_blocking(move || -> Result<Receipt, SinkError> {
                let fail = |e: std::io::Error| {
                    SinkError::Transient(format!("cannot write to {}: {e}", dir.display()))
                };
                crate::files::create_private_dir_all(&dir).map_err(fail)?;
                // The JSON last: a pick-up that keys on `.json` finds the `.eml` already there.
                let eml_path = write_atomic(&dir, &format!("{id}.eml"), &eml).map_err(fail)?;
                let json_path = write_atomic(&dir, &format!("{id}.json"), &json).map_err(fail)?;
                Ok(Receipt {
                    reply: format!("wrote {} and {}", eml_path.display(), json_path.display()),
                })
            })
            .await
            .map_err(|e| SinkError::Transient(format!("file sink task: {e}")))?
        })
    }
}
