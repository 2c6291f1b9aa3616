//! Where usage events come from: the inputs a command names (files, directories of event files
//! and their rotated copies, standard input), and opening an event file safely.

use super::super::UsageError;
use std::path::{Path, PathBuf};

/// File name endings read from a directory (and their rotated copies: `NAME.jsonl.1`,
/// `NAME.jsonl-20261204`).
pub const EVENT_FILE_EXTENSIONS: &[&str] = &["jsonl", "ndjson", "json", "log"];

/// How a directory's file is read: `(live name, order)`, where an event file is `(its name, 2)`
/// and a rotated copy of one (`NAME.EXT.N`, `NAME.EXT-DIGITS`, as logrotate names them) is
/// `(NAME.EXT, 0 or 1)`; `None`: not an event file. Rotated copies are read before the live file
/// (the oldest first), so a copy renamed away with lines not yet read resumes from the live
/// file's cursor instead of being lost or read again.
pub(super) fn event_file(name: &str) -> Option<(String, u8, i64, String)> {
    let is_event = |n: &str| {
        Path::new(n)
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| EVENT_FILE_EXTENSIONS.contains(&x))
    };
    if is_event(name) {
        return Some((name.to_string(), 2, 0, String::new()));
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if let Some((live, n)) = name.rsplit_once('.') {
        if digits(n) && is_event(live) {
            // logrotate's numbers grow with age: .2 before .1
            let n: i64 = n.parse().unwrap_or(i64::MAX);
            return Some((live.to_string(), 1, -n, String::new()));
        }
    }
    if let Some((live, date)) = name.rsplit_once('-') {
        if digits(date) && is_event(live) {
            return Some((live.to_string(), 0, 0, date.to_string()));
        }
    }
    None
}

/// Where events come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    Stdin,
    File(PathBuf),
}

impl Input {
    /// How messages name it: the path, or `<stdin>`.
    pub fn name(&self) -> String {
        match self {
            Input::Stdin => "<stdin>".to_string(),
            Input::File(p) => p.display().to_string(),
        }
    }
}

/// Expands the command-line paths: `-` is standard input, a directory gives its event files
/// (recursively, sorted), a file is read whatever its name.
pub fn inputs(paths: &[PathBuf]) -> Result<Vec<Input>, UsageError> {
    let mut out = Vec::new();
    for p in paths {
        if p.as_os_str() == "-" {
            out.push(Input::Stdin);
            continue;
        }
        let meta = std::fs::metadata(p).map_err(|source| UsageError::Read {
            path: p.clone(),
            source,
        })?;
        if meta.is_dir() {
            let mut files = Vec::new();
            walk(p, &mut files)?;
            // by directory and live name; rotated copies (oldest first) before the live file
            files.sort_by_cached_key(|f| {
                let name = f
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (f.parent().map(Path::to_path_buf), event_file(&name))
            });
            out.extend(files.into_iter().map(Input::File));
        } else if !meta.is_file() {
            return Err(UsageError::Read {
                path: p.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "is {}, not a regular file; not read (give - to read standard input)",
                        crate::files::kind_of(&meta)
                    ),
                ),
            });
        } else {
            out.push(Input::File(p.clone()));
        }
    }
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), UsageError> {
    let entries = std::fs::read_dir(dir).map_err(|source| UsageError::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for e in entries {
        let e = e.map_err(|source| UsageError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = e.path();
        if e.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let ft = e.file_type().map_err(|source| UsageError::Read {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            walk(&path, out)?;
        } else if event_file(&e.file_name().to_string_lossy()).is_some() {
            out.push(path);
        }
    }
    Ok(())
}

/// Opens an event file: a regular file only (checked on the open descriptor): a FIFO, a device
/// or a socket, even one swapped in after the listing, is refused, never read.
pub(crate) fn open_events(p: &Path) -> std::io::Result<std::fs::File> {
    match crate::files::open_regular(p) {
        Ok((f, _)) => Ok(f),
        Err(crate::files::FileError::NotRegular { kind, .. }) => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("is {kind}, not a regular file; not read (give - to read standard input)"),
        )),
        Err(crate::files::FileError::Io { source, .. }) => Err(source),
        Err(e) => Err(e.into_io()),
    }
}
