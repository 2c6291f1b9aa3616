//! The spill file: where events go while the store refuses them (locked, read-only, failing)
//! or the queue is full. JSON Lines of the usage-event contract, owner-only (0600 in a 0700
//! directory), through the redaction gate; one file per proxy process, rotated and renamed
//! `.draining` when the writer reads it back, and files left by earlier runs adopted.

use super::UsageEvent;
use chrono::Utc;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

/// The spill file: owner-only JSON Lines, one file per proxy process, in the spill directory.
#[derive(Debug)]
pub struct Spill {
    dir: PathBuf,
    name: String,
    file: Mutex<Option<File>>,
}

impl Spill {
    pub fn new(dir: &Path) -> Spill {
        let name = format!(
            "proxy-spill-{}-{}.jsonl",
            Utc::now().format("%Y%m%dT%H%M%S"),
            std::process::id()
        );
        Spill {
            dir: dir.to_path_buf(),
            name,
            file: Mutex::new(None),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(&self.name)
    }

    fn open(&self) -> std::io::Result<File> {
        crate::files::create_private_dir_all(&self.dir)?;
        let mut o = OpenOptions::new();
        o.create(true).append(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        o.open(self.path())
    }

    /// Appends events, one JSON line each, in one write.
    pub fn append(&self, events: &[UsageEvent]) -> std::io::Result<()> {
        let mut buf = Vec::with_capacity(events.len() * 256);
        for e in events {
            serde_json::to_writer(&mut buf, &e.to_json()).expect("events serialize");
            buf.push(b'\n');
        }
        // Through the redaction gate: a spill file is as private as the store it stands in for.
        let buf = crate::redact::scrub_bytes(&buf);
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if guard.is_none() {
            *guard = Some(self.open()?);
        }
        guard.as_mut().expect("opened").write_all(&buf)
    }

    /// Closes the current file so the next append starts a new one, and renames it for reading
    /// back (`<name>.<micros>.draining`).
    pub(super) fn rotate(&self) {
        let mut guard = self.file.lock().unwrap_or_else(|p| p.into_inner());
        guard.take();
        let from = self.path();
        if from.exists() {
            let to = self.dir.join(format!(
                "{}.{}.draining",
                self.name,
                Utc::now().timestamp_micros()
            ));
            if let Err(e) = std::fs::rename(&from, &to) {
                tracing::warn!("proxy: cannot rename {}: {e}", from.display());
            }
        }
    }

    /// Takes over spill files left by earlier runs (`proxy-spill-*.jsonl`, or `.draining` ones a
    /// run did not finish) untouched for `min_age`, so this writer reads them back. A second
    /// proxy's live file is younger and left to it.
    pub(super) fn adopt_leftovers(&self, min_age: Duration) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with("proxy-spill-") || name.starts_with(&self.name) {
                continue;
            }
            if !(name.ends_with(".jsonl") || name.ends_with(".draining")) {
                continue;
            }
            let old = e
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age >= min_age);
            if old {
                let to = self.dir.join(format!("{}.{name}.draining", self.name));
                if std::fs::rename(&p, &to).is_ok() {
                    tracing::info!("proxy: reading back {} left by an earlier run", p.display());
                }
            }
        }
    }

    /// This writer's files waiting to be read back, oldest first.
    pub(super) fn draining(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&self.name) && n.ends_with(".draining"))
            })
            .collect();
        files.sort();
        files
    }
}
