//! One event of a source: checked, deduplicated run-wide, screened, and added to its key's
//! aggregate.

use super::super::screen::Call;
use super::{
    bump, check, max_t, min_t, opt, unknown_template, Checked, KeyAgg, Normalized, Partial,
    RawEvent, RouteAgg, Seen,
};
use crate::airwallex::Catalog;

pub(super) fn ingest_event<'c>(
    ev: &RawEvent<'_>,
    line_no: u64,
    partial: &mut Partial<'c>,
    catalog: &'c Catalog,
    seen: &Seen,
    method_buf: &mut String,
) {
    let key = ev.key.as_str();
    let Checked { ts, path } = match check(ev, method_buf) {
        Ok(c) => c,
        Err(msg) => {
            partial.reject(line_no, msg);
            return;
        }
    };
    if let Some(limit) = seen.not_after {
        if ts > limit {
            partial.reject(
                line_no,
                format!(
                    "field `ts` {} is in the future (after {}: now plus the allowed clock skew, \
                     [usage] max_future); rejected",
                    ts.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    limit.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            );
            return;
        }
    }
    let method = method_buf.as_str();
    let norm = Normalized {
        ts: ts.timestamp(),
        ts_nanos: ts.timestamp_subsec_nanos(),
        key,
        method,
        path,
        status: ev.status,
        source_ip: opt(&ev.source_ip),
        user_agent: opt(&ev.user_agent),
        account_id: opt(&ev.account_id),
        latency_bits: ev.latency_ms.map(f64::to_bits),
        host: opt(&ev.host),
        via: opt(&ev.via),
    };
    partial.valid += 1;
    partial.first = min_t(partial.first, ts);
    partial.last = max_t(partial.last, ts);
    let fresh = seen.first_time(&norm);
    // The key appears in this source (it covers the key) even when its events are duplicates
    // or screened out.
    if !partial.keys.contains_key(key) {
        partial.keys.insert(key.to_string(), KeyAgg::default());
    }
    if !fresh {
        partial.duplicates += 1;
        return;
    }
    let ok = (200..300).contains(&ev.status);
    let route = catalog.route_ref(method, path);
    if let Some(screen) = partial.screen {
        // Not evidence of need: kept aside, reported, never learnt from.
        let reasons = screen.judge(
            key,
            ts,
            route.map(|r| (r.template, r.scope)),
            opt(&ev.source_ip),
            opt(&ev.via) == Some("proxy"),
        );
        if reasons.any() {
            let unknown;
            let call = Call {
                ts,
                route: match &route {
                    Some(r) => r.template,
                    None => {
                        unknown = format!("{method} {}", unknown_template(path));
                        &unknown
                    }
                },
                source_ip: opt(&ev.source_ip),
                ok,
                write: !matches!(method, "GET" | "HEAD" | "OPTIONS"),
            };
            partial
                .screened
                .entry(key.to_string())
                .or_default()
                .add(&reasons, &call);
            return;
        }
    }
    let agg = partial.keys.get_mut(key).expect("entered above");
    agg.events += 1;
    agg.first = min_t(agg.first, ts);
    agg.last = max_t(agg.last, ts);
    match route {
        Some(r) => {
            agg.routes
                .entry(r.template)
                .or_insert_with(|| RouteAgg {
                    scope: r.scope,
                    ..RouteAgg::default()
                })
                .add(ts, ok);
            // A refused call (401/403) does not show the key needs the scope; any other does.
            if let Some(s) = r.scope {
                if ev.status != 401 && ev.status != 403 {
                    let t = agg.scopes.entry(s).or_insert(ts);
                    *t = (*t).max(ts);
                }
            }
        }
        None => {
            let k = format!("{method} {}", unknown_template(path));
            agg.unknown.entry(k).or_default().add(ts, ok);
        }
    }
    if let Some(ip) = &ev.source_ip {
        bump(&mut agg.ips, ip.as_str());
    }
    if let Some(ua) = &ev.user_agent {
        bump(&mut agg.agents, ua.as_str());
    }
    if let Some(h) = &ev.host {
        let h = h.as_str();
        if h.bytes().any(|b| b.is_ascii_uppercase()) {
            bump(&mut agg.hosts, &h.to_ascii_lowercase());
        } else {
            bump(&mut agg.hosts, h);
        }
    }
    if let Some(a) = &ev.account_id {
        bump(&mut agg.accounts, a.as_str());
    }
    *agg.statuses.entry(ev.status).or_insert(0) += 1;
}
