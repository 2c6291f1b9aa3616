//! Least-privilege rules through the library API (`awxguard::privilege::evaluate`) with
//! hand-built key facts and usage evidence read from real JSONL files; recommendation snapshots;
//! `awxguard rules check` through the binary.

use crate::common::{self, fingerprint, key, run, tempdir, write};
use awxguard::finding::{Finding, Verification};
use awxguard::privilege::{
    evaluate, Catalog, Environment, KeyDescription, KeyFacts, KeyKind, LeakFact, LoginFacts,
    PrivilegeRules, SecretSource, Storage,
};
use awxguard::usage::{read_evidence, Evidence};
use chrono::{DateTime, NaiveDate, Utc};
use std::collections::BTreeMap;

fn now() -> DateTime<Utc> {
    "2026-11-24T12:00:00Z".parse().unwrap()
}

/// A well-kept production key: owner, purpose, recent rotation, whitelist, env secret, live.
fn clean(name: &str, scopes: &[&str]) -> KeyFacts {
    KeyFacts {
        key: KeyDescription {
            name: name.to_string(),
            client_id: common::client_id(name),
            environment: Environment::Production,
            kind: KeyKind::Custom,
            scopes: scopes.iter().map(|s| s.to_string()).collect(),
            owner: Some("finance-eng".into()),
            purpose: Some("reconciliation".into()),
            integration: Some("ERP sync".into()),
            created: Some(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()),
            rotated: None,
            ip_whitelist: vec!["203.0.113.7/32".into()],
            consumers: vec!["erp-sync".into()],
            declared_at: "awxguard.toml:4".into(),
            config_problems: vec![],
        },
        declared: true,
        fingerprint: Some(fingerprint(&key(name))),
        declared_scopes: scopes.iter().map(|s| s.to_string()).collect(),
        storage: Storage {
            source: SecretSource::Env {
                var: "ERP_AIRWALLEX_API_KEY".into(),
            },
            file_mode: None,
            world_readable: false,
            group_readable: false,
            in_git_work_tree: None,
            plaintext_locations: vec![],
        },
        secret_problem: None,
        login: Some(LoginFacts {
            verification: Verification::Live,
            detail: String::new(),
            permissions: None,
            base_url: "https://api.airwallex.com".into(),
        }),
        leaks: vec![],
        found_by: Default::default(),
    }
}

/// One event line of the contract.
fn ev(ts: &str, key: &str, method: &str, path: &str, status: u16) -> String {
    format!(
        r#"{{"ts":"{ts}","key":"{key}","method":"{method}","path":"{path}","status":{status},"source_ip":"203.0.113.7","host":"api.airwallex.com","user_agent":"erp-sync/1.4"}}"#
    )
}

/// Evidence from `lines`, written to a real file and read back.
fn evidence(lines: &[String]) -> Evidence {
    let dir = tempdir();
    write(dir.path(), "usage.jsonl", lines.join("\n"));
    read_evidence(&[dir.path().join("usage.jsonl")], &Catalog::builtin()).unwrap()
}

/// Reads of transfers and balances by `key` from August to November (covers 90 days).
fn reads(key: &str) -> Vec<String> {
    vec![
        ev("2026-08-01T09:00:00Z", key, "GET", "/api/v1/transfers", 200),
        ev(
            "2026-10-01T09:00:00Z",
            key,
            "GET",
            "/api/v1/balances/current",
            200,
        ),
        ev(
            "2026-11-20T09:00:00Z",
            key,
            "GET",
            "/api/v1/transfers/7c1e2b9a-4d3f-4a51-9e2b-0f6c3a8d1e55",
            200,
        ),
    ]
}

fn judge(facts: &[KeyFacts], ev: Option<&Evidence>) -> Vec<Finding> {
    evaluate(
        facts,
        ev,
        &Catalog::builtin(),
        &PrivilegeRules::builtin(),
        now(),
    )
}

fn rules_of(found: &[Finding]) -> Vec<&str> {
    found.iter().map(|f| f.rule.as_str()).collect()
}

