//! The usage evidence the report reads: per key, the hourly series (calls, errors, writes, and
//! the learned baseline band when the evidence store has one), who called (network and user
//! agent) and when a key was last used.
//!
//! One seam, [`UsageSource`], implemented by [`ProxyEvents`]: the raw events of the usage
//! evidence store (every call the recording proxy saw and every event `usage ingest` read, within
//! the raw retention), with the learned baseline band of each key's hourly calls from the anomaly
//! detection's own chart (`usage::job::chart`).

use crate::store::Store;
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// One hour of one key's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HourPoint {
    /// Start of the hour (RFC 3339).
    pub at: String,
    pub calls: u64,
    /// Refused or failed calls (status 400 and above).
    pub errors: u64,
    /// Calls that change something (any method but GET, HEAD, OPTIONS).
    pub writes: u64,
    /// The learned baseline band for the hour's calls (low, high), when the evidence has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub band: Option<(f64, f64)>,
}

/// Calls of one key from one network with one user agent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CallerGroup {
    /// `/24` (IPv4) or `/48` (IPv6) of the source address, or `unknown`.
    pub network: String,
    pub user_agent: String,
    /// The address as whom: `proxy` (the proxy's client) or `airwallex` (as Airwallex saw it).
    pub seen_by: String,
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
    pub calls: u64,
    pub writes: u64,
    pub errors: u64,
    /// Object ids the calls created or changed.
    pub object_ids: Vec<String>,
}

/// A key as usage events name it: its inventory name, or its fingerprint.
#[derive(Debug, Clone, Copy)]
pub struct KeyNames<'a> {
    pub name: &'a str,
    pub fingerprint: Option<&'a str>,
}

