//! Streaming usage events into the store: each file is read from where the last run stopped (its
//! cursor: device, inode, offset and a checksum of its head), in batches of checked events, with
//! the reader's `file:line` messages. A file rotated or truncated under the same name is noticed
//! and read from the start (the store drops what it already holds); a copy under another name is
//! known by its head. Lines are parsed on one thread while the store writes on another, so
//! memory stays bounded by a few batches whatever the file's size.

use super::ingest::{parse_line, Input, MAX_PROBLEMS};
use super::UsageError;
use crate::store::{SourceCursor, UsageEvent};
use sha2::{Digest, Sha256};
use std::io::{Read, Seek, SeekFrom};

/// Events a batch holds (one store transaction).
pub const BATCH: usize = 100_000;

/// Bytes of a file's head that identify it.
pub const HEAD: u64 = 4096;

/// A batch of lines read, and where the source stands after it.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<UsageEvent>,
    pub rejected: Vec<String>,
    /// Rejected lines in the batch (every one counted, messages capped by the caller).
    pub rejected_count: u64,
    pub lines: u64,
    /// The cursor after the batch (files only).
    pub cursor: Option<SourceCursor>,
}

/// How a file source is read this time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub start: u64,
    pub lines_before: u64,
    /// What the reader noticed: resumed, unchanged, rotated, truncated, a known copy.
    pub note: Option<String>,
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub head: i64,
    pub head_len: u64,
}

/// The first 8 bytes of the SHA-256 of `b`, as the store keeps a head checksum.
fn head_sum(b: &[u8]) -> i64 {
    let d = Sha256::digest(b);
    i64::from_le_bytes(d[..8].try_into().expect("8 bytes"))
}

fn read_head(f: &mut std::fs::File, n: u64) -> std::io::Result<Vec<u8>> {
    f.seek(SeekFrom::Start(0))?;
    let mut buf = Vec::with_capacity(n as usize);
    f.by_ref().take(n).read_to_end(&mut buf)?;
    Ok(buf)
}

#[cfg(unix)]
fn dev_ino(m: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (m.dev(), m.ino())
}

