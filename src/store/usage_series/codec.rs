//! The store's binary encodings of [`HourBucket`] (fixed length) and [`AttrStats`]: little
//! endian, and read back only when every byte is accounted for.

use super::{Access, AttrHour, AttrStats, HourBucket, SUBS};

/// Little-endian reading of the store's encodings.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let (h, t) = self.0.split_at_checked(N)?;
        self.0 = t;
        h.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take().map(u16::from_le_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take().map(u64::from_le_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_le_bytes)
    }
}

impl HourBucket {
    /// Bytes of [`HourBucket::to_bytes`].
    pub const ENCODED_LEN: usize = 4 * SUBS + 4 * 5 + 2 * 6;

    /// The store's encoding (little endian, fixed length).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(Self::ENCODED_LEN);
        for v in self.sub {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.calls,
            self.writes,
            self.sensitive,
            self.denied,
            self.throttled,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [
            self.first,
            self.last,
            self.err_first,
            self.err_last,
            self.write_first,
            self.write_last,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Decodes [`HourBucket::to_bytes`]; `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<HourBucket> {
        if b.len() != Self::ENCODED_LEN {
            return None;
        }
        let mut r = Reader(b);
        let mut h = HourBucket::default();
        for v in h.sub.iter_mut() {
            *v = r.u32()?;
        }
        h.calls = r.u32()?;
        h.writes = r.u32()?;
        h.sensitive = r.u32()?;
        h.denied = r.u32()?;
        h.throttled = r.u32()?;
        h.first = r.u16()?;
        h.last = r.u16()?;
        h.err_first = r.u16()?;
        h.err_last = r.u16()?;
        h.write_first = r.u16()?;
        h.write_last = r.u16()?;
        Some(h)
    }
}

impl Access {
    fn code(a: Option<Access>) -> u8 {
        match a {
            None => 0,
            Some(Access::Read) => 1,
            Some(Access::Write) => 2,
            Some(Access::Sensitive) => 3,
        }
    }

    fn from_code(c: u8) -> Option<Access> {
        match c {
            1 => Some(Access::Read),
            2 => Some(Access::Write),
            3 => Some(Access::Sensitive),
            _ => None,
        }
    }
}

impl AttrStats {
    /// The store's encoding (little endian, version 1).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.early.len() * 32);
        out.push(1u8);
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.last.to_le_bytes());
        for v in [self.calls, self.writes, self.sensitive, self.ok] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.push(Access::code(self.access));
        match self.accepted_last {
            Some(t) => {
                out.push(1);
                out.extend_from_slice(&t.to_le_bytes());
            }
            None => out.push(0),
        }
        match &self.scope {
            Some(sc) => {
                let b = &sc.as_bytes()[..sc.len().min(u16::MAX as usize - 1)];
                out.extend_from_slice(&(b.len() as u16).to_le_bytes());
                out.extend_from_slice(b);
            }
            None => out.extend_from_slice(&u16::MAX.to_le_bytes()),
        }
        out.extend_from_slice(&(self.early.len().min(u16::MAX as usize) as u16).to_le_bytes());
        for (h, a) in self.early.iter().take(u16::MAX as usize) {
            out.extend_from_slice(&h.to_le_bytes());
            for v in [a.calls, a.writes, a.sensitive, a.ok] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&a.first.to_le_bytes());
            out.extend_from_slice(&a.last.to_le_bytes());
        }
        out
    }

    /// Decodes [`AttrStats::to_bytes`]; `None` for anything else.
    pub fn from_bytes(b: &[u8]) -> Option<AttrStats> {
        let mut r = Reader(b);
        if r.u8()? != 1 {
            return None;
        }
        let mut a = AttrStats {
            first: r.i64()?,
            last: r.i64()?,
            calls: r.u64()?,
            writes: r.u64()?,
            sensitive: r.u64()?,
            ok: r.u64()?,
            access: Access::from_code(r.u8()?),
            ..AttrStats::default()
        };
        if r.u8()? == 1 {
            a.accepted_last = Some(r.i64()?);
        }
        let n = r.u16()?;
        if n != u16::MAX {
            let (sc, rest) = r.0.split_at_checked(n as usize)?;
            a.scope = Some(std::str::from_utf8(sc).ok()?.to_string());
            r.0 = rest;
        }
        for _ in 0..r.u16()? {
            let h = r.i64()?;
            let x = AttrHour {
                calls: r.u32()?,
                writes: r.u32()?,
                sensitive: r.u32()?,
                ok: r.u32()?,
                first: r.u16()?,
                last: r.u16()?,
            };
            a.early.insert(h, x);
        }
        r.0.is_empty().then_some(a)
    }
}
