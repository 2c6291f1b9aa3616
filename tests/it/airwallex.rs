//! The Airwallex client against the local simulator over real HTTP on loopback.

use crate::common::*;
use awxguard::airwallex::simulator::{Behaviour, SimState, Simulator};
use awxguard::airwallex::{Client, ClientSettings, LoginOutcome};
use awxguard::secret::Secret;
use std::time::Duration;

fn client(url: &str) -> Client {
    let mut s = ClientSettings::new(url);
    s.retries = 2;
    s.retry_base = Duration::from_millis(1);
    s.timeout = Duration::from_secs(5);
    Client::new(s).unwrap()
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn login_classifies_each_answer_and_retries_only_429_and_5xx() {
    let cid = client_id("c");
    let (live, revoked, forbidden, limited, broken) =
        (key("live"), key("rev"), key("forb"), key("lim"), key("err"));
    let state = SimState::default()
        .with_key(&cid, &live, Behaviour::Live)
        .with_key(&cid, &revoked, Behaviour::Revoked)
        .with_key(&cid, &forbidden, Behaviour::Forbidden)
        .with_key(&cid, &limited, Behaviour::RateLimited)
        .with_key(&cid, &broken, Behaviour::Error);
    let sim = Simulator::spawn(state).unwrap();
    let c = client(&sim.url());
    let rt = rt();
    let login = |k: &str| rt.block_on(c.login(&cid, &Secret::new(k.to_string())));
    match login(&live) {
        LoginOutcome::Live(t) => {
            let claims = t.claims.expect("claims decoded");
            assert!(claims.is_admin());
            assert!(t.expires_at.is_some());
        }
        other => panic!("expected live, got {other:?}"),
    }
    assert!(
        matches!(login(&revoked), LoginOutcome::Revoked { code, .. } if code == "credentials_invalid")
    );
    assert!(matches!(login(&forbidden), LoginOutcome::Forbidden { .. }));
    assert!(matches!(login(&limited), LoginOutcome::Unknown { .. }));
    assert!(matches!(login(&broken), LoginOutcome::Unknown { .. }));
    let reqs = sim.requests();
    let count = |k: &str| {
        reqs.iter()
            .filter(|r| r.key_fingerprint.as_deref() == Some(fingerprint(k).as_str()))
            .count()
    };
    assert_eq!(count(&live), 1);
    assert_eq!(count(&revoked), 1);
    assert_eq!(count(&forbidden), 1);
    assert_eq!(count(&limited), 3, "429 is retried (1 + 2 retries)");
    assert_eq!(count(&broken), 3, "5xx is retried (1 + 2 retries)");
    // The simulator's log holds fingerprints, never keys.
    let log = serde_json::to_string(&reqs).unwrap();
    for k in [&live, &revoked, &forbidden, &limited, &broken] {
        assert_no_secret(&log, k, "simulator request log");
    }
}

#[test]
fn unreachable_server_is_unknown_not_an_error() {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    let c = client(&url);
    let out = rt().block_on(c.login("x", &Secret::new(key("k"))));
    assert!(matches!(out, LoginOutcome::Unknown { .. }), "{out:?}");
}
