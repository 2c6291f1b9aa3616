//! The payment detectors: a new payee paid soon after it appeared, an amount far from the
//! payee's or account's history, a new country or currency, and bursts of payouts.

use super::*;

// ---------------------------------------------------------------------------------------------
// watch.new-payee-paid

pub(super) fn new_payee_paid(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let window = crate::clock::minutes(rule.int("minutes"));
    // Airwallex stamps both objects with its own clock; a minute of slack covers rounding.
    let slack = Duration::minutes(1);
    let mut out = Vec::new();
    for t in data.transfers.iter().filter(|t| t.fresh).map(|t| &t.item) {
        let Some(bid) = &t.beneficiary_id else {
            continue;
        };
        let b = data.beneficiaries.get(bid).map(|b| &b.item);
        let within = |since: DateTime<Utc>| {
            let age = t.created_at - since;
            age >= -slack && age <= window
        };
        let (what, since, change) = match b {
            Some(b) if within(b.created_at) => (
                format!("created {} before", fmt_age(t.created_at - b.created_at)),
                Some(b.created_at),
                "created",
            ),
            Some(b) if b.bank_changed_at.is_some_and(within) => {
                let c = b.bank_changed_at.expect("checked");
                (
                    format!(
                        "whose bank details changed {} before",
                        fmt_age(t.created_at - c)
                    ),
                    Some(c),
                    "changed",
                )
            }
            Some(_) => continue,
            None if rule.flag("unknown_payee") && data.gone_beneficiaries.contains(bid) => (
                "a payee the watch never saw and can no longer read (deleted?)".to_string(),
                None,
                "created",
            ),
            None => continue,
        };
        let start = since.unwrap_or(t.created_at).min(t.created_at);
        let mut d = Draft::new(rule, vec![t.id.clone()], start, t.created_at);
        transfer_vars(&mut d, t, b);
        d.vars.insert("what", what.clone());
        d.vars.insert(
            "age",
            since.map_or("an unknown time".into(), |s| fmt_age(t.created_at - s)),
        );
        d.vars.insert("minutes", rule.int("minutes").to_string());
        d.vars
            .insert("changed_at", since.map_or("-".to_string(), fmt_time));
        d.made_by
            .push(who(ctx, problems, "transfer", &t.id, "created"));
        d.made_by
            .push(who(ctx, problems, "beneficiary", bid, change));
        d.evidence = json!({
            "transfer": transfer_json(t),
            "beneficiary": b.map(|b| json!({
                "id": b.id,
                "name": b.name,
                "country": b.country,
                "currency": b.currency,
                "account": b.account,
                "created_at": fmt_time(b.created_at),
                "bank_details_changed_at": b.bank_changed_at.map(fmt_time),
            })).unwrap_or_else(|| json!({"id": bid, "known": false})),
            "trigger": what,
            "paid_after_seconds": since.map(|s| (t.created_at - s).num_seconds()),
            "window_minutes": rule.int("minutes"),
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.amount-outlier

pub(super) fn amount_outlier(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let min_history = rule.int("min_history").max(1) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let z = rule.float("z");
    let min_ratio = rule.float("min_ratio");
    let floor = rule.float("spread_floor");
    let mut out = Vec::new();
    for t in data.transfers.iter().filter(|t| t.fresh).map(|t| &t.item) {
        if t.amount <= 0.0 {
            continue;
        }
        let earlier = |same: &dyn Fn(&Transfer) -> bool| -> Vec<f64> {
            data.transfers
                .iter()
                .map(|o| &o.item)
                .filter(|o| {
                    o.id != t.id
                        && o.created_at <= t.created_at
                        && o.created_at >= t.created_at - horizon
                        && o.currency == t.currency
                        && o.amount > 0.0
                        && same(o)
                })
                .map(|o| o.amount)
                .collect()
        };
        let to_payee = earlier(&|o: &Transfer| {
            t.beneficiary_id.is_some() && o.beneficiary_id == t.beneficiary_id
        });
        let (amounts, baseline) = if to_payee.len() >= min_history {
            let n = to_payee.len();
            (
                to_payee,
                format!(
                    "the last {n} {} transfers to {}",
                    t.currency,
                    t.beneficiary_id.as_deref().unwrap_or("-")
                ),
            )
        } else {
            let all = earlier(&|_| true);
            if all.len() < min_history {
                continue;
            }
            let n = all.len();
            (
                all,
                format!("the last {n} {} transfers of the account", t.currency),
            )
        };
        let logs: Vec<f64> = amounts.iter().map(|a| a.ln()).collect();
        let (m, mad) = median_mad(&logs);
        let spread = mad.max(floor);
        let score = (t.amount.ln() - m) / spread;
        let typical = m.exp();
        let ratio = t.amount / typical;
        if score < z || ratio < min_ratio {
            continue;
        }
        let band_high = (m + z * spread).exp().max(typical * min_ratio);
        let b = t
            .beneficiary_id
            .as_ref()
            .and_then(|id| data.beneficiaries.get(id))
            .map(|b| &b.item);
        let mut d = Draft::new(rule, vec![t.id.clone()], t.created_at, t.created_at);
        transfer_vars(&mut d, t, b);
        d.vars.insert("median", fmt_amount(typical));
        d.vars.insert("ratio", fmt_ratio(ratio));
        d.vars.insert("band_high", fmt_amount(band_high));
        d.vars.insert("baseline", baseline.clone());
        d.vars.insert("history", amounts.len().to_string());
        d.made_by
            .push(who(ctx, problems, "transfer", &t.id, "created"));
        d.evidence = json!({
            "transfer": transfer_json(t),
            "observed": t.amount,
            "expected": {"median": typical, "band_high": band_high},
            "ratio": ratio,
            "robust_z": score,
            "baseline": baseline,
            "history": amounts.len(),
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.new-destination

pub(super) fn new_destination(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let min_history = rule.int("min_history").max(1) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let mut out = Vec::new();
    for (i, t) in data.transfers.iter().enumerate().filter(|(_, t)| t.fresh) {
        let t = &t.item;
        // Transfers before this one (same second: earlier in the list) within the horizon.
        let history: Vec<&Transfer> = data.transfers[..i]
            .iter()
            .map(|o| &o.item)
            .filter(|o| o.created_at >= t.created_at - horizon)
            .collect();
        if history.len() < min_history {
            continue;
        }
        let mut signals = Vec::new();
        let country = country_of(t, data);
        if rule.flag("countries") {
            if let Some(c) = country {
                if !history.iter().any(|h| country_of(h, data) == Some(c)) {
                    signals.push(format!("country {c}"));
                }
            }
        }
        if rule.flag("currencies") && !history.iter().any(|h| h.currency == t.currency) {
            signals.push(format!("currency {}", t.currency));
        }
        if signals.is_empty() {
            continue;
        }
        let b = t
            .beneficiary_id
            .as_ref()
            .and_then(|id| data.beneficiaries.get(id))
            .map(|b| &b.item);
        let mut d = Draft::new(rule, vec![t.id.clone()], t.created_at, t.created_at);
        transfer_vars(&mut d, t, b);
        d.vars.insert("what", signals.join(" and "));
        d.vars.insert("country", country.unwrap_or("-").to_string());
        d.vars.insert("history", history.len().to_string());
        d.made_by
            .push(who(ctx, problems, "transfer", &t.id, "created"));
        let mut seen_countries: Vec<&str> =
            history.iter().filter_map(|h| country_of(h, data)).collect();
        seen_countries.sort_unstable();
        seen_countries.dedup();
        let mut seen_currencies: Vec<&str> = history.iter().map(|h| h.currency.as_str()).collect();
        seen_currencies.sort_unstable();
        seen_currencies.dedup();
        d.evidence = json!({
            "transfer": transfer_json(t),
            "country": country,
            "signals": signals,
            "history": history.len(),
            "countries_paid": seen_countries,
            "currencies_paid": seen_currencies,
            "history_days": rule.int("history_days"),
        });
        out.push(d);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// watch.payout-burst

pub(super) fn payout_burst(
    rule: &WatchRule,
    data: &WatchData,
    ctx: &Context<'_>,
    problems: &mut Vec<String>,
) -> Vec<Draft> {
    let w = crate::clock::minutes(rule.int("window_minutes"));
    let min_count = rule.int("min_count").max(1) as usize;
    let ratio = rule.float("ratio");
    let sum_ratio = rule.float("sum_ratio");
    let min_history = rule.int("min_history").max(0) as usize;
    let horizon = crate::clock::days(rule.int("history_days"));
    let Some(first_fresh) = data
        .transfers
        .iter()
        .filter(|t| t.fresh)
        .map(|t| t.item.created_at)
        .min()
    else {
        return Vec::new();
    };
    let ts: Vec<&Transfer> = data
        .transfers
        .iter()
        .map(|t| &t.item)
        .filter(|t| t.created_at >= first_fresh - horizon - w)
        .collect();
    let fresh: std::collections::HashSet<&str> = data
        .transfers
        .iter()
        .filter(|t| t.fresh)
        .map(|t| t.item.id.as_str())
        .collect();
    let times: Vec<DateTime<Utc>> = ts.iter().map(|t| t.created_at).collect();
    let n = ts.len();
    // (alarming index, its window's first index, the signal)
    let mut firing: BTreeMap<usize, (usize, Vec<String>, usize)> = BTreeMap::new();
    // Count over all payouts.
    {
        let mut l = 0;
        let mut peak_before: Vec<usize> = vec![0; n + 1]; // max window count among windows 0..i
        let mut counts = vec![0usize; n];
        for j in 0..n {
            while times[l] < times[j] - w {
                l += 1;
            }
            counts[j] = j - l + 1;
            peak_before[j + 1] = peak_before[j].max(counts[j]);
            let peak = peak_before[l]; // windows ending before this one starts
            let c = counts[j];
            if c >= min_count && (l < min_history || c as f64 >= ratio * peak as f64) {
                let e = firing.entry(j).or_insert((l, Vec::new(), peak));
                e.1.push(if l < min_history {
                    format!(
                        "{c} payouts in {} (no norm yet: {l} payouts before; at most {} \
                         expected)",
                        fmt_age(w),
                        min_count - 1
                    )
                } else {
                    format!(
                        "{c} payouts in {} where the most in any {} before was {peak}",
                        fmt_age(w),
                        fmt_age(w)
                    )
                });
            }
        }
    }
    // Sum per currency.
    let mut by_cur: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in ts.iter().enumerate() {
        by_cur.entry(t.currency.as_str()).or_default().push(i);
    }
    for (cur, idx) in &by_cur {
        let mut l = 0;
        let mut sum = 0.0;
        let mut peak_before: Vec<f64> = vec![0.0; idx.len() + 1];
        for (k, &j) in idx.iter().enumerate() {
            sum += ts[j].amount;
            while times[idx[l]] < times[j] - w {
                sum -= ts[idx[l]].amount;
                l += 1;
            }
            peak_before[k + 1] = peak_before[k].max(sum);
            let peak = peak_before[l];
            let count = k - l + 1;
            if l >= min_history.max(1) && count >= 2 && peak > 0.0 && sum >= sum_ratio * peak {
                let start = idx[l];
                let e = firing.entry(j).or_insert((start, Vec::new(), 0));
                e.0 = e.0.min(start);
                e.1.push(format!(
                    "{} {cur} in {} where the most in any {} before was {} {cur}",
                    fmt_amount(sum),
                    fmt_age(w),
                    fmt_age(w),
                    fmt_amount(peak)
                ));
            }
        }
    }
    let list: Vec<(usize, usize)> = firing.iter().map(|(j, (s, _, _))| (*j, *s)).collect();
    let mut out = Vec::new();
    for c in chains(&times, &list, w) {
        let members: Vec<&Transfer> = ts[c.first..=c.last].to_vec();
        if !members.iter().any(|t| fresh.contains(t.id.as_str())) {
            continue;
        }
        let anchor = members[0];
        // The strongest signal of each kind (the last firing window holds the most).
        let mut signals: Vec<String> = Vec::new();
        let mut peak_count = 0;
        for j in &c.firing {
            let (_, s, p) = &firing[j];
            for x in s {
                let kind = x.split(" where ").next().unwrap_or(x);
                let kind = kind.split_once(' ').map_or(kind, |(_, k)| k);
                signals.retain(|y: &String| {
                    let yk = y.split(" where ").next().unwrap_or(y);
                    yk.split_once(' ').map_or(yk, |(_, k)| k) != kind
                });
                signals.push(x.clone());
            }
            peak_count = peak_count.max(*p);
        }
        let mut sums: BTreeMap<&str, f64> = BTreeMap::new();
        for t in &members {
            *sums.entry(t.currency.as_str()).or_insert(0.0) += t.amount;
        }
        let sums_text: Vec<String> = sums
            .iter()
            .map(|(c, s)| format!("{} {c}", fmt_amount(*s)))
            .collect();
        let start = anchor.created_at;
        let end = members.last().expect("non-empty").created_at;
        let mut d = Draft::new(rule, vec![anchor.id.clone()], start, end);
        d.vars.insert("count", members.len().to_string());
        d.vars.insert("window", fmt_age(w));
        d.vars.insert("start", fmt_time(start));
        d.vars.insert("end", fmt_time(end));
        d.vars.insert("sums", sums_text.join(", "));
        d.vars.insert("what", signals.join("; "));
        d.vars.insert(
            "expected",
            format!("at most {peak_count} in any {} before", fmt_age(w)),
        );
        let ids: Vec<&str> = members.iter().map(|t| t.id.as_str()).collect();
        d.vars.insert(
            "transfers",
            if ids.len() > 5 {
                format!("{} and {} more", ids[..5].join(", "), ids.len() - 5)
            } else {
                ids.join(", ")
            },
        );
        for t in &members {
            d.made_by
                .push(who(ctx, problems, "transfer", &t.id, "created"));
        }
        d.evidence = json!({
            "count": members.len(),
            "window_minutes": rule.int("window_minutes"),
            "sums": sums,
            "signals": signals,
            "expected": {"peak_count_before": peak_count},
            "transfers": members.iter().take(50).map(|t| transfer_json(t)).collect::<Vec<_>>(),
        });
        out.push(d);
    }
    out
}
