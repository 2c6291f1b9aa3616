//! `awxguard demo`, the README's first command: it must work on a fresh machine with no
//! Airwallex account and no network, and show every capability without a key in clear.

use crate::common::*;

#[test]
fn demo_runs_scan_history_verification_and_audit_without_leaking_a_key() {
    let d = tempdir();
    let keep = d.path().join("demo-data");
    let o = awxguard(d.path())
        .args(["demo", "--dir"])
        .arg(&keep)
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let err = stderr(&o);
    for expected in [
        "leak.airwallex.api-key",
        "verification: live",
        "verification: revoked",
        "config/airwallex.yml",
        ".env.staging",
        "privilege.admin-key",
        "privilege.disguised-admin",
        "privilege.payee-and-pay",
        "privilege.key-leaked",
        "privilege.unused-scope",
    ] {
        assert!(
            out.contains(expected),
            "demo output lacks {expected}:\n{out}"
        );
    }
    assert!(err.contains("=== 3. Least-privilege audit"), "{err}");
    // Every key the demo made is in its files; none may reach its output.
    let hex96 = regex::Regex::new("[0-9a-f]{96}").unwrap();
    assert!(!hex96.is_match(&out), "a 96-hex key in the demo's output");
    assert!(!hex96.is_match(&err), "a 96-hex key in the demo's stderr");
    let env = std::fs::read_to_string(keep.join("payments-service/.env")).unwrap();
    let key = hex96.find(&env).expect("the demo planted a key").as_str();
    assert_no_secret(&out, key, "demo output");
}
