//! Objects read straight from a repository's object store, without running git: loose objects
//! (`objects/xx/yyyy...`, a zlib stream of `<type> <size>\0` and the content) and packs (`.idx`
//! version 2 to find an object, its pack entry inflated, deltas applied). For the staged scan's
//! look at HEAD's trees and at the blobs `git add` wrote. Whatever this reader does not find or
//! does not understand is `None`: the caller then asks git, which knows every case.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A SHA-1 object id (a repository using SHA-256 is left to git by the caller).
pub(crate) type Oid = [u8; 20];

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Commit,
    Tree,
    Blob,
    Tag,
}

/// An object read, or why not.
#[derive(Debug)]
pub(crate) enum Read {
    Object(Kind, Vec<u8>),
    /// Larger than the limit asked for.
    TooLarge,
    /// Not found here, or stored in a way this reader does not handle.
    NotHere,
}

/// Longest delta chain followed (git's own default depth is 50; `gc --aggressive` uses 250).
const MAX_CHAIN: usize = 4096;

/// A repository's object directory.
pub(crate) struct Odb {
    objects: PathBuf,
    packs: OnceLock<Vec<Pack>>,
}

struct Pack {
    idx: File,
    pack: File,
    pack_len: u64,
    fanout: [u32; 256],
}

impl Odb {
    pub fn new(objects: PathBuf) -> Odb {
        Odb {
            objects,
            packs: OnceLock::new(),
        }
    }

    /// The object `oid`, if its content is at most `max` bytes.
    pub fn read(&self, oid: &Oid, max: u64) -> Read {
        match read_loose(&self.objects, &hex(oid), max) {
            Read::NotHere => {}
            found => return found,
        }
        self.read_packed(oid, max, 0)
    }

    /// A loose object only: what `git add` writes.
    pub fn read_loose(&self, oid: &str, max: u64) -> Read {
        read_loose(&self.objects, oid, max)
    }

    fn packs(&self) -> &[Pack] {
        self.packs
            .get_or_init(|| open_packs(&self.objects.join("pack")))
    }

    fn read_packed(&self, oid: &Oid, max: u64, depth: usize) -> Read {
        for pack in self.packs() {
            if let Some(offset) = pack.find(oid) {
                return self
                    .read_at(pack, offset, max, depth)
                    .unwrap_or(Read::NotHere);
            }
        }
        Read::NotHere
    }

    /// The object at `offset` in `pack`, its delta chain resolved.
    fn read_at(&self, pack: &Pack, mut offset: u64, max: u64, depth: usize) -> Option<Read> {
        let mut deltas: Vec<Vec<u8>> = Vec::new();
        let (kind, mut data) = loop {
            if deltas.len() + depth > MAX_CHAIN {
                return None;
            }
            let head = pack.header(offset)?;
            match head.kind {
                1..=4 => {
                    let kind = [Kind::Commit, Kind::Tree, Kind::Blob, Kind::Tag][head.kind - 1];
                    if head.size > max && deltas.is_empty() {
                        return Some(Read::TooLarge);
                    }
                    break (kind, pack.inflate(head.data, head.size)?);
                }
                6 => {
                    deltas.push(pack.inflate(head.data, head.size)?);
                    offset = offset.checked_sub(head.base_offset?)?;
                }
                7 => {
                    let delta = pack.inflate(head.data, head.size)?;
                    let base = match self.read(&head.base_oid?, u64::MAX) {
                        Read::Object(kind, data) => (kind, data),
                        _ => return None,
                    };
                    deltas.push(delta);
                    break base;
                }
                _ => return None,
            }
        };
        for delta in deltas.iter().rev() {
            data = apply_delta(&data, delta, max)?;
            if data.len() as u64 > max {
                return Some(Read::TooLarge);
            }
        }
        if data.len() as u64 > max {
            return Some(Read::TooLarge);
        }
        Some(Read::Object(kind, data))
    }
}