#[cfg(not(unix))]
fn dev_ino(_m: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

/// Decides where to start reading `path`, given its cursor under the same name (`by_path`),
/// the cursor last saved for the same file under any name (`by_file(dev, ino)`: a log renamed
/// by rotation) and the cursor of a source with the same head (`by_head`).
pub fn plan(
    f: &mut std::fs::File,
    by_path: Option<&SourceCursor>,
    by_file: impl FnOnce(u64, u64) -> Option<SourceCursor>,
    by_head: impl FnOnce(i64, u64) -> Option<SourceCursor>,
) -> std::io::Result<Plan> {
    let meta = f.metadata()?;
    let (dev, ino) = dev_ino(&meta);
    let size = meta.len();
    let head_bytes = read_head(f, HEAD)?;
    let head = head_sum(&head_bytes);
    let head_len = head_bytes.len() as u64;
    let mut p = Plan {
        start: 0,
        lines_before: 0,
        note: None,
        dev,
        ino,
        size,
        head,
        head_len,
    };
    let same_head = |c: &SourceCursor| -> bool {
        c.head_len <= head_len && head_sum(&head_bytes[..c.head_len as usize]) == c.head
    };
    if let Some(c) = by_path {
        if c.dev == dev && c.ino == ino && same_head(c) && size >= c.offset {
            p.start = c.offset;
            p.lines_before = c.lines;
            p.note = Some(if size == c.offset {
                "unchanged since the last read".into()
            } else {
                format!("resumed at byte {} (line {})", c.offset, c.lines + 1)
            });
            return Ok(p);
        }
        if c.dev == dev && c.ino == ino && size < c.offset {
            p.note = Some(format!(
                "truncated (now {size} bytes, {} were read): read from the start",
                c.offset
            ));
            return Ok(p);
        }
        // Another file under this name: maybe one read before under another name (the live
        // file renamed NAME.1 by log rotation, where NAME.1 was another file) resumes there.
        if let Some(h) = by_file(dev, ino).filter(|h| h.source != c.source) {
            if same_head(&h) && size >= h.offset {
                p.start = h.offset;
                p.lines_before = h.lines;
                p.note = Some(format!(
                    "renamed from {}: resumed at byte {} (line {})",
                    h.source,
                    h.offset,
                    h.lines + 1
                ));
                return Ok(p);
            }
        }
        p.note = Some("rotated (another file under this name): read from the start".to_string());
        return Ok(p);
    }
    // A name never read: maybe a file read before under another name (renamed by rotation).
    if let Some(h) = by_file(dev, ino) {
        if same_head(&h) && size >= h.offset {
            p.start = h.offset;
            p.lines_before = h.lines;
            p.note = Some(format!(
                "renamed from {}: resumed at byte {} (line {})",
                h.source,
                h.offset,
                h.lines + 1
            ));
            return Ok(p);
        }
    }
    if let Some(c) = by_head(head, head_len) {
        if size >= c.offset {
            p.start = c.offset;
            p.lines_before = c.lines;
            p.note = Some(format!(
                "the same file as {} (same first {} bytes): resumed at byte {}",
                c.source, c.head_len, c.offset
            ));
        }
    }
    Ok(p)
}

/// Reads `input` from `start` (after `lines_before` lines), handing `sink` batches of at most
/// [`BATCH`] events; a final line without a newline is read only when it is a whole event (a
/// line still being written is left for the next read). Parsing runs on its own thread.
#[allow(clippy::too_many_arguments)]
pub fn read<E>(
    input: &Input,
    mut file: Option<std::fs::File>,
    plan: Option<&Plan>,
    name: &str,
    mut sink: impl FnMut(Batch) -> Result<(), E>,
) -> Result<(), ReadError<E>> {
    let (tx, rx) = crossbeam_channel::bounded::<std::io::Result<Batch>>(2);
    let start = plan.map_or(0, |p| p.start);
    let lines_before = plan.map_or(0, |p| p.lines_before);
    let base_cursor = plan.map(|p| SourceCursor {
        source: name.to_string(),
        dev: p.dev,
        ino: p.ino,
        offset: p.start,
        lines: p.lines_before,
        head: p.head,
        head_len: p.head_len,
        size: p.size,
    });
    std::thread::scope(|sc| {
        let producer = sc.spawn(move || {
            let reader: Box<dyn Read + Send> = match (input, file.take()) {
                (Input::File(_), Some(mut f)) => {
                    if let Err(e) = f.seek(SeekFrom::Start(start)) {
                        let _ = tx.send(Err(e));
                        return;
                    }
                    Box::new(f)
                }
                _ => Box::new(std::io::stdin()),
            };
            produce(reader, name, start, lines_before, base_cursor, &tx);
        });
        let mut failed: Option<ReadError<E>> = None;
        for b in rx.iter() {
            if failed.is_some() {
                continue; // drain so the producer ends
            }
            match b {
                Ok(b) => {
                    if let Err(e) = sink(b) {
                        failed = Some(ReadError::Sink(e));
                    }
                }
                Err(e) => failed = Some(ReadError::Io(e)),
            }
        }
        let _ = producer.join();
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    })
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError<E> {
    Io(std::io::Error),
    /// The sink (the store) failed.
    Sink(E),
}

impl<E> ReadError<E> {
    pub fn into_usage(self, name: &str) -> Result<E, UsageError> {
        match self {
            ReadError::Io(source) => Err(UsageError::Read {
                path: name.into(),
                source,
            }),
            ReadError::Sink(e) => Ok(e),
        }
    }
}

fn produce(
    mut r: Box<dyn Read + Send>,
    name: &str,
    start: u64,
    lines_before: u64,
    mut cursor: Option<SourceCursor>,
    tx: &crossbeam_channel::Sender<std::io::Result<Batch>>,
) {
    const BLOCK: usize = 4 << 20;
    let mut buf: Vec<u8> = Vec::with_capacity(BLOCK);
    let mut carry: Vec<u8> = Vec::new();
    let mut offset = start; // bytes consumed (whole lines)
    let mut line_no = lines_before;
    // a whole batch's room at once: growing it by doubling copies every event again
    let fresh = || Batch {
        events: Vec::with_capacity(BATCH),
        ..Batch::default()
    };
    let mut batch = fresh();
    let mut batch_problems = 0usize;
    loop {
        buf.clear();
        buf.append(&mut carry);
        let want = BLOCK.max(buf.len() * 2) - buf.len();
        let n = match (&mut r).take(want as u64).read_to_end(&mut buf) {
            Ok(n) => n,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        let eof = n < want;
        let end = match memchr::memrchr(b'\n', &buf) {
            Some(i) => i + 1,
            None if !eof => {
                carry = std::mem::take(&mut buf);
                continue;
            }
            None => 0,
        };
        let (whole, rest) = buf.split_at(end);
        for raw in whole.split_inclusive(|&b| b == b'\n') {
            offset += raw.len() as u64;
            line_no += 1;
            take_line(raw, name, line_no, &mut batch, &mut batch_problems);
            batch.lines += 1;
            if batch.events.len() >= BATCH {
                if let Some(c) = cursor.as_mut() {
                    c.offset = offset;
                    c.lines = line_no;
                    batch.cursor = Some(c.clone());
                }
                if tx.send(Ok(std::mem::replace(&mut batch, fresh()))).is_err() {
                    return;
                }
                batch_problems = 0;
            }
        }
        if eof {
            // a last line without a newline: read it only if it is a whole event
            if !rest.is_empty() && parse_line(rest).is_ok() {
                offset += rest.len() as u64;
                line_no += 1;
                take_line(rest, name, line_no, &mut batch, &mut batch_problems);
                batch.lines += 1;
            }
            if let Some(c) = cursor.as_mut() {
                c.offset = offset;
                c.lines = line_no;
                batch.cursor = Some(c.clone());
            }
            let _ = tx.send(Ok(batch));
            return;
        }
        carry.extend_from_slice(rest);
    }
}

fn take_line(raw: &[u8], name: &str, line_no: u64, batch: &mut Batch, problems: &mut usize) {
    let line = raw.strip_suffix(b"\n").unwrap_or(raw);
    if line.iter().all(|b| b.is_ascii_whitespace()) {
        return;
    }
    match parse_line(line) {
        Ok(e) => batch.events.push(e),
        Err(msg) => {
            batch.rejected_count += 1;
            if *problems < MAX_PROBLEMS {
                *problems += 1;
                batch.rejected.push(format!("{name}:{line_no}: {msg}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: u32) -> String {
        format!(
            r#"{{"ts":"2026-11-20T10:{:02}:{:02}Z","key":"erp","method":"GET","path":"/api/v1/transfers","status":200}}"#,
            i / 60,
            i % 60
        )
    }

    fn read_all(
        path: &std::path::Path,
        plan: &Plan,
    ) -> (Vec<UsageEvent>, Vec<String>, Option<SourceCursor>) {
        let f = std::fs::File::open(path).unwrap();
        let mut events = Vec::new();
        let mut problems = Vec::new();
        let mut cursor = None;
        read::<()>(
            &Input::File(path.to_path_buf()),
            Some(f),
            Some(plan),
            "f.jsonl",
            |b| {
                events.extend(b.events);
                problems.extend(b.rejected);
                cursor = b.cursor.or(cursor.take());
                Ok(())
            },
        )
        .unwrap();
        (events, problems, cursor)
    }

    #[test]
    fn a_growing_file_is_read_from_its_cursor_and_rotation_is_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f.jsonl");
        let mut text: String = (0..10).map(|i| line(i) + "\n").collect();
        text.push_str("{broken\n");
        std::fs::write(&p, &text).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let plan0 = plan(&mut f, None, |_, _| None, |_, _| None).unwrap();
        assert_eq!(plan0.start, 0);
        let (ev, problems, c) = read_all(&p, &plan0);
        assert_eq!(ev.len(), 10);
        assert_eq!(
            problems,
            ["f.jsonl:11: not valid JSON: key must be a string at line 1 column 2"]
        );
        let c = c.unwrap();
        assert_eq!((c.offset, c.lines), (text.len() as u64, 11));
        // grows, with a line still being written at the end
        let more = format!("{}\n{}", line(20), &line(21)[..30]);
        std::fs::write(&p, format!("{text}{more}")).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let plan1 = plan(&mut f, Some(&c), |_, _| None, |_, _| None).unwrap();
        assert_eq!(plan1.start, c.offset);
        assert!(plan1
            .note
            .as_deref()
            .unwrap()
            .starts_with("resumed at byte"));
        let (ev, problems, c1) = read_all(&p, &plan1);
        assert_eq!(ev.len(), 1, "{problems:?}");
        assert!(problems.is_empty());
        let c1 = c1.unwrap();
        assert_eq!(c1.lines, 12);
        // truncated
        std::fs::write(&p, line(1) + "\n").unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let plan2 = plan(&mut f, Some(&c1), |_, _| None, |_, _| None).unwrap();
        assert_eq!(plan2.start, 0);
        let note = plan2.note.unwrap();
        assert!(
            note.starts_with("truncated") || note.starts_with("rotated"),
            "{note}"
        );
        // rotated: a new file under the same name
        std::fs::remove_file(&p).unwrap();
        std::fs::write(&p, (30..40).map(|i| line(i) + "\n").collect::<String>()).unwrap();
        let mut f = std::fs::File::open(&p).unwrap();
        let plan3 = plan(&mut f, Some(&c1), |_, _| None, |_, _| None).unwrap();
        assert_eq!(plan3.start, 0);
        assert!(plan3.note.unwrap().starts_with("rotated"));
    }
}
