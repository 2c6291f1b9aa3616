//! The generator's state and its one way of emitting calls: a catalog route classified once,
//! calls pushed to the sink, spread over minutes, and a profile's ordinary hour of traffic.

use super::super::series::{classify, Access, EventRef, HOUR};
use super::{Profile, Rng};
use crate::airwallex::Catalog;
use std::net::{IpAddr, Ipv4Addr};

#[derive(Debug, Clone)]
pub(super) struct Route {
    route: String,
    scope: Option<String>,
    access: Access,
}

pub(super) type Sink<'s> = &'s mut dyn FnMut(&EventRef<'_>, u32);

pub(super) struct Gen<'c, 's> {
    pub(super) rng: Rng,
    pub(super) catalog: &'c Catalog,
    pub(super) sink: Sink<'s>,
}

impl Gen<'_, '_> {
    pub(super) fn route(&self, method: &str, path: &str) -> Route {
        let (route, scope, access) = classify(self.catalog, method, path);
        Route {
            route,
            scope,
            access,
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn push(
        &mut self,
        key: &str,
        ts: i64,
        r: &Route,
        status: u16,
        ip: IpAddr,
        ua: &str,
        n: u32,
    ) {
        if n == 0 {
            return;
        }
        let e = EventRef {
            ts,
            key,
            route: &r.route,
            scope: r.scope.as_deref(),
            access: r.access,
            status,
            source_ip: Some(ip),
            user_agent: Some(ua),
            via_proxy: false,
            host: Some("api.airwallex.com"),
            account: None,
        };
        (self.sink)(&e, n);
    }

    /// `n` calls spread over `minutes` from `at`, one group a minute.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn spread(
        &mut self,
        key: &str,
        at: i64,
        minutes: i64,
        n: u32,
        r: &Route,
        status: u16,
        ip: IpAddr,
        ua: &str,
    ) {
        let minutes = minutes.max(1);
        for m in 0..minutes {
            let share = n / minutes as u32 + u32::from((m as u32) < n % minutes as u32);
            let sec = self.rng.int(0, 59);
            self.push(key, at + m * 60 + sec, r, status, ip, ua, share);
        }
    }

    /// Ordinary traffic of one profile in one hour.
    pub(super) fn hour(&mut self, p: &Profile, reads: &[Route], write: &Route, hour: i64) {
        let mean = p.mean(hour);
        if mean <= 0.0 {
            return;
        }
        let count = self.rng.count(mean, p.phi);
        let base = hour * HOUR;
        // spread over the 12 sub-buckets
        for k in 0..12 {
            let c = self.rng.poisson(count as f64 / 12.0);
            if c == 0 {
                continue;
            }
            let ts = base + k * 300 + self.rng.int(0, 299);
            let writes = (self.rng.poisson(c as f64 * p.write_share)).min(c);
            let errors = (self.rng.poisson(c as f64 * p.error_share)).min(c - writes);
            let ip = *self.rng.pick(&p.ips);
            let r = self.rng.int(0, reads.len() as i64 - 1) as usize;
            self.push(
                &p.key,
                ts,
                &reads[r],
                200,
                ip,
                &p.user_agent,
                c - writes - errors,
            );
            self.push(&p.key, ts, write, 201, ip, &p.user_agent, writes);
            self.push(&p.key, ts, &reads[r], 403, ip, &p.user_agent, errors);
        }
    }
}

pub(super) fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(a, b, c, d))
}

pub(super) fn path_id(rng: &mut Rng) -> String {
    format!("{:010x}", rng.next_u64() & 0xff_ffff_ffff)
}