/// The packs of `dir` with a version 2 index; any other is skipped (its objects come from git).
fn open_packs(dir: &Path) -> Vec<Pack> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut packs = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "idx") {
            continue;
        }
        let open = || -> Option<Pack> {
            let (idx, _) = crate::files::open_regular(&path).ok()?;
            let (pack, meta) = crate::files::open_regular(&path.with_extension("pack")).ok()?;
            let pack_len = meta.len();
            let mut head = [0u8; 8 + 256 * 4];
            idx.read_exact_at(&mut head, 0).ok()?;
            if head[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
                return None;
            }
            let mut fanout = [0u32; 256];
            for (i, f) in fanout.iter_mut().enumerate() {
                *f = be32(&head[8 + i * 4..]);
            }
            Some(Pack {
                idx,
                pack,
                pack_len,
                fanout,
            })
        };
        if let Some(p) = open() {
            packs.push(p);
        }
    }
    packs
}

/// A pack entry's header.
struct EntryHead {
    kind: usize,
    size: u64,
    /// Where the zlib stream starts.
    data: u64,
    /// OFS_DELTA: how far back the base is.
    base_offset: Option<u64>,
    /// REF_DELTA: the base's id.
    base_oid: Option<Oid>,
}

impl Pack {
    fn count(&self) -> u64 {
        u64::from(self.fanout[255])
    }

    /// The offset of `oid` in the pack, from the index.
    fn find(&self, oid: &Oid) -> Option<u64> {
        let first = usize::from(oid[0]);
        let lo = if first == 0 {
            0
        } else {
            self.fanout[first - 1]
        };
        let hi = self.fanout[first];
        if hi <= lo {
            return None;
        }
        let n = (hi - lo) as usize;
        let mut ids = vec![0u8; n * 20];
        self.idx
            .read_exact_at(&mut ids, 8 + 1024 + 20 * u64::from(lo))
            .ok()?;
        let (mut a, mut b) = (0usize, n);
        let pos = loop {
            if a >= b {
                return None;
            }
            let mid = (a + b) / 2;
            match ids[mid * 20..mid * 20 + 20].cmp(oid) {
                std::cmp::Ordering::Equal => break mid,
                std::cmp::Ordering::Less => a = mid + 1,
                std::cmp::Ordering::Greater => b = mid,
            }
        };
        let i = u64::from(lo) + pos as u64;
        let n = self.count();
        let mut word = [0u8; 4];
        self.idx
            .read_exact_at(&mut word, 8 + 1024 + 24 * n + 4 * i)
            .ok()?;
        let small = be32(&word);
        if small & 0x8000_0000 == 0 {
            return Some(u64::from(small));
        }
        let k = u64::from(small & 0x7fff_ffff);
        let mut big = [0u8; 8];
        self.idx
            .read_exact_at(&mut big, 8 + 1024 + 28 * n + 8 * k)
            .ok()?;
        Some(u64::from_be_bytes(big))
    }

    fn header(&self, offset: u64) -> Option<EntryHead> {
        let mut buf = [0u8; 64];
        let len = (self.pack_len.checked_sub(offset)?).min(64) as usize;
        self.pack.read_exact_at(&mut buf[..len], offset).ok()?;
        let buf = &buf[..len];
        let mut at = 0;
        let mut c = *buf.get(at)?;
        at += 1;
        let kind = usize::from((c >> 4) & 7);
        let mut size = u64::from(c & 15);
        let mut shift = 4;
        while c & 0x80 != 0 {
            c = *buf.get(at)?;
            at += 1;
            if shift > 57 {
                return None;
            }
            size |= u64::from(c & 0x7f) << shift;
            shift += 7;
        }
        let mut head = EntryHead {
            kind,
            size,
            data: 0,
            base_offset: None,
            base_oid: None,
        };
        match kind {
            6 => {
                let mut c = *buf.get(at)?;
                at += 1;
                let mut back = u64::from(c & 0x7f);
                while c & 0x80 != 0 {
                    c = *buf.get(at)?;
                    at += 1;
                    back = back.checked_add(1)?.checked_mul(128)? | u64::from(c & 0x7f);
                }
                head.base_offset = Some(back);
            }
            7 => {
                head.base_oid = Some(buf.get(at..at + 20)?.try_into().ok()?);
                at += 20;
            }
            _ => {}
        }
        head.data = offset + at as u64;
        Some(head)
    }

    /// The zlib stream at `at`, which inflates to exactly `size` bytes.
    fn inflate(&self, at: u64, size: u64) -> Option<Vec<u8>> {
        // deflate never grows data by more than this (zlib's deflateBound, rounded up).
        let bound = size.checked_add(size / 1000 + 128)?;
        let len = self.pack_len.checked_sub(at)?.min(bound);
        let mut compressed = vec![0u8; usize::try_from(len).ok()?];
        self.pack.read_exact_at(&mut compressed, at).ok()?;
        let out = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(
            &compressed,
            usize::try_from(size).ok()?,
        )
        .ok()?;
        (out.len() as u64 == size).then_some(out)
    }
}

