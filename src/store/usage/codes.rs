//! The codes the usage tables store for kinds of first appearance, access and status class
//! (both backends).

use crate::store::usage_series::{Access, AttrKind};

/// `usage_names` kinds.
pub(in crate::store) const NAME_AGENT: i64 = 1;
pub(in crate::store) const NAME_NETWORK: i64 = 2;

pub(in crate::store) fn kind_code(k: AttrKind) -> i64 {
    match k {
        AttrKind::SourceIp => 1,
        AttrKind::ProxyIp => 2,
        AttrKind::UserAgent => 3,
        AttrKind::Route => 4,
        AttrKind::Scope => 5,
        AttrKind::Host => 6,
        AttrKind::Account => 7,
        AttrKind::Status => 8,
    }
}

pub(in crate::store) fn kind_of(code: i64) -> Option<AttrKind> {
    Some(match code {
        1 => AttrKind::SourceIp,
        2 => AttrKind::ProxyIp,
        3 => AttrKind::UserAgent,
        4 => AttrKind::Route,
        5 => AttrKind::Scope,
        6 => AttrKind::Host,
        7 => AttrKind::Account,
        8 => AttrKind::Status,
        _ => return None,
    })
}

pub(in crate::store) fn access_code(a: Access) -> i64 {
    match a {
        Access::Read => 0,
        Access::Write => 1,
        Access::Sensitive => 2,
    }
}

pub(in crate::store) fn access_of(code: i64) -> Access {
    match code {
        1 => Access::Write,
        2 => Access::Sensitive,
        _ => Access::Read,
    }
}

/// The status class of the hourly calls rollup: 401, 403 and 429 on their own, else the
/// hundred (200, 300, 400, 500).
pub fn status_class(status: u16) -> i64 {
    match status {
        401 | 403 | 429 => status as i64,
        s => (s / 100 * 100) as i64,
    }
}
