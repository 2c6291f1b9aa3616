//! What an alert is and when it goes out: one alert per key per run holding that key's new
//! findings (folded findings ride inside their carrier), immediate at or above `min_severity`,
//! the rest in the daily digest; repeats while open and not acknowledged; resolved notices;
//! recipients by route. Pure functions over findings, the config and a time: no I/O here.

use crate::config::{AlertsConfig, KeyDecl};
use crate::finding::{Finding, Severity, Status};
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

pub use crate::store::{AlertKind, QueuedAlert};
use sha2::{Digest, Sha256};

/// The key a finding is about: its inventory name, else the fingerprint of its secret.
pub fn group_key(f: &Finding) -> String {
    f.key
        .clone()
        .or_else(|| f.secret.as_ref().map(|s| s.fingerprint.clone()))
        .unwrap_or_else(|| "-".to_string())
}

/// The id of an alert: stable for the same kind, key, findings and planning time, so a message
/// rebuilt from it carries the same `Message-ID`.
pub fn alert_id(kind: AlertKind, key: &str, finding_ids: &[String], at: DateTime<Utc>) -> String {
    let mut ids: Vec<&str> = finding_ids.iter().map(String::as_str).collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    h.update(kind.as_str());
    h.update([0]);
    h.update(key);
    for id in ids {
        h.update([0]);
        h.update(id);
    }
    h.update([0]);
    h.update(at.timestamp_micros().to_be_bytes());
    h.finalize()[..10]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The `Message-ID` of an alert: derived from its id and the sender's domain, so a resend after
/// a crash is recognisably the same message.
pub fn message_id(alert_id: &str, from: &str) -> String {
    let domain = from
        .rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').trim())
        .filter(|d| !d.is_empty())
        .unwrap_or("awxguard.invalid");
    format!("<awxguard.{alert_id}@{domain}>")
}

/// The next digest time strictly after `now`: `at` local time in `tz`.
pub fn next_digest(now: DateTime<Utc>, at: NaiveTime, tz: chrono_tz::Tz) -> DateTime<Utc> {
    let local_today = now.with_timezone(&tz).date_naive();
    for days in 0..=2 {
        let day = local_today + Duration::days(days);
        // A time skipped by a DST change falls to the first valid instant after it.
        let candidate = tz
            .from_local_datetime(&day.and_time(at))
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&day.and_time(at + Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc));
        if let Some(c) = candidate.filter(|c| *c > now) {
            return c;
        }
    }
    now + Duration::days(1)
}

/// Plans the alerts of one recorded run: one per key with new findings (immediate when one of
/// them is at or above `min_severity`, else held for the digest), and, when `resolved_notice`
/// is on, one per key with findings this run resolved that had been alerted.
pub fn plan_run(
    cfg: &AlertsConfig,
    recorded: &[Finding],
    resolved_alerted: &[Finding],
    now: DateTime<Utc>,
) -> Vec<QueuedAlert> {
    let mut out = Vec::new();
    let new: Vec<&Finding> = recorded
        .iter()
        .filter(|f| f.status == Some(Status::New))
        .collect();
    for (key, group) in by_key(&new) {
        let severity = group.iter().map(|f| f.severity).max().expect("non-empty");
        let (kind, due_at) = if severity >= cfg.min_severity {
            (AlertKind::Immediate, now)
        } else {
            (
                AlertKind::Digest,
                next_digest(now, cfg.digest_at, cfg.timezone),
            )
        };
        out.push(planned(kind, key, &group, severity, now, due_at));
    }
    if cfg.resolved_notice {
        let gone: Vec<&Finding> = resolved_alerted.iter().collect();
        for (key, group) in by_key(&gone) {
            let severity = group.iter().map(|f| f.severity).max().expect("non-empty");
            out.push(planned(
                AlertKind::Resolved,
                key,
                &group,
                severity,
                now,
                now,
            ));
        }
    }
    out
}

