use super::*;
use crate::finding::{Action, Recommendation, SecretRef};

pub(crate) fn sample(now: DateTime<Utc>) -> (Vec<Group>, AlertsConfig) {
    let mut f = Finding::new(
        "privilege.admin-key",
        Severity::Critical,
        "payvy-prod is an admin key (production): it can call every Airwallex API",
        &["payvy-prod"],
    );
    f.key = Some("payvy-prod".into());
    f.status = Some(Status::New);
    f.start = Some("2026-11-20T10:15:00Z".into());
    f.end = Some("2026-11-23T18:00:00Z".into());
    f.also = vec!["privilege.unused-scope".into()];
    f.evidence = Some(serde_json::json!({
        "observed": "admin key",
        "expected": "a scoped key with the scopes its calls need",
        "events": 20,
        "source_ips": ["203.0.113.7", "198.51.100.2"],
        "samples": [{"ts": "2026-11-20T10:15:00Z", "path": "/api/v1/transfers"}],
    }));
    f.recommendation = Some(Recommendation {
        action: Action::Narrow,
        steps: vec![
            "Create a scoped key named \"payvy-prod-scoped\" with transfer:read".into(),
            "Delete the admin key payvy-prod".into(),
        ],
        replacement: None,
    });
    let mut folded = Finding::new(
        "privilege.unused-scope",
        Severity::Medium,
        "payvy-prod has 36 unused scopes",
        &["payvy-prod", "u"],
    );
    folded.key = Some("payvy-prod".into());
    let mut leak = Finding::new(
        "leak.airwallex.api-key",
        Severity::High,
        "Airwallex API key in src/pay.py",
        &["x"],
    );
    leak.key = Some("payvy-prod".into());
    leak.path = Some("src/pay.py".into());
    leak.line = Some(3);
    leak.status = Some(Status::Open);
    leak.secret = Some(SecretRef {
        preview: "3f9a…c21e".into(),
        fingerprint: "sha256:0011223344556677".into(),
        client_id: None,
    });
    let card = KeyCard {
        name: "payvy-prod".into(),
        owner: Some("payments".into()),
        environment: Some("production".into()),
        kind: Some("admin".into()),
        scopes: vec![],
        preview: Some("3f9a…c21e".into()),
        fingerprint: Some("sha256:0011223344556677".into()),
        declared: true,
    };
    let items = [f, folded, leak]
        .into_iter()
        .map(|finding| Item {
            first_seen: if finding.status == Some(Status::Open) {
                now - chrono::Duration::days(3)
            } else {
                now
            },
            finding,
            last_seen: now,
        })
        .collect();
    let mut cfg = AlertsConfig::with_sinks(None, None, None);
    cfg.timezone = "Europe/Zurich".parse().unwrap();
    cfg.from = "awxguard <alerts@example.com>".into();
    (vec![Group { key: card, items }], cfg)
}

#[test]
fn immediate_alert_says_everything_on_call_needs() {
    let now = parse_time("2026-11-24T12:00:00Z").unwrap();
    let (groups, cfg) = sample(now);
    let doc = build(
        AlertKind::Immediate,
        "abc123",
        groups,
        vec!["oncall@example.com".into()],
        &cfg,
        &Titles(HashMap::from([(
            "privilege.admin-key".to_string(),
            "Admin key in use".to_string(),
        )])),
        now,
    );
    assert_eq!(
        doc.subject,
        "[CRITICAL] awxguard: Admin key in use (+1 more) - key payvy-prod (3f9a…c21e) - production"
    );
    assert_eq!(doc.message_id, "<awxguard.abc123@example.com>");
    // The folded finding rides inside its carrier.
    assert_eq!(doc.groups[0].findings.len(), 2);
    assert_eq!(doc.groups[0].findings[0].folded.len(), 1);
    let t = &doc.text;
    for want in [
        "Observed:  admin key",
        "Expected:  a scoped key",
        "Evidence window: 2026-11-20 10:15 UTC to 2026-11-23 18:00 UTC (Europe/Zurich: 2026-11-20 11:15 CET to 2026-11-23 19:00 CET)",
        "Owner        payments",
        "Fingerprint  sha256:0011223344556677",
        "source_ips: 203.0.113.7, 198.51.100.2",
        "1. Create a scoped key named \"payvy-prod-scoped\" with transfer:read",
        "2. Delete the admin key payvy-prod",
        "Status:      new",
        "Status:      open for 3 days",
        "Where: src/pay.py:3",
        "privilege.unused-scope",
    ] {
        assert!(t.contains(want), "missing {want:?} in:\n{t}");
    }
    let id = &doc.groups[0].findings[0].finding.id;
    assert!(t.contains(&format!(
        "awxguard findings ack {id} --reason \"...\" --expires 30d"
    )));
    let h = html(&doc);
    assert!(
        h.contains("<li>Delete the admin key payvy-prod</li>"),
        "{h}"
    );
    assert!(h.contains("&quot;payvy-prod-scoped&quot;"));
    let json = serde_json::to_value(&doc).unwrap();
    let back: AlertDoc = serde_json::from_value(json).unwrap();
    assert_eq!(back, doc);
}

#[test]
fn scrub_hides_keys_and_tokens() {
    let key = "ab".repeat(48);
    let s = scrub(&format!(
        "key {key} token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NSJ9.abc"
    ));
    assert!(s.starts_with("key [redacted abab…abab sha256:"), "{s}");
    assert!(!s.contains(&key[..41]) && !s.contains("eyJzdWIi"), "{s}");
}

#[test]
fn digest_subject_counts() {
    let now = parse_time("2026-11-24T12:00:00Z").unwrap();
    let (groups, cfg) = sample(now);
    let doc = build(
        AlertKind::Digest,
        "d1",
        groups,
        vec![],
        &cfg,
        &Titles::default(),
        now,
    );
    assert_eq!(
        doc.subject,
        "[DIGEST] awxguard: 2 findings on 1 key - 2026-11-24"
    );
}