/// The usage evidence, as the report reads it.
pub trait UsageSource {
    /// What the evidence is (`proxy events`, `usage store`), for the reader.
    fn label(&self) -> &'static str;
    /// Whether the series carry a learned baseline band.
    fn has_baseline(&self) -> bool;
    /// Events in the evidence.
    fn events(&self) -> usize;
    /// Every hour from `from` (rounded down to the hour) up to `to`, zeros included.
    fn hourly(&self, key: KeyNames<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<HourPoint>;
    /// Calls from `since` on, by network and user agent, first call first.
    fn callers(&self, key: KeyNames<'_>, since: DateTime<Utc>) -> Vec<CallerGroup>;
    /// Networks the key was seen from before `before`.
    fn networks_before(&self, key: KeyNames<'_>, before: DateTime<Utc>) -> Vec<String>;
    /// The key's last call.
    fn last_used(&self, key: KeyNames<'_>) -> Option<DateTime<Utc>>;
}

/// One event, as much as the report needs.
#[derive(Debug, Clone)]
struct Ev {
    ts: DateTime<Utc>,
    method: String,
    status: u16,
    network: String,
    user_agent: String,
    via_proxy: bool,
    object_ids: Vec<String>,
}

impl Ev {
    fn writes(&self) -> bool {
        !matches!(
            self.method.to_ascii_uppercase().as_str(),
            "GET" | "HEAD" | "OPTIONS"
        )
    }

    fn error(&self) -> bool {
        self.status >= 400
    }
}

/// The network of an address: its `/24` (IPv4) or `/48` (IPv6).
pub fn network_of(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(v4)) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        Ok(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
        }
        Err(_) => "unknown".into(),
    }
}

/// The usage events of the store (the proxy's and those `usage ingest` read), with the learned
/// bands of the keys.
#[derive(Debug, Default)]
pub struct ProxyEvents {
    by_key: HashMap<String, Vec<Ev>>,
    total: usize,
    /// By key, by hour (RFC 3339): the baseline band of the hour's calls.
    bands: HashMap<String, HashMap<String, (f64, f64)>>,
}

/// How far back the usage store's raw events are read for the report.
const USAGE_STORE_DAYS: i64 = 90;

impl ProxyEvents {
    /// The usage evidence store's raw events of the last 90 days up to `now` (the proxy's among
    /// them), with each key's learned band (the rate rule's chart).
    pub fn load_all(
        store: &dyn Store,
        config: &crate::config::Config,
        now: DateTime<Utc>,
    ) -> Result<ProxyEvents, crate::store::StoreError> {
        let mut lines = Vec::new();
        let names = store.usage_key_names()?;
        let start = (now - Duration::days(USAGE_STORE_DAYS)).timestamp();
        let end = now.timestamp() + 1;
        let mut bands = HashMap::new();
        for name in &names {
            for v in
                store.usage_samples(name, start, end, &crate::store::SampleQuery::Any, 1_000_000)?
            {
                lines.push(v.to_string());
            }
            if let Ok(chart) = crate::usage::job::chart(store, config, name) {
                let m: HashMap<String, (f64, f64)> = chart
                    .calls
                    .iter()
                    .map(|p| (p.hour.clone(), (p.band_low, p.band_high)))
                    .collect();
                if !m.is_empty() {
                    bands.insert(name.clone(), m);
                }
            }
        }
        let mut ev = ProxyEvents::from_lines(lines.iter());
        ev.bands = bands;
        Ok(ev)
    }

    /// Events from usage-event JSON lines (unreadable lines are skipped).
    pub fn from_lines<'a>(lines: impl Iterator<Item = &'a String>) -> ProxyEvents {
        let mut by_key: HashMap<String, Vec<Ev>> = HashMap::new();
        let mut total = 0;
        for line in lines {
            let Ok(e) = crate::usage::ingest::parse_line(line.as_bytes()) else {
                continue;
            };
            total += 1;
            by_key.entry(e.key.clone()).or_default().push(Ev {
                ts: e.ts,
                method: e.method,
                status: e.status,
                network: e.source_ip.as_deref().map_or("unknown".into(), network_of),
                user_agent: e.user_agent.unwrap_or_else(|| "unknown".into()),
                via_proxy: e.via.as_deref() == Some("proxy"),
                object_ids: e.object_ids,
            });
        }
        for v in by_key.values_mut() {
            v.sort_by_key(|e| e.ts);
        }
        ProxyEvents {
            by_key,
            total,
            ..ProxyEvents::default()
        }
    }

    fn of<'a>(&'a self, key: KeyNames<'_>) -> impl Iterator<Item = &'a Ev> {
        let a = self.by_key.get(key.name).into_iter().flatten();
        let b = key
            .fingerprint
            .filter(|f| *f != key.name)
            .and_then(|f| self.by_key.get(f))
            .into_iter()
            .flatten();
        a.chain(b)
    }
}

/// The start of the hour of `t`.
pub fn hour_of(t: DateTime<Utc>) -> DateTime<Utc> {
    t.duration_trunc(Duration::hours(1)).unwrap_or(t)
}

impl UsageSource for ProxyEvents {
    fn label(&self) -> &'static str {
        "usage store"
    }

    fn has_baseline(&self) -> bool {
        !self.bands.is_empty()
    }

    fn events(&self) -> usize {
        self.total
    }