/// Plans repeats: the standing findings (open, not acknowledged, alerted before) whose last
/// alert is at least `repeat_interval` old, one alert per key, immediate or in the digest as
/// their severity says.
pub fn plan_repeats(
    cfg: &AlertsConfig,
    standing: &[(Finding, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Vec<QueuedAlert> {
    let Some(interval) = cfg.repeat_interval else {
        return Vec::new();
    };
    let interval = Duration::from_std(interval).unwrap_or(Duration::days(1));
    let due: Vec<&Finding> = standing
        .iter()
        .filter(|(f, last)| {
            matches!(f.status, Some(Status::New) | Some(Status::Open)) && *last + interval <= now
        })
        .map(|(f, _)| f)
        .collect();
    let mut out = Vec::new();
    for (key, group) in by_key(&due) {
        let severity = group.iter().map(|f| f.severity).max().expect("non-empty");
        let (kind, due_at) = if severity >= cfg.min_severity {
            (AlertKind::Repeat, now)
        } else {
            (
                AlertKind::Digest,
                next_digest(now, cfg.digest_at, cfg.timezone),
            )
        };
        out.push(planned(kind, key, &group, severity, now, due_at));
    }
    out
}

fn planned(
    kind: AlertKind,
    key: String,
    group: &[&Finding],
    severity: Severity,
    now: DateTime<Utc>,
    due_at: DateTime<Utc>,
) -> QueuedAlert {
    let mut finding_ids: Vec<String> = group.iter().map(|f| f.id.clone()).collect();
    finding_ids.sort();
    finding_ids.dedup();
    QueuedAlert {
        id: alert_id(kind, &key, &finding_ids, now),
        kind,
        key,
        finding_ids,
        severity,
        due_at,
    }
}

/// Groups findings by key, in the order keys first appear.
fn by_key<'a>(findings: &[&'a Finding]) -> Vec<(String, Vec<&'a Finding>)> {
    let mut out: Vec<(String, Vec<&Finding>)> = Vec::new();
    for f in findings {
        let k = group_key(f);
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some((_, g)) => g.push(f),
            None => out.push((k, vec![f])),
        }
    }
    out
}

/// The addresses an alert about a key of `owner` at `severity` goes to: every matching route,
/// else the fallback.
pub fn recipients(cfg: &AlertsConfig, owner: Option<&str>, severity: Severity) -> Vec<String> {
    let mut to: Vec<String> = Vec::new();
    for r in &cfg.routes {
        let owner_ok = r.owner.as_deref().is_none_or(|o| Some(o) == owner);
        let severity_ok = r.min_severity.is_none_or(|m| severity >= m);
        if owner_ok && severity_ok {
            for a in &r.to {
                if !to.contains(a) {
                    to.push(a.clone());
                }
            }
        }
    }
    if to.is_empty() {
        to = cfg.fallback.clone();
    }
    to
}

/// What an alert says about a key: never the key or a token, only its preview and fingerprint.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCard {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Listed scopes of a custom key; empty for the tiers (their kind says what they hold).
    pub scopes: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// Whether the inventory declares this key.
    pub declared: bool,
}

