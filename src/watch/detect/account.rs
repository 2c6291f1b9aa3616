//! The account detectors: a webhook pointed somewhere new, and a balance falling faster than it
//! has before.

use super::*;
// ---------------------------------------------------------------------------------------------
// watch.webhook-changed

/// The host of a URL (lowercase, without port).
pub fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let auth = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = auth.rsplit('@').next().unwrap_or(auth);
    let host = if host.starts_with('[') {
        host.split(']')
            .next()
            .unwrap_or(host)
            .trim_start_matches('[')
    } else {
        host.split(':').next().unwrap_or(host)
    };
    host.to_ascii_lowercase()
}

pub(super) fn webhook_changed(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let trusted: Vec<String> = rule
        .strings("trusted_hosts")
        .iter()
        .map(|h| h.to_ascii_lowercase())
        .collect();
    let mut out = Vec::new();
    for w in data.webhooks.iter().filter(|w| w.fresh) {
        let (what, change) = match &w.previous {
            None => {
                if data.webhook_baseline.is_some_and(|b| w.item.created_at < b) {
                    continue;
                }
                ("created".to_string(), "created")
            }
            Some(p) if p.url != w.item.url => (format!("changed from {}", p.url), "changed"),
            Some(_) => continue,
        };
        let host = url_host(&w.item.url);
        let is_trusted = trusted
            .iter()
            .any(|t| host == *t || host.ends_with(&format!(".{t}")));
        let at = if change == "created" {
            w.item.created_at
        } else {
            data.now
        };
        let mut d = Draft::new(rule, vec![w.item.id.clone(), w.item.url.clone()], at, at);
        if is_trusted {
            d.severity = rule.severity_param("severity_trusted");
        }
        d.vars.insert("webhook", w.item.id.clone());
        d.vars.insert("url", w.item.url.clone());
        d.vars.insert("host", host.clone());
        d.vars.insert("what", what.clone());
        d.vars.insert(
            "previous_url",
            w.previous.as_ref().map_or("-".into(), |p| p.url.clone()),
        );
        d.made_by
            .push(who(ctx, problems, "webhook", &w.item.id, change));
        d.evidence = json!({
            "webhook": {
                "id": w.item.id,
                "url": w.item.url,
                "events": w.item.events,
                "created_at": fmt_time(w.item.created_at),
            },
            "previous_url": w.previous.as_ref().map(|p| p.url.clone()),
            "host": host,
            "trusted_host": is_trusted,
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.balance-drop

pub(super) fn balance_drop(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let w = crate::clock::hours(rule.int("window_hours"));
    let z = rule.float("z");
    let min_share = rule.float("min_share");
    let cold_share = rule.float("cold_share");
    let min_windows = rule.int("min_windows").max(1) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let mut by_cur: BTreeMap<&str, Vec<&Obs<BalancePoint>>> = BTreeMap::new();
    for p in &data.balances {
        by_cur.entry(p.item.currency.as_str()).or_default().push(p);
    }
    let mut out = Vec::new();
    for (cur, pts) in by_cur {
        let Some(first_fresh) = pts
            .iter()
            .filter(|p| p.fresh)
            .map(|p| p.item.posted_at)
            .min()
        else {
            continue;
        };
        let pts: Vec<&Obs<BalancePoint>> = pts
            .into_iter()
            .filter(|p| p.item.posted_at >= first_fresh - horizon - w - w)
            .collect();
        let times: Vec<DateTime<Utc>> = pts.iter().map(|p| p.item.posted_at).collect();
        let n = pts.len();
        // The drop at each point: the highest balance since one window before (the level at
        // the window's start included) minus the balance now.
        let mut drops = vec![(0.0f64, 0.0f64, 0usize); n]; // (drop, peak, window start index)
        for j in 0..n {
            let start = times[j] - w;
            let l = times.partition_point(|t| *t < start);
            let carry = l.checked_sub(1).map(|i| pts[i].item.balance);
            let peak = pts[l..=j]
                .iter()
                .map(|p| p.item.balance)
                .chain(carry)
                .fold(f64::MIN, f64::max);
            drops[j] = ((peak - pts[j].item.balance).max(0.0), peak, l.min(j));
        }
        // Each earlier window's worst drop, windows tiled from the epoch; quiet windows between
        // the first and the last count as no drop.
        let tile = |t: DateTime<Utc>| t.timestamp().div_euclid(w.num_seconds().max(1));
        let mut tiles: BTreeMap<i64, f64> = BTreeMap::new();
        for j in 0..n {
            let e = tiles.entry(tile(times[j])).or_insert(0.0);
            *e = e.max(drops[j].0);
        }
        let mut firing = Vec::new();
        let mut bands: HashMap<usize, (f64, usize, f64)> = HashMap::new();
        for j in 0..n {
            let (drop, peak, l) = drops[j];
            if drop <= 0.0 || peak <= 0.0 {
                continue;
            }
            let share = drop / peak;
            let here = tile(times[j]);
            let first_tile = tile(times[j] - horizon);
            let hist: Vec<f64> = if first_tile >= here - 1 {
                Vec::new()
            } else {
                match tiles.range(first_tile..here - 1).next() {
                    Some((&k0, _)) => (k0..here - 1)
                        .map(|k| tiles.get(&k).copied().unwrap_or(0.0))
                        .collect(),
                    None => Vec::new(),
                }
            };
            let (fire, band) = if hist.len() >= min_windows {
                let (m, mad) = median_mad(&hist);
                let band = m + z * mad.max(0.01 * peak);
                (drop > band && share >= min_share, band)
            } else {
                (share >= cold_share, peak * cold_share)
            };
            if fire {
                firing.push((j, l));
                bands.insert(j, (band, hist.len(), share));
            }
        }
        for c in chains(&times, &firing, w) {
            let members = &pts[c.first..=c.last];
            if !members.iter().any(|p| p.fresh) {
                continue;
            }
            // The worst point of the chain.
            let worst = *c
                .firing
                .iter()
                .max_by(|a, b| drops[**a].0.total_cmp(&drops[**b].0))
                .expect("a chain has a firing point");
            let (drop, peak, _) = drops[worst];
            let (band, windows, share) = bands[&worst];
            let anchor = &pts[c.firing[0]].item;
            let start = times[drops[c.firing[0]].2];
            let end = times[c.last];
            let mut d = Draft::new(rule, vec![cur.to_string(), anchor.id.clone()], start, end);
            d.vars.insert("currency", cur.to_string());
            d.vars.insert("drop", fmt_amount(drop));
            d.vars.insert("peak", fmt_amount(peak));
            d.vars
                .insert("balance", fmt_amount(pts[worst].item.balance));
            d.vars.insert("share", format!("{:.0}%", share * 100.0));
            d.vars.insert("window", fmt_age(w));
            d.vars.insert("start", fmt_time(start));
            d.vars.insert("end", fmt_time(end));
            let baseline = if windows >= min_windows {
                format!(
                    "its worst {} drops over the last {windows} windows",
                    fmt_age(w)
                )
            } else {
                format!(
                    "too little history ({windows} windows): flagged because it lost at least {:.0}%",
                    cold_share * 100.0
                )
            };
            d.vars.insert("baseline", baseline.clone());
            d.vars.insert("expected", fmt_amount(band));
            // The largest outflows in the chain, and who made them when they name a transfer.
            let mut outflows: Vec<&BalancePoint> = members
                .iter()
                .map(|p| &p.item)
                .filter(|p| p.amount < 0.0)
                .collect();
            outflows.sort_by(|a, b| a.amount.total_cmp(&b.amount));
            outflows.truncate(5);
            d.vars.insert(
                "outflows",
                if outflows.is_empty() {
                    "-".into()
                } else {
                    outflows
                        .iter()
                        .map(|p| {
                            format!(
                                "{} {cur}{}",
                                fmt_amount(p.amount),
                                p.source
                                    .as_ref()
                                    .map_or(String::new(), |s| format!(" ({s})"))
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            );
            for p in &outflows {
                if let Some(s) = &p.source {
                    d.made_by.push(who(ctx, problems, "transfer", s, "created"));
                }
            }
            d.evidence = json!({
                "currency": cur,
                "observed": {"drop": drop, "peak": peak, "balance": pts[worst].item.balance, "share": share},
                "expected": {"band_high": band},
                "baseline": baseline,
                "windows": windows,
                "window_hours": rule.int("window_hours"),
                "outflows": outflows.iter().map(|p| json!({
                    "id": p.id, "amount": p.amount, "posted_at": fmt_time(p.posted_at), "source": p.source,
                })).collect::<Vec<_>>(),
            });
            out.push(d);
        }
    }
    out
}