    fn hourly(&self, key: KeyNames<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<HourPoint> {
        let start = hour_of(from);
        let hours = ((to - start).num_hours() + 1).max(1) as usize;
        let mut points: Vec<HourPoint> = (0..hours)
            .map(|i| HourPoint {
                at: crate::store::ts(start + Duration::hours(i as i64)),
                calls: 0,
                errors: 0,
                writes: 0,
                band: None,
            })
            .collect();
        let bands = self
            .bands
            .get(key.name)
            .or_else(|| key.fingerprint.and_then(|f| self.bands.get(f)));
        if let Some(b) = bands {
            for p in &mut points {
                p.band = b.get(&p.at).copied();
            }
        }
        for e in self.of(key) {
            if e.ts < start || e.ts > to {
                continue;
            }
            let i = (hour_of(e.ts) - start).num_hours() as usize;
            if let Some(p) = points.get_mut(i) {
                p.calls += 1;
                p.errors += u64::from(e.error());
                p.writes += u64::from(e.writes());
            }
        }
        points
    }

    fn callers(&self, key: KeyNames<'_>, since: DateTime<Utc>) -> Vec<CallerGroup> {
        let mut groups: BTreeMap<(String, String, bool), CallerGroup> = BTreeMap::new();
        for e in self.of(key).filter(|e| e.ts >= since) {
            let g = groups
                .entry((e.network.clone(), e.user_agent.clone(), e.via_proxy))
                .or_insert_with(|| CallerGroup {
                    network: e.network.clone(),
                    user_agent: e.user_agent.clone(),
                    seen_by: if e.via_proxy { "proxy" } else { "airwallex" }.into(),
                    first: e.ts,
                    last: e.ts,
                    calls: 0,
                    writes: 0,
                    errors: 0,
                    object_ids: Vec::new(),
                });
            g.first = g.first.min(e.ts);
            g.last = g.last.max(e.ts);
            g.calls += 1;
            g.writes += u64::from(e.writes());
            g.errors += u64::from(e.error());
            for id in &e.object_ids {
                if !g.object_ids.contains(id) {
                    g.object_ids.push(id.clone());
                }
            }
        }
        let mut out: Vec<CallerGroup> = groups.into_values().collect();
        out.sort_by(|a, b| (a.first, &a.network).cmp(&(b.first, &b.network)));
        out
    }

    fn networks_before(&self, key: KeyNames<'_>, before: DateTime<Utc>) -> Vec<String> {
        let mut n: Vec<String> = self
            .of(key)
            .filter(|e| e.ts < before)
            .map(|e| e.network.clone())
            .collect();
        n.sort();
        n.dedup();
        n
    }

    fn last_used(&self, key: KeyNames<'_>) -> Option<DateTime<Utc>> {
        self.of(key).map(|e| e.ts).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(ts: &str, key: &str, method: &str, status: u16, ip: &str) -> String {
        serde_json::json!({"ts": ts, "key": key, "method": method, "path": "/api/v1/x",
            "status": status, "source_ip": ip, "via": "proxy"})
        .to_string()
    }

    #[test]
    fn hours_count_calls_errors_and_writes_zeros_included() {
        let lines = [
            line("2026-11-24T10:05:00Z", "a", "GET", 200, "10.0.0.1"),
            line("2026-11-24T10:59:59Z", "a", "POST", 201, "10.0.0.1"),
            line("2026-11-24T12:00:00Z", "sha256:ff", "GET", 403, "10.0.9.1"),
            line("2026-11-24T12:00:00Z", "b", "GET", 200, "10.0.0.1"),
        ];
        let ev = ProxyEvents::from_lines(lines.iter());
        let k = KeyNames {
            name: "a",
            fingerprint: Some("sha256:ff"),
        };
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let h = ev.hourly(k, t("2026-11-24T10:30:00Z"), t("2026-11-24T12:30:00Z"));
        assert_eq!(h.len(), 3);
        assert_eq!(h[0].at, "2026-11-24T10:00:00Z");
        assert_eq!((h[0].calls, h[0].writes, h[0].errors), (2, 1, 0));
        assert_eq!(h[1].calls, 0);
        assert_eq!((h[2].calls, h[2].errors), (1, 1));
        let c = ev.callers(k, t("2026-11-24T00:00:00Z"));
        assert_eq!(c.len(), 2);
        assert_eq!(c[1].network, "10.0.9.0/24");
        assert_eq!(
            ev.networks_before(k, t("2026-11-24T11:00:00Z")),
            ["10.0.0.0/24"]
        );
        assert_eq!(ev.last_used(k), Some(t("2026-11-24T12:00:00Z")));
    }
}
