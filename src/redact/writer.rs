//! A writer that puts everything written through it through the gate.

use super::scrub_bytes;
use super::terminal::terminal_lines;
use std::io::{self, Write};

/// A writer that scrubs what goes through it, one `write` call at a time (a log event, a
/// rendered report), and shows control characters escaped when writing for a terminal.
pub struct Scrubbing<W: Write> {
    inner: W,
    /// Escape control characters (but newlines, tabs and, if set, colour codes).
    escape: Option<bool>,
}

impl<W: Write> Scrubbing<W> {
    /// Scrubs only (files, pipes read by programs: JSON, SARIF).
    pub fn new(inner: W) -> Self {
        Scrubbing {
            inner,
            escape: None,
        }
    }

    /// Scrubs and escapes controls, keeping colour codes when `colour` (logs, human output).
    pub fn for_terminal(inner: W, colour: bool) -> Self {
        Scrubbing {
            inner,
            escape: Some(colour),
        }
    }

    pub fn into_inner(self) -> W {
        self.inner
    }
}

impl<W: Write> Write for Scrubbing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let clean = scrub_bytes(buf);
        match self.escape {
            None => self.inner.write_all(&clean)?,
            Some(colour) => {
                let text = String::from_utf8_lossy(&clean);
                self.inner
                    .write_all(terminal_lines(&text, colour).as_bytes())?;
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