/// `base` with `delta` applied (git's copy/insert delta format), at most `max` bytes.
fn apply_delta(base: &[u8], delta: &[u8], max: u64) -> Option<Vec<u8>> {
    let mut at = 0;
    let varint = |at: &mut usize| -> Option<u64> {
        let mut v = 0u64;
        let mut shift = 0;
        loop {
            let c = *delta.get(*at)?;
            *at += 1;
            if shift > 63 {
                return None;
            }
            v |= u64::from(c & 0x7f) << shift;
            shift += 7;
            if c & 0x80 == 0 {
                return Some(v);
            }
        }
    };
    let source = varint(&mut at)?;
    let target = varint(&mut at)?;
    if source != base.len() as u64 || target > max {
        return None;
    }
    let mut out = Vec::with_capacity(usize::try_from(target).ok()?);
    while at < delta.len() {
        let op = delta[at];
        at += 1;
        if op & 0x80 != 0 {
            let mut field = |bits: u8, bytes: usize| -> Option<usize> {
                let mut v = 0usize;
                for i in 0..bytes {
                    if bits & (1 << i) != 0 {
                        v |= usize::from(*delta.get(at)?) << (8 * i);
                        at += 1;
                    }
                }
                Some(v)
            };
            let offset = field(op & 0x0f, 4)?;
            let mut size = field((op >> 4) & 0x07, 3)?;
            if size == 0 {
                size = 0x10000;
            }
            out.extend_from_slice(base.get(offset..offset.checked_add(size)?)?);
        } else if op != 0 {
            let n = usize::from(op);
            out.extend_from_slice(delta.get(at..at + n)?);
            at += n;
        } else {
            return None;
        }
        if out.len() as u64 > target {
            return None;
        }
    }
    (out.len() as u64 == target).then_some(out)
}

/// Reads the object `oid` (hex) from the loose object `objects/xx/yyyy...`.
fn read_loose(objects: &Path, oid: &str, max: u64) -> Read {
    if oid.len() != 40 || !oid.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Read::NotHere;
    }
    let Ok(compressed) = std::fs::read(objects.join(&oid[..2]).join(&oid[2..])) else {
        return Read::NotHere;
    };
    // The header, then at most `max` bytes of content, then one more to tell an object too large.
    let limit = usize::try_from(max)
        .unwrap_or(usize::MAX)
        .saturating_add(64);
    let (mut data, complete) =
        match miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(&compressed, limit) {
            Ok(d) => (d, true),
            Err(e) if e.status == miniz_oxide::inflate::TINFLStatus::HasMoreOutput => {
                (e.output, false)
            }
            Err(_) => return Read::NotHere,
        };
    let Some(nul) = memchr::memchr(0, &data[..data.len().min(32)]) else {
        return Read::NotHere;
    };
    let Some((kind, size)) = std::str::from_utf8(&data[..nul])
        .ok()
        .and_then(|h| h.split_once(' '))
        .and_then(|(k, n)| Some((k, n.parse::<u64>().ok()?)))
    else {
        return Read::NotHere;
    };
    let kind = match kind {
        "blob" => Kind::Blob,
        "tree" => Kind::Tree,
        "commit" => Kind::Commit,
        "tag" => Kind::Tag,
        _ => return Read::NotHere,
    };
    if size > max {
        return Read::TooLarge;
    }
    if !complete || (data.len() - nul - 1) as u64 != size {
        return Read::NotHere;
    }
    data.drain(..=nul);
    Read::Object(kind, data)
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// An object id in hex.
pub(crate) fn hex(oid: &Oid) -> String {
    use std::fmt::Write;
    oid.iter().fold(String::with_capacity(40), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// An object id from 40 hex digits.
pub(crate) fn parse_hex(s: &[u8]) -> Option<Oid> {
    if s.len() != 40 {
        return None;
    }
    let mut oid = [0u8; 20];
    for (i, pair) in s.chunks(2).enumerate() {
        let digit = |c: u8| (c as char).to_digit(16);
        oid[i] = u8::try_from(digit(pair[0])? * 16 + digit(pair[1])?).ok()?;
    }
    Some(oid)
}
