//! Held secrets: the secrets awxguard holds in memory (API keys, tokens, passwords) and their
//! base64 forms, indexed by block hash behind a bloom filter so any 24-character window of one
//! is found in a text at the cost of one rolling hash per position.

use super::{fingerprint, placeholder, Span, MAX_HELD, MIN_HELD, MIN_WINDOW};
use std::collections::{HashMap, HashSet};
use std::sync::{LazyLock, RwLock};

/// Length of the blocks the held-secret index is built from: any `MIN_WINDOW` window of a
/// secret contains one whole block at a multiple of `BLOCK`.
const BLOCK: usize = MIN_WINDOW / 2;

struct HeldSecret {
    /// The text to look for, ASCII-lowercased (matching ignores ASCII case).
    text: Vec<u8>,
    /// What a match is replaced with: the original secret's placeholder.
    label: String,
}

#[derive(Default)]
struct Held {
    secrets: Vec<HeldSecret>,
    /// Block hash -> (secret, offset of the block in it).
    index: HashMap<u64, Vec<(u32, u32)>, IdentityBuild>,
    /// One bit per block-hash bucket: most text positions are rejected here.
    bloom: Vec<u64>,
    /// Fingerprints of what is held (so holding twice is free).
    seen: HashSet<String>,
}

const BLOOM_BITS: u32 = 20;

#[derive(Default, Clone, Copy)]
struct IdentityBuild;
struct IdentityHasher(u64);
impl std::hash::BuildHasher for IdentityBuild {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}
impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

const P: u64 = 0x100000001b3;

fn block_hash(b: &[u8]) -> u64 {
    b.iter().fold(0u64, |h, &x| {
        h.wrapping_mul(P)
            .wrapping_add(u64::from(x.to_ascii_lowercase()))
    })
}

fn mix(h: u64) -> u64 {
    let h = h ^ (h >> 29);
    h.wrapping_mul(0xbf58476d1ce4e5b9)
}

fn bloom_slot(h: u64) -> (usize, u64) {
    let m = mix(h) >> (64 - BLOOM_BITS);
    ((m >> 6) as usize, 1u64 << (m & 63))
}

static HELD: LazyLock<RwLock<Held>> = LazyLock::new(|| RwLock::new(Held::default()));

impl Held {
    fn add(&mut self, text: &[u8], label: &str) {
        if text.len() < MIN_HELD {
            return;
        }
        if self.bloom.is_empty() {
            self.bloom = vec![0; 1 << (BLOOM_BITS - 6)];
        }
        let id = self.secrets.len() as u32;
        let lower = text.to_ascii_lowercase();
        let mut offsets: Vec<usize> = (0..=lower.len() - BLOCK).step_by(BLOCK).collect();
        if offsets.last() != Some(&(lower.len() - BLOCK)) {
            offsets.push(lower.len() - BLOCK);
        }
        for off in offsets {
            let h = block_hash(&lower[off..off + BLOCK]);
            let (w, bit) = bloom_slot(h);
            self.bloom[w] |= bit;
            self.index.entry(h).or_default().push((id, off as u32));
        }
        self.secrets.push(HeldSecret {
            text: lower,
            label: label.to_string(),
        });
    }
}

/// Remembers a secret awxguard now holds (a resolved API key, a key a scan found, a login
/// token, an SMTP password), so that any 24-character window of it, in any ASCII case or in
/// base64, is redacted wherever it would appear. Values under 12 characters are not held.
pub fn hold(secret: &str) {
    let secret = secret.trim();
    if secret.len() < MIN_HELD {
        return;
    }
    let fp = fingerprint(secret.as_bytes());
    if HELD
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .seen
        .contains(&fp)
    {
        return;
    }
    let label = placeholder(secret);
    let mut held = HELD.write().unwrap_or_else(|e| e.into_inner());
    if held.seen.len() >= MAX_HELD || !held.seen.insert(fp) {
        return;
    }
    held.add(secret.as_bytes(), &label);
    // Its base64 forms, at the three alignments a surrounding text can give it (the characters
    // that depend on the neighbours are left out).
    use base64::Engine as _;
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ] {
        for lead in 0..3usize {
            let mut bytes = vec![0u8; lead];
            bytes.extend_from_slice(secret.as_bytes());
            let enc = engine.encode(&bytes);
            let skip = if lead == 0 {
                0
            } else {
                (lead * 4).div_ceil(3) + 1
            };
            let keep = enc.len().saturating_sub(3);
            if keep > skip {
                // Case matters in base64 but matching ignores it: a 24-character window is
                // still far beyond chance.
                held.add(&enc.as_bytes()[skip..keep], &label);
            }
        }
    }
}

/// How many secrets are held (for tests and `-vv` logs).
pub fn held_count() -> usize {
    HELD.read().unwrap_or_else(|e| e.into_inner()).seen.len()
}

pub(super) fn held_spans(text: &str, out: &mut Vec<Span>) {
    let held = HELD.read().unwrap_or_else(|e| e.into_inner());
    if held.secrets.is_empty() || text.len() < BLOCK.min(MIN_HELD) {
        return;
    }
    let b = text.as_bytes();
    if b.len() < BLOCK {
        return;
    }
    let mut pow = 1u64;
    for _ in 1..BLOCK {
        pow = pow.wrapping_mul(P);
    }
    let mut h = block_hash(&b[..BLOCK]);
    let mut p = 0usize;
    // Text before `skip_to` is already inside a found span.
    let mut skip_to = 0usize;
    loop {
        if p >= skip_to {
            let (w, bit) = bloom_slot(h);
            if held.bloom[w] & bit != 0 {
                if let Some(cands) = held.index.get(&h) {
                    let mut best: Option<Span> = None;
                    for &(id, off) in cands {
                        let s = &held.secrets[id as usize];
                        let off = off as usize;
                        if !b[p..p + BLOCK].eq_ignore_ascii_case(&s.text[off..off + BLOCK]) {
                            continue;
                        }
                        let mut left = 0;
                        while left < off
                            && left < p
                            && b[p - left - 1].eq_ignore_ascii_case(&s.text[off - left - 1])
                        {
                            left += 1;
                        }
                        let mut right = BLOCK;
                        while off + right < s.text.len()
                            && p + right < b.len()
                            && b[p + right].eq_ignore_ascii_case(&s.text[off + right])
                        {
                            right += 1;
                        }
                        let len = left + right;
                        if len >= MIN_WINDOW.min(s.text.len())
                            && best.as_ref().is_none_or(|x| x.end - x.start < len)
                        {
                            best = Some(Span {
                                start: p - left,
                                end: p + right,
                                label: Some(s.label.clone()),
                            });
                        }
                    }
                    if let Some(span) = best {
                        skip_to = span.end;
                        out.push(span);
                    }
                }
            }
        }
        if p + BLOCK >= b.len() {
            break;
        }
        h = h
            .wrapping_sub(u64::from(b[p].to_ascii_lowercase()).wrapping_mul(pow))
            .wrapping_mul(P)
            .wrapping_add(u64::from(b[p + BLOCK].to_ascii_lowercase()));
        p += 1;
    }
}