/// Reported: on its own, or folded into a stronger finding on the same key (in its `also`:
/// one incident, one finding, issue 16).
fn fires(found: &[Finding], rule: &str) -> bool {
    found
        .iter()
        .any(|f| f.rule == rule || f.also.iter().any(|a| a == rule))
}

/// The finding that carries `rule` folded in.
fn carrier<'a>(found: &'a [Finding], rule: &str) -> &'a Finding {
    found
        .iter()
        .find(|f| f.also.iter().any(|a| a == rule))
        .unwrap_or_else(|| panic!("nothing carries {rule}: {:?}", rules_of(found)))
}

/// The message a folded finding had, from its carrier's `evidence.folded`.
fn folded_message(carrier: &Finding, rule: &str) -> String {
    carrier.evidence.as_ref().unwrap()["folded"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["rule"] == rule)
        .unwrap_or_else(|| panic!("{rule} not in {:?}", carrier.evidence))["message"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn a_well_kept_key_with_evidence_gives_no_finding() {
    let f = clean("erp", &["transfer:read", "balance:read"]);
    let found = judge(&[f], Some(&evidence(&reads("erp"))));
    assert!(found.is_empty(), "{:#?}", rules_of(&found));
}

#[test]
fn without_evidence_the_evidence_rules_say_not_judged() {
    let f = clean("erp", &["transfer:read", "balance:read"]);
    let found = judge(&[f], None);
    assert_eq!(rules_of(&found), ["privilege.not-judged"]);
    assert!(found[0]
        .message
        .contains("not judged: no usage evidence for this key"));
    assert_eq!(found[0].severity.as_str(), "info");
}

#[test]
fn admin_key_fires_critical_in_production_and_high_in_sandbox() {
    let mut f = clean("erp", &[]);
    f.kind = KeyKind::Admin;
    let found = judge(std::slice::from_ref(&f), Some(&evidence(&reads("erp"))));
    let admin = found
        .iter()
        .find(|x| x.rule == "privilege.admin-key")
        .unwrap();
    assert_eq!(admin.severity.as_str(), "critical");
    let rep = admin
        .recommendation
        .as_ref()
        .unwrap()
        .replacement
        .clone()
        .unwrap();
    assert_eq!(
        rep["scopes"],
        serde_json::json!(["balance:read", "transfer:read"])
    );
    f.environment = Environment::Sandbox;
    let found = judge(&[f], Some(&evidence(&reads("erp"))));
    let admin = found
        .iter()
        .find(|x| x.rule == "privilege.admin-key")
        .unwrap();
    assert_eq!(admin.severity.as_str(), "high");
    let scoped = judge(&[clean("erp", &["transfer:read", "balance:read"])], None);
    assert!(!fires(&scoped, "privilege.admin-key"));
}

#[test]
fn disguised_admin_and_declared_mismatch_read_the_token() {
    let mut f = clean("erp", &["transfer:read"]);
    f.login.as_mut().unwrap().permissions = Some(vec!["r:awx:*:*".into(), "w:awx:*:*".into()]);
    let found = judge(std::slice::from_ref(&f), None);
    assert!(fires(&found, "privilege.disguised-admin"));
    assert!(fires(&found, "privilege.admin-key"));
    assert!(!fires(&found, "privilege.permissions-unknown"));
    // one incident: the admin key carries the disguise
    assert_eq!(
        carrier(&found, "privilege.disguised-admin").rule,
        "privilege.admin-key"
    );

    f.kind = KeyKind::ReadOnly;
    f.declared_scopes = vec![];
    f.login.as_mut().unwrap().permissions =
        Some(vec!["r:awx:*:*".into(), "w:awx:payouts:*".into()]);
    let found = judge(std::slice::from_ref(&f), None);
    assert!(fires(&found, "privilege.declared-mismatch"));
    assert!(!fires(&found, "privilege.disguised-admin"));
    let unknown = found
        .iter()
        .find(|x| x.rule == "privilege.permissions-unknown")
        .unwrap();
    assert!(
        unknown.message.contains("not documented"),
        "{}",
        unknown.message
    );

    f.login.as_mut().unwrap().permissions = Some(vec!["r:awx:*:*".into()]);
    let found = judge(&[f], None);
    assert!(!fires(&found, "privilege.declared-mismatch"));
    assert!(!fires(&found, "privilege.permissions-unknown"));
}

/// Issue 5 review: a key declared read_write has read and write on everything, so its token may
/// show the admin strings; Airwallex documents only those, as full access. That is a low
/// `declared-mismatch` saying so, not a disguised admin; read_only and custom keys with the admin
/// strings stay disguised admins.
#[test]
fn read_write_key_with_full_access_token_is_a_low_mismatch_not_a_disguised_admin() {
    let mut f = clean("ledger", &[]);
    f.kind = KeyKind::ReadWrite;
    f.declared_scopes = Catalog::builtin().all_ids();
    f.login.as_mut().unwrap().permissions = Some(vec!["r:awx:*:*".into(), "w:awx:*:*".into()]);
    let found = judge(std::slice::from_ref(&f), None);
    assert!(
        !fires(&found, "privilege.disguised-admin"),
        "{:?}",
        rules_of(&found)
    );
    assert!(
        !fires(&found, "privilege.admin-key"),
        "{:?}",
        rules_of(&found)
    );
    let m = found
        .iter()
        .find(|x| x.rule == "privilege.declared-mismatch")
        .unwrap_or_else(|| panic!("{:?}", rules_of(&found)));
    assert_eq!(m.severity.as_str(), "low");
    assert!(
        m.message
            .contains("Airwallex does not document how read_write tokens look"),
        "{}",
        m.message
    );
    // the same token on a read_only key is an admin in disguise, critical in production (carried
    // by the admin-key finding: one incident)
    f.kind = KeyKind::ReadOnly;
    f.declared_scopes = Catalog::builtin().read_ids();
    let found = judge(&[f], None);
    let d = carrier(&found, "privilege.disguised-admin");
    assert_eq!(d.rule, "privilege.admin-key");
    assert_eq!(d.severity.as_str(), "critical");
    assert!(!fires(&found, "privilege.declared-mismatch"));
}

#[test]
fn write_never_used_fires_on_reads_only_and_not_when_a_write_is_made() {
    let f = clean("erp", &["transfer:read", "transfer:write", "balance:read"]);
    let found = judge(std::slice::from_ref(&f), Some(&evidence(&reads("erp"))));
    let w = found
        .iter()
        .find(|x| x.rule == "privilege.write-never-used")
        .unwrap();
    assert!(w.message.contains("transfer:write"), "{}", w.message);
    let mut lines = reads("erp");
    lines.push(ev(
        "2026-11-21T09:00:00Z",
        "erp",
        "POST",
        "/api/v1/transfers/create",
        201,
    ));
    let found = judge(&[f], Some(&evidence(&lines)));
    assert!(
        !fires(&found, "privilege.write-never-used"),
        "{:?}",
        rules_of(&found)
    );
}

#[test]
fn unused_scope_is_judged_only_over_a_covered_window() {
    let f = clean(
        "erp",
        &["transfer:read", "balance:read", "beneficiary:read"],
    );
    let found = judge(std::slice::from_ref(&f), Some(&evidence(&reads("erp"))));
    let u = found
        .iter()
        .find(|x| x.rule == "privilege.unused-scope")
        .unwrap();
    assert!(u.message.contains("beneficiary:read"), "{}", u.message);
    assert!(!u.message.contains("transfer:read"), "{}", u.message);
    // evidence starting inside the window: not judged, and said so
    let late = vec![ev(
        "2026-11-01T09:00:00Z",
        "erp",
        "GET",
        "/api/v1/transfers",
        200,
    )];
    let found = judge(std::slice::from_ref(&f), Some(&evidence(&late)));
    assert!(!fires(&found, "privilege.unused-scope"));
    let nj = found
        .iter()
        .find(|x| x.rule == "privilege.not-judged")
        .unwrap();
    assert!(nj.message.contains("starts 2026-11-01"), "{}", nj.message);
    // a key created inside the window: not judged either
    let mut young = f;
    young.created = Some(NaiveDate::from_ymd_opt(2026, 10, 1).unwrap());
    let found = judge(&[young], Some(&evidence(&reads("erp"))));
    assert!(!fires(&found, "privilege.unused-scope"));
    assert!(fires(&found, "privilege.not-judged"));
}

#[test]
fn unused_key_fires_when_idle_over_the_window_and_not_when_recent() {
    let f = clean("erp", &["transfer:read"]);
    let idle = vec![
        ev(
            "2026-07-01T09:00:00Z",
            "erp",
            "GET",
            "/api/v1/transfers",
            200,
        ),
        ev(
            "2026-11-20T09:00:00Z",
            "other",
            "GET",
            "/api/v1/transfers",
            200,
        ),
    ];
    let found = judge(
        &[f.clone(), clean("other", &["transfer:read"])],
        Some(&evidence(&idle)),
    );
    let u = found
        .iter()
        .find(|x| x.rule == "privilege.unused-key" && x.key.as_deref() == Some("erp"))
        .unwrap();
    assert_eq!(
        u.recommendation.as_ref().unwrap().action,
        awxguard::finding::Action::Revoke
    );
    // a key absent from evidence covering the window
    let found = judge(
        &[
            clean("ghost", &["transfer:read"]),
            clean("other", &["transfer:read"]),
        ],
        Some(&evidence(&idle)),
    );
    assert!(found
        .iter()
        .any(|x| x.rule == "privilege.unused-key" && x.key.as_deref() == Some("ghost")));
    let found = judge(&[f], Some(&evidence(&reads("erp"))));
    assert!(!fires(&found, "privilege.unused-key"));
}

#[test]
fn rotation_whitelist_storage_owner_rules() {
    let mut f = clean("erp", &["transfer:read"]);
    f.created = Some(NaiveDate::from_ymd_opt(2025, 1, 1).unwrap());
    f.ip_whitelist.clear();
    f.owner = None;
    f.storage.source = SecretSource::Literal { accepted: false };
    f.storage.world_readable = true;
    f.storage.file_mode = Some(0o100644);
    f.storage.in_git_work_tree = Some("/srv/erp".into());
    f.secret_problem = Some("environment variable ERP_AIRWALLEX_API_KEY is not set".into());
    let found = judge(&[f], Some(&evidence(&reads("erp"))));
    for r in [
        "privilege.rotation-overdue",
        "privilege.no-ip-whitelist",
        "privilege.missing-owner",
        "privilege.secret-literal",
        "privilege.secret-file-readable",
        "privilege.secret-in-git-work-tree",
        "privilege.secret-unresolved",
    ] {
        assert!(fires(&found, r), "{r} did not fire: {:?}", rules_of(&found));
    }
    let wl = found
        .iter()
        .find(|x| x.rule == "privilege.no-ip-whitelist")
        .unwrap();
    assert!(wl.recommendation.as_ref().unwrap().steps[0].contains("203.0.113.7/32"));
    // the config holding the literal is where the key is stored: one finding, the literal,
    // carrying the file's mode and place
    let literal = carrier(&found, "privilege.secret-file-readable");
    assert_eq!(literal.rule, "privilege.secret-literal");
    assert!(literal
        .also
        .contains(&"privilege.secret-in-git-work-tree".to_string()));
    let readable = folded_message(literal, "privilege.secret-file-readable");
    assert!(readable.contains("mode 644"), "{readable}");
    // the clean key fires none of them
    let found = judge(&[clean("erp", &["transfer:read"])], None);
    assert_eq!(rules_of(&found), ["privilege.not-judged"]);
}

#[test]
fn shared_key_from_consumers_or_user_agents() {
    let mut f = clean("erp", &["transfer:read", "balance:read"]);
    f.consumers = vec!["erp-sync".into(), "payvy".into()];
    assert!(fires(
        &judge(std::slice::from_ref(&f), None),
        "privilege.shared-key"
    ));
    f.consumers = vec!["erp-sync".into()];
    let mut lines = reads("erp");
    lines.push(
        ev(
            "2026-11-21T09:00:00Z",
            "erp",
            "GET",
            "/api/v1/transfers",
            200,
        )
        .replace("erp-sync/1.4", "curl/8.4.0"),
    );
    assert!(fires(
        &judge(std::slice::from_ref(&f), Some(&evidence(&lines))),
        "privilege.shared-key"
    ));
    assert!(!fires(
        &judge(&[f], Some(&evidence(&reads("erp")))),
        "privilege.shared-key"
    ));
}

#[test]
fn payee_and_pay_and_webhook_write() {
    let f = clean(
        "payouts",
        &["beneficiary:write", "transfer:write", "webhook:write"],
    );
    let found = judge(&[f], Some(&evidence(&reads("payouts"))));
    assert!(fires(&found, "privilege.payee-and-pay"));
    assert!(fires(&found, "privilege.webhook-write-unneeded"));
    let f = clean(
        "payouts",
        &["beneficiary:read", "transfer:write", "webhook:read"],
    );
    let found = judge(&[f], Some(&evidence(&reads("payouts"))));
    assert!(!fires(&found, "privilege.payee-and-pay"));
    assert!(!fires(&found, "privilege.webhook-write-unneeded"));
}

#[test]
fn wrong_environment_from_hosts() {
    let f = clean("erp", &["transfer:read", "balance:read"]);
    let mut lines = reads("erp");
    lines.push(
        ev(
            "2026-11-21T09:00:00Z",
            "erp",
            "GET",
            "/api/v1/transfers",
            200,
        )
        .replace("api.airwallex.com", "api-demo.airwallex.com"),
    );
    let found = judge(std::slice::from_ref(&f), Some(&evidence(&lines)));
    let w = found
        .iter()
        .find(|x| x.rule == "privilege.wrong-environment")
        .unwrap();
    assert!(w.message.contains("sandbox"), "{}", w.message);
    assert!(!fires(
        &judge(&[f], Some(&evidence(&reads("erp")))),
        "privilege.wrong-environment"
    ));
}

#[test]
fn login_outcomes_leaks_and_shadow_keys() {
    let mut revoked = clean("old", &["transfer:read"]);
    revoked.login.as_mut().unwrap().verification = Verification::Revoked;
    let mut refused = clean("walled", &["transfer:read"]);
    refused.login.as_mut().unwrap().verification = Verification::Forbidden;
    let mut leaked = clean("leaky", &["transfer:read"]);
    leaked.leaks.push(LeakFact {
        rule: "leak.airwallex.api-key".into(),
        path: "deploy/.env".into(),
        line: Some(3),
        commit: Some("4be1c9d".into()),
        finding_id: "0011223344556677".into(),
        source: "scan:tree:/srv/app".into(),
    });
    let mut payer = clean("payer", &["transfer:read", "transfer:write"]);
    payer.leaks = leaked.leaks.clone();
    let mut shadow = clean("sha256:5be0c1d07e3a9f21", &[]);
    shadow.declared = false;
    shadow.storage.plaintext_locations = vec!["src/settings.py:12".into()];
    let found = judge(&[revoked, refused, leaked, payer, shadow], None);
    let by = |r: &str| found.iter().find(|x| x.rule == r).unwrap();
    assert_eq!(by("privilege.key-revoked").key.as_deref(), Some("old"));
    assert_eq!(by("privilege.key-refused").key.as_deref(), Some("walled"));
    let leak_of = |k: &str| {
        found
            .iter()
            .find(|x| x.rule == "privilege.key-leaked" && x.key.as_deref() == Some(k))
            .unwrap()
    };
    let steps = |f: &Finding| f.recommendation.as_ref().unwrap().steps.join("\n");
    // A key that can pay: money movement is what to check, and it is said to move money.
    let leak = leak_of("payer");
    assert_eq!(leak.severity.as_str(), "critical");
    assert!(leak.message.contains("can move money"), "{}", leak.message);
    assert!(steps(leak).contains("money movement"), "{}", steps(leak));
    // A key that can only read is not "can move money" (issue 16): its steps say what it read,
    // and a scoped key is deleted, not "regenerated" like an admin key.
    let leak = leak_of("leaky");
    assert_eq!(leak.severity.as_str(), "critical");
    assert!(
        leak.message
            .contains("can read with it now (transfer:read)"),
        "{}",
        leak.message
    );
    assert!(!leak.message.contains("money"), "{}", leak.message);
    assert!(!steps(leak).contains("money movement"), "{}", steps(leak));
    assert!(!steps(leak).contains("admin"), "{}", steps(leak));
    assert!(
        steps(leak).contains("could only read (transfer:read)"),
        "{}",
        steps(leak)
    );
    assert!(by("privilege.shadow-key")
        .message
        .contains("src/settings.py:12"));
    assert!(!found
        .iter()
        .any(|x| x.rule == "privilege.key-revoked" && x.key.as_deref() != Some("old")));
}

/// Issue 5 review: a shadow key (declared by nobody) is judged on what was observed (where it was
/// found, leaks, its login), never on declared facts nobody declared (whitelist, owner, usage,
/// rotation); a shadow key that logs in live is worse than one that does not.
#[test]
fn shadow_keys_get_shadow_key_and_observed_findings_only() {
    let shadow = |fp: &str, login: Option<Verification>| {
        let mut s = clean(fp, &[]);
        s.declared = false;
        s.declared_at = String::new();
        s.owner = None;
        s.purpose = None;
        s.integration = None;
        s.created = None;
        s.ip_whitelist = vec![];
        s.consumers = vec![];
        s.storage.plaintext_locations = vec![".env:3".into()];
        s.login = login.map(|v| LoginFacts {
            verification: v,
            detail: String::new(),
            permissions: None,
            base_url: "https://api.airwallex.com".into(),
        });
        s
    };
    let quiet = shadow("sha256:5be0c1d07e3a9f21", None);
    let live = shadow("sha256:9d3e7a1f0c2b4e68", Some(Verification::Live));
    let mut leaked = shadow("sha256:1f0e4c7a9b2d3e58", Some(Verification::Revoked));
    leaked.leaks.push(LeakFact {
        rule: "leak.airwallex.api-key".into(),
        path: "src/settings.py".into(),
        line: Some(12),
        commit: None,
        finding_id: "8899aabbccddeeff".into(),
        source: "scan:tree:/srv/app".into(),
    });
    let mut admin = shadow("sha256:6a2c8e0f4b1d7e93", Some(Verification::Live));
    admin.login.as_mut().unwrap().permissions = Some(vec!["r:awx:*:*".into(), "w:awx:*:*".into()]);
    // usage evidence covering 90 days in which none of them was used: unused-key would fire on
    // a declared key
    let ev = evidence(&reads("someone-else"));
    let found = judge(&[quiet, live, leaked, admin], Some(&ev));
    let of = |k: &str| -> Vec<&str> {
        found
            .iter()
            .filter(|f| f.key.as_deref() == Some(k))
            .map(|f| f.rule.as_str())
            .collect()
    };
    assert_eq!(of("sha256:5be0c1d07e3a9f21"), ["privilege.shadow-key"]);
    assert_eq!(of("sha256:9d3e7a1f0c2b4e68"), ["privilege.shadow-key"]);
    // a leaked shadow key is one finding, the leak, carrying that nobody declared it
    assert_eq!(of("sha256:1f0e4c7a9b2d3e58"), ["privilege.key-leaked"]);
    assert_eq!(
        carrier(&found, "privilege.shadow-key").key.as_deref(),
        Some("sha256:1f0e4c7a9b2d3e58")
    );
    let mut admin_rules = of("sha256:6a2c8e0f4b1d7e93");
    admin_rules.sort();
    assert_eq!(admin_rules, ["privilege.admin-key", "privilege.shadow-key"]);
    let shadow_of = |k: &str| {
        found
            .iter()
            .find(|f| f.rule == "privilege.shadow-key" && f.key.as_deref() == Some(k))
            .unwrap()
    };
    let q = shadow_of("sha256:5be0c1d07e3a9f21");
    assert_eq!(q.severity.as_str(), "high");
    assert!(!q.message.contains("live"), "{}", q.message);
    let l = shadow_of("sha256:9d3e7a1f0c2b4e68");
    assert_eq!(l.severity.as_str(), "critical");
    assert!(l.message.contains("it logs in live"), "{}", l.message);
    let leak = carrier(&found, "privilege.shadow-key");
    assert!(leak.message.contains("401"), "{}", leak.message);
    assert!(folded_message(leak, "privilege.shadow-key").contains("401"));
    // it no longer logs in: a leak to clean up, no longer critical
    assert_eq!(leak.severity.as_str(), "high");
}

#[test]
fn usage_by_an_unknown_key_and_unknown_routes_are_findings() {
    let f = clean("erp", &["transfer:read", "balance:read"]);
    let mut lines = reads("erp");
    lines.push(ev(
        "2026-11-21T09:00:00Z",
        "sha256:0badc0ffee123456",
        "GET",
        "/api/v1/transfers",
        200,
    ));
    lines.push(ev(
        "2026-11-21T09:00:00Z",
        "erp",
        "GET",
        "/api/v1/mystery/abc123456",
        200,
    ));
    let found = judge(&[f], Some(&evidence(&lines)));
    let u = found
        .iter()
        .find(|x| x.rule == "usage.unknown-key")
        .unwrap();
    assert_eq!(u.key.as_deref(), Some("sha256:0badc0ffee123456"));
    let r = found
        .iter()
        .find(|x| x.rule == "usage.unknown-route")
        .unwrap();
    assert!(
        r.message.contains("GET /api/v1/mystery/{id}"),
        "{}",
        r.message
    );
}

#[test]
fn evidence_filed_under_name_and_fingerprint_is_merged() {
    let f = clean("erp", &["transfer:read", "balance:read"]);
    let fp = f.fingerprint.clone().unwrap();
    let lines = vec![
        ev(
            "2026-08-01T09:00:00Z",
            &fp,
            "GET",
            "/api/v1/balances/current",
            200,
        ),
        ev("2026-10-01T09:00:00Z", &fp, "GET", "/api/v1/transfers", 200),
        ev(
            "2026-11-20T09:00:00Z",
            "erp",
            "GET",
            "/api/v1/balances/current",
            200,
        ),
    ];
    let found = judge(&[f], Some(&evidence(&lines)));
    // coverage and transfer:read come from the fingerprint, recent balance reads from the name
    assert!(found.is_empty(), "{:#?}", rules_of(&found));
}

#[test]
fn parameter_overrides_and_disabled_rules_apply() {
    let mut f = clean("erp", &["transfer:read"]);
    f.created = Some(NaiveDate::from_ymd_opt(2026, 1, 1).unwrap());
    let mut o = BTreeMap::new();
    o.insert(
        "privilege.rotation-overdue".to_string(),
        toml::toml! { days = 30 },
    );
    let rules = PrivilegeRules::load(&[], &["privilege.not-judged".into()], &o).unwrap();
    let found = evaluate(&[f], None, &Catalog::builtin(), &rules, now());
    assert_eq!(rules_of(&found), ["privilege.rotation-overdue"]);
    assert!(found[0].message.contains("rotation period 30 days"));
}

#[test]
fn recommendations_snapshot() {
    // Payvy in production with an admin key: reads transfers, creates transfers to existing
    // beneficiaries, from two addresses.
    let mut payvy = clean("payvy-prod", &[]);
    payvy.kind = KeyKind::Admin;
    payvy.integration = Some("Payvy".into());
    payvy.ip_whitelist.clear();
    let mut erp = clean(
        "erp",
        &[
            "transfer:read",
            "transfer:write",
            "balance:read",
            "webhook:write",
        ],
    );
    // a production key whose integration calls the sandbox host
    erp.environment = Environment::Production;
    let mut leaky = clean("leaky", &["transfer:read"]);
    leaky.leaks.push(LeakFact {
        rule: "leak.airwallex.api-key".into(),
        path: "deploy/.env".into(),
        line: Some(3),
        commit: None,
        finding_id: "0011223344556677".into(),
        source: "scan:tree:/srv/app".into(),
    });
    let mut payouts = clean(
        "payouts",
        &["beneficiary:write", "transfer:write", "balance:read"],
    );
    payouts.integration = Some("Treasury bot".into());
    let mut lines = vec![
        ev(
            "2026-08-02T09:00:00Z",
            "payouts",
            "POST",
            "/api/v1/beneficiaries/create",
            201,
        ),
        ev(
            "2026-11-02T09:00:00Z",
            "payouts",
            "POST",
            "/api/v1/transfers/create",
            201,
        ),
        ev(
            "2026-11-03T09:00:00Z",
            "payouts",
            "GET",
            "/api/v1/balances/current",
            200,
        ),
    ];
    for (i, day) in ["2026-08-01", "2026-09-15", "2026-11-20"]
        .iter()
        .enumerate()
    {
        lines.push(ev(
            &format!("{day}T09:00:00Z"),
            "payvy-prod",
            "GET",
            "/api/v1/transfers",
            200,
        ));
        lines.push(
            ev(
                &format!("{day}T09:05:00Z"),
                "payvy-prod",
                "POST",
                "/api/v1/transfers/create",
                201,
            )
            .replace(
                "203.0.113.7",
                if i % 2 == 0 {
                    "198.51.100.4"
                } else {
                    "198.51.100.5"
                },
            ),
        );
        lines.push(ev(
            &format!("{day}T09:06:00Z"),
            "payvy-prod",
            "GET",
            "/api/v1/beneficiaries",
            200,
        ));
        lines.push(
            ev(
                &format!("{day}T10:00:00Z"),
                "erp",
                "GET",
                "/api/v1/balances/current",
                200,
            )
            .replace("api.airwallex.com", "api-demo.airwallex.com"),
        );
    }
    let found: Vec<Finding> = judge(&[payvy, erp, leaky, payouts], Some(&evidence(&lines)))
        .into_iter()
        .filter(|f| f.rule != "privilege.not-judged")
        .collect();
    let out: Vec<serde_json::Value> = found
        .iter()
        .map(|f| {
            serde_json::json!({
                "rule": f.rule, "key": f.key, "severity": f.severity, "message": f.message,
                "recommendation": f.recommendation,
            })
        })
        .collect();
    let text = serde_json::to_string_pretty(&out).unwrap();
    common::assert_no_secret(&text, &key("payvy-prod"), "findings");
    insta::assert_snapshot!("recommendations", text);
}

#[test]
fn rules_check_runs_privilege_examples_and_reports_failures() {
    let dir = tempdir();
    let o = run(dir.path(), &["rules", "check"]);
    let out = common::stdout(&o);
    assert_eq!(common::code(&o), 0, "{out}{}", common::stderr(&o));
    assert!(out.contains("privilege rules"), "{out}");
    assert!(out.contains("examples: all pass"), "{out}");
    write(
        dir.path(),
        "mine/bad.toml",
        r#"
[[rule]]
id = "privilege.local.always-admin"
name = "Broken example"
check = "admin-key"
severity = "high"
action = "narrow"
description = "An example that cannot fire."
message = "{key} is admin"

[[rule.examples]]
keys = [{ name = "x", kind = "custom", scopes = ["transfer:read"] }]

[[rule.negative_examples]]
keys = [{ name = "x", kind = "custom", scopes = ["transfer:read"] }]
"#,
    );
    let o = run(dir.path(), &["rules", "check", "--privilege-rules", "mine"]);
    let out = common::stdout(&o);
    assert_eq!(common::code(&o), 1, "{out}{}", common::stderr(&o));
    assert!(
        out.contains(
            "FAIL privilege.local.always-admin example 1 (must fire): example not reported"
        ),
        "{out}"
    );
    assert!(out.contains("1 failed"), "{out}");
}