impl KeyCard {
    /// The card of a key: from its `[[key]]` declaration when there is one (the secret is read
    /// only to compute its preview and fingerprint), else what the findings say of it.
    pub fn build(key: &str, decls: &[KeyDecl], findings: &[&Finding]) -> KeyCard {
        let secret_ref = findings.iter().find_map(|f| f.secret.as_ref());
        let decl = decls.iter().find(|d| d.name == key).or_else(|| {
            // A scan finding names its key by fingerprint when it is not in the inventory; a
            // declared key with that fingerprint is the same key.
            secret_ref.and_then(|s| {
                decls.iter().find(|d| {
                    crate::inventory::resolve_secret(&d.secret)
                        .is_ok_and(|x| x.fingerprint() == s.fingerprint)
                })
            })
        });
        let mut card = KeyCard {
            name: key.to_string(),
            preview: secret_ref.map(|s| s.preview.clone()),
            fingerprint: secret_ref.map(|s| s.fingerprint.clone()),
            ..KeyCard::default()
        };
        if let Some(d) = decl {
            card.name = d.name.clone();
            card.declared = true;
            card.owner = d.owner.clone();
            card.environment = serde_json::to_value(d.environment)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            card.kind = serde_json::to_value(d.kind)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string));
            card.scopes = d.scopes.clone();
            if card.fingerprint.is_none() {
                if let Ok(s) = crate::inventory::resolve_secret(&d.secret) {
                    card.preview = Some(s.preview());
                    card.fingerprint = Some(s.fingerprint());
                }
            }
        } else if card.fingerprint.is_none() && key.starts_with("sha256:") {
            card.fingerprint = Some(key.to_string());
        }
        card
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Timelike;

    fn cfg() -> AlertsConfig {
        AlertsConfig::with_sinks(None, None, None)
    }

    fn f(key: &str, rule: &str, sev: Severity, status: Status) -> Finding {
        let mut f = Finding::new(rule, sev, "m", &[key]);
        f.key = Some(key.into());
        f.status = Some(status);
        f
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn one_alert_per_key_per_run_with_all_its_new_findings() {
        let now = t("2026-11-24T12:00:00Z");
        let mut run: Vec<Finding> = (0..5)
            .map(|i| {
                f(
                    "payvy",
                    &format!("privilege.r{i}"),
                    if i == 0 {
                        Severity::Critical
                    } else {
                        Severity::Low
                    },
                    Status::New,
                )
            })
            .collect();
        run.push(f("hooks", "privilege.x", Severity::Medium, Status::New));
        run.push(f("old", "privilege.x", Severity::Critical, Status::Open));
        let plan = plan_run(&cfg(), &run, &[], now);
        assert_eq!(plan.len(), 2, "{plan:?}");
        assert_eq!(plan[0].key, "payvy");
        assert_eq!(plan[0].kind, AlertKind::Immediate);
        assert_eq!(plan[0].finding_ids.len(), 5);
        assert_eq!(plan[0].due_at, now);
        assert_eq!(plan[1].kind, AlertKind::Digest);
        assert_eq!(plan[1].due_at, t("2026-11-25T08:00:00Z"));
    }

    #[test]
    fn digest_time_in_the_configured_zone() {
        let zurich: chrono_tz::Tz = "Europe/Zurich".parse().unwrap();
        let at = NaiveTime::from_hms_opt(8, 0, 0).unwrap();
        // 06:59 UTC is 07:59 in Zurich (CET): today's 08:00 local is 07:00 UTC.
        let d = next_digest(t("2026-11-24T06:59:00Z"), at, zurich);
        assert_eq!(d, t("2026-11-24T07:00:00Z"));
        let d = next_digest(t("2026-11-24T07:00:00Z"), at, zurich);
        assert_eq!(d, t("2026-11-25T07:00:00Z"));
        // Summer time: 08:00 CEST is 06:00 UTC.
        let d = next_digest(t("2026-07-01T12:00:00Z"), at, zurich);
        assert_eq!((d.hour(), d.minute()), (6, 0));
        // 02:30 does not exist on the spring-forward day: the next valid instant.
        let d = next_digest(
            t("2026-03-29T00:00:00Z"),
            NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
            zurich,
        );
        assert_eq!(d, t("2026-03-29T01:30:00Z"));
    }

    #[test]
    fn repeats_after_the_interval_while_open() {
        let now = t("2026-11-24T12:00:00Z");
        let standing = vec![
            (
                f("a", "privilege.x", Severity::Critical, Status::Open),
                now - Duration::hours(24),
            ),
            (
                f("b", "privilege.x", Severity::Critical, Status::Open),
                now - Duration::hours(23),
            ),
            (
                f("c", "privilege.x", Severity::Critical, Status::Acknowledged),
                now - Duration::hours(48),
            ),
            (
                f("d", "privilege.x", Severity::Low, Status::Open),
                now - Duration::hours(48),
            ),
        ];
        let plan = plan_repeats(&cfg(), &standing, now);
        let got: Vec<(&str, AlertKind)> = plan.iter().map(|p| (p.key.as_str(), p.kind)).collect();
        assert_eq!(
            got,
            vec![("a", AlertKind::Repeat), ("d", AlertKind::Digest)]
        );
        let mut off = cfg();
        off.repeat_interval = None;
        assert!(plan_repeats(&off, &standing, now).is_empty());
    }

    #[test]
    fn resolved_notices_only_when_asked() {
        let now = t("2026-11-24T12:00:00Z");
        let gone = vec![f("a", "privilege.x", Severity::High, Status::Resolved)];
        assert!(plan_run(&cfg(), &[], &gone, now).is_empty());
        let mut c = cfg();
        c.resolved_notice = true;
        let plan = plan_run(&c, &[], &gone, now);
        assert_eq!(plan[0].kind, AlertKind::Resolved);
    }

    #[test]
    fn routes_by_owner_and_severity_with_fallback() {
        let mut c = cfg();
        c.fallback = vec!["sec@x.test".into()];
        c.routes = vec![
            crate::config::Route {
                owner: Some("payments".into()),
                min_severity: None,
                to: vec!["pay@x.test".into()],
            },
            crate::config::Route {
                owner: None,
                min_severity: Some(Severity::Critical),
                to: vec!["oncall@x.test".into()],
            },
        ];
        assert_eq!(
            recipients(&c, Some("payments"), Severity::Critical),
            vec!["pay@x.test", "oncall@x.test"]
        );
        assert_eq!(
            recipients(&c, Some("payments"), Severity::Low),
            vec!["pay@x.test"]
        );
        assert_eq!(
            recipients(&c, Some("web"), Severity::High),
            vec!["sec@x.test"]
        );
        assert_eq!(
            recipients(&c, None, Severity::Critical),
            vec!["oncall@x.test"]
        );
    }

    #[test]
    fn message_ids_derive_from_the_alert_id() {
        assert_eq!(
            message_id("abc", "awxguard <alerts@example.com>"),
            "<awxguard.abc@example.com>"
        );
        let now = t("2026-11-24T12:00:00Z");
        let ids = vec!["b".to_string(), "a".to_string()];
        let rev = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            alert_id(AlertKind::Immediate, "k", &ids, now),
            alert_id(AlertKind::Immediate, "k", &rev, now)
        );
        assert_ne!(
            alert_id(AlertKind::Immediate, "k", &ids, now),
            alert_id(AlertKind::Repeat, "k", &ids, now)
        );
    }
}
