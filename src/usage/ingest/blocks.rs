//! Reading one source in blocks: each block cut at its last newline, its lines parsed in
//! parallel (rayon) and aggregated into the source's [`Partial`]; a line too long is rejected
//! without being kept.

use super::super::screen::Screen;
use super::super::UsageError;
use super::parse::{redact_hex_runs, trim_ascii, RawEvent};
use super::{ingest_event, open_events, Input, Partial, Seen};
use crate::airwallex::Catalog;
use rayon::prelude::*;
use std::io::Read;
use std::path::PathBuf;

pub(super) fn read_source<'c>(
    input: &Input,
    catalog: &'c Catalog,
    screen: Option<&'c Screen>,
    seen: &Seen,
) -> Result<Partial<'c>, UsageError> {
    let name = input.name();
    let mut partial = Partial {
        name: name.clone(),
        screen,
        ..Partial::default()
    };
    let read_err = |source| UsageError::Read {
        path: PathBuf::from(&name),
        source,
    };
    match input {
        Input::Stdin => {
            let stdin = std::io::stdin();
            let lock = stdin.lock();
            read_lines(lock, &mut partial, catalog, seen).map_err(read_err)?;
        }
        Input::File(p) => {
            let f = open_events(p).map_err(read_err)?;
            read_lines(f, &mut partial, catalog, seen).map_err(read_err)?;
        }
    }
    Ok(partial)
}

/// Bytes read at a time; a block is cut at its last newline and its lines parsed in parallel.
const BLOCK: usize = 8 << 20;

/// A line longer than this is rejected and skipped without being kept (a file without line
/// breaks, a sparse giant, costs a block of memory, not its size).
pub const MAX_LINE: usize = 1 << 20;

/// Under this size a block is parsed on one thread.
const MIN_CHUNK: usize = 256 << 10;

pub(super) fn read_lines<'c, R: Read>(
    r: R,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
) -> std::io::Result<()> {
    read_blocks(r, partial, catalog, seen, BLOCK)
}

pub(super) fn read_blocks<'c, R: Read>(
    mut r: R,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
    block_size: usize,
) -> std::io::Result<()> {
    let mut buf: Vec<u8> = Vec::new();
    let mut carry: Vec<u8> = Vec::new();
    let mut line_base: u64 = 0;
    // Inside a line over `MAX_LINE`: its bytes are dropped up to its end.
    let mut skipping = false;
    loop {
        buf.clear();
        buf.append(&mut carry);
        let target = block_size.max(buf.len() * 2);
        let want = target.saturating_sub(buf.len()) as u64;
        let n = (&mut r).take(want).read_to_end(&mut buf)?;
        let eof = (n as u64) < want;
        if skipping {
            match memchr::memchr(b'\n', &buf) {
                None if eof => return Ok(()),
                None => continue,
                Some(i) => {
                    skipping = false;
                    line_base += 1;
                    carry.extend_from_slice(&buf[i + 1..]);
                    if eof && carry.is_empty() {
                        return Ok(());
                    }
                    continue;
                }
            }
        }
        let long_line = |buf: &[u8]| buf.len() > MAX_LINE && memchr::memchr(b'\n', buf).is_none();
        if long_line(&buf) {
            partial.reject(
                line_base + 1,
                format!("the line is longer than {MAX_LINE} bytes; skipped"),
            );
            if eof {
                return Ok(());
            }
            skipping = true;
            continue;
        }
        let end = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => {
                    // one line longer than the block: read on
                    carry = std::mem::take(&mut buf);
                    continue;
                }
            }
        };
        carry.extend_from_slice(&buf[end..]);
        let block = &buf[..end];
        read_block(block, line_base, partial, catalog, seen);
        line_base += memchr::memchr_iter(b'\n', block).count() as u64;
        if eof {
            return Ok(());
        }
    }
}

/// Parses a block of whole lines, split across threads at line boundaries; `line_base` is the
/// number of lines before the block.
fn read_block<'c>(
    block: &[u8],
    line_base: u64,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
) {
    let parts = rayon::current_num_threads().max(1);
    if parts == 1 || block.len() < 2 * MIN_CHUNK {
        read_chunk(block, line_base, partial, catalog, seen);
        return;
    }
    let size = (block.len() / parts).max(MIN_CHUNK);
    let mut chunks: Vec<(&[u8], u64)> = Vec::new();
    let mut start = 0;
    let mut line = line_base;
    while start < block.len() {
        let mut end = (start + size).min(block.len());
        if end < block.len() {
            end = memchr::memchr(b'\n', &block[end..]).map_or(block.len(), |i| end + i + 1);
        }
        chunks.push((&block[start..end], line));
        line += memchr::memchr_iter(b'\n', &block[start..end]).count() as u64;
        start = end;
    }
    let name = partial.name.clone();
    let screen = partial.screen;
    let parsed: Vec<Partial<'c>> = chunks
        .par_iter()
        .map(|(chunk, first)| {
            let mut p = Partial {
                name: name.clone(),
                screen,
                ..Partial::default()
            };
            read_chunk(chunk, *first, &mut p, catalog, seen);
            p
        })
        .collect();
    for p in parsed {
        partial.absorb(p);
    }
}

pub(super) fn read_chunk<'c>(
    chunk: &[u8],
    line_base: u64,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
) {
    let mut method_buf = String::with_capacity(8);
    let mut line_no = line_base;
    for raw in chunk.split(|&b| b == b'\n') {
        line_no += 1;
        let line = trim_ascii(raw);
        if line.is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            partial.reject(
                line_no,
                format!("the line is longer than {MAX_LINE} bytes; skipped"),
            );
            continue;
        }
        let ev: RawEvent<'_> = match serde_json::from_slice(line) {
            Ok(ev) => ev,
            Err(e) => {
                let what = match e.classify() {
                    serde_json::error::Category::Data => "not a usage event",
                    _ => "not valid JSON",
                };
                partial.reject(line_no, redact_hex_runs(&format!("{what}: {e}")));
                continue;
            }
        };
        ingest_event(&ev, line_no, partial, catalog, seen, &mut method_buf);
    }
}
