//! Reading blobs out of one `git cat-file --batch` and scanning them in parallel.

use super::{Git, GitError};
use crate::scan::{text_of, Match, Matcher, ScanOptions, ScanStats};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What `cat-file` gave for one requested blob.
pub(crate) enum Blob {
    Data(Vec<u8>),
    TooLarge,
    Missing,
}

/// Streams the blobs `oids` out of one `git cat-file --batch`, calling `each(index, blob)` in
/// request order. Blobs over `max` bytes are read past, not kept.
pub(crate) fn cat_file(
    git: &Git,
    oids: &[&str],
    max: u64,
    mut each: impl FnMut(usize, Blob),
) -> Result<(), GitError> {
    if oids.is_empty() {
        return Ok(());
    }
    let mut child = git
        .command()
        .args(["cat-file", "--batch", "--buffer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(GitError::Spawn)?;
    const CMD: &str = "cat-file";
    let mut stdin = child.stdin.take().expect("piped stdin");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let result = std::thread::scope(|s| {
        // Feed the ids from another thread so neither pipe can fill up and block the other.
        s.spawn(move || {
            let mut w = std::io::BufWriter::with_capacity(64 * 1024, &mut stdin);
            for oid in oids {
                if w.write_all(oid.as_bytes()).is_err() || w.write_all(b"\n").is_err() {
                    return;
                }
            }
            let _ = w.flush();
            drop(w);
            drop(stdin);
        });
        let err_reader = s.spawn(move || {
            let mut text = Vec::new();
            let _ = stderr.read_to_end(&mut text);
            text
        });
        let mut r = BufReader::with_capacity(256 * 1024, stdout);
        let mut header = Vec::new();
        for i in 0..oids.len() {
            header.clear();
            r.read_until(b'\n', &mut header)
                .map_err(|e| git.io(CMD, e))?;
            if header.is_empty() {
                let text = err_reader.join().unwrap_or_default();
                return Err(git.failure(CMD, &text));
            }
            let line = std::str::from_utf8(&header).unwrap_or("").trim_end();
            let mut parts = line.split(' ');
            let (_oid, kind, size) = (parts.next(), parts.next(), parts.next());
            let Some(size) = size.and_then(|s| s.parse::<u64>().ok()) else {
                each(i, Blob::Missing);
                continue;
            };
            if kind != Some("blob") || size > max {
                std::io::copy(&mut (&mut r).take(size + 1), &mut std::io::sink())
                    .map_err(|e| git.io(CMD, e))?;
                each(
                    i,
                    if kind == Some("blob") {
                        Blob::TooLarge
                    } else {
                        Blob::Missing
                    },
                );
                continue;
            }
            let mut data = vec![0; size as usize];
            r.read_exact(&mut data).map_err(|e| git.io(CMD, e))?;
            let mut nl = [0u8; 1];
            r.read_exact(&mut nl).map_err(|e| git.io(CMD, e))?;
            each(i, Blob::Data(data));
        }
        Ok(())
    });
    let status = child.wait().map_err(|e| git.io(CMD, e))?;
    result?;
    if !status.success() {
        return Err(git.failure(CMD, b"exited with an error"));
    }
    Ok(())
}

/// A blob to scan, with a path to scan it under.
pub(crate) struct BlobRequest {
    pub oid: String,
    pub path: String,
}

/// What a blob scan counted, shared by its threads.
#[derive(Default)]
pub(crate) struct BlobCounts {
    files: AtomicU64,
    bytes: AtomicU64,
    binary: AtomicU64,
}

impl BlobCounts {
    pub fn add_to(self, stats: &mut ScanStats) {
        stats.files += self.files.into_inner();
        stats.bytes += self.bytes.into_inner();
        stats.skipped_binary += self.binary.into_inner();
    }
}

/// Scans one blob's content under `path` (UTF-16 decoded; binary counted and skipped).
pub(crate) fn scan_blob(
    matcher: &Matcher,
    path: &str,
    data: &[u8],
    counts: &BlobCounts,
) -> Vec<Match> {
    let Some(text) = text_of(data) else {
        counts.binary.fetch_add(1, Ordering::Relaxed);
        return Vec::new();
    };
    counts.files.fetch_add(1, Ordering::Relaxed);
    counts.bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
    matcher.scan(path, &text)
}

/// Scans `blobs` in parallel (one `cat-file` feeding a pool of scanners); returns the matches per
/// blob id, for the blobs that matched. Counts land in `stats`.
pub(crate) fn scan_blobs(
    git: &Git,
    matcher: &Matcher,
    blobs: &[BlobRequest],
    opts: &ScanOptions,
    stats: &mut ScanStats,
) -> Result<HashMap<String, Vec<Match>>, GitError> {
    let counts = BlobCounts::default();
    let hits: Mutex<HashMap<String, Vec<Match>>> = Mutex::new(HashMap::new());
    let mut too_large = 0u64;
    let mut missing = 0u64;
    let oids: Vec<&str> = blobs.iter().map(|b| b.oid.as_str()).collect();
    let scan_one = |i: usize, data: Vec<u8>| {
        let b = &blobs[i];
        let found = scan_blob(matcher, &b.path, &data, &counts);
        if !found.is_empty() {
            hits.lock()
                .expect("hits poisoned")
                .insert(b.oid.clone(), found);
        }
    };
    let result = if blobs.len() < 64 {
        // A handful of blobs (the index, a short range): threads cost more than they save.
        cat_file(git, &oids, opts.max_file_size, |i, blob| match blob {
            Blob::Data(d) => scan_one(i, d),
            Blob::TooLarge => too_large += 1,
            Blob::Missing => missing += 1,
        })
    } else {
        // One `cat-file` reads (inflating and resolving deltas is most of the work, and one
        // process keeps its delta-base cache warm: two readers on halves were slower), a pool
        // of scanners matches.
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        let (tx, rx) = crossbeam_channel::bounded::<(usize, Vec<u8>)>(workers * 16);
        std::thread::scope(|s| {
            for _ in 0..workers {
                let rx = rx.clone();
                let scan_one = &scan_one;
                s.spawn(move || {
                    for (i, data) in rx.iter() {
                        scan_one(i, data);
                    }
                });
            }
            drop(rx);
            let r = cat_file(git, &oids, opts.max_file_size, |i, blob| match blob {
                Blob::Data(d) => {
                    let _ = tx.send((i, d));
                }
                Blob::TooLarge => too_large += 1,
                Blob::Missing => missing += 1,
            });
            drop(tx);
            r
        })
    };
    result?;
    counts.add_to(stats);
    stats.skipped_too_large += too_large;
    stats.unreadable += missing;
    Ok(hits.into_inner().expect("hits poisoned"))
}
