use super::*;
use crate::airwallex::Catalog;

fn ev<'a>(ts: i64, ip: &str, status: u16, access: Access) -> EventRef<'a> {
    EventRef {
        ts,
        key: "k",
        route: "GET /api/v1/transfers",
        scope: Some("transfer:read"),
        access,
        status,
        source_ip: Some(ip.parse().unwrap()),
        user_agent: Some("erp/1.0"),
        via_proxy: false,
        host: Some("api.airwallex.com"),
        account: None,
    }
}

#[test]
fn encodings_round_trip() {
    let mut k = KeySeries::new("k");
    for i in 0..40 {
        k.add(
            &ev(
                1_790_000_000 + i * 977,
                "198.51.100.7",
                if i % 7 == 0 { 403 } else { 200 },
                Access::Sensitive,
            ),
            3,
        );
    }
    for b in k.hours.values() {
        assert_eq!(HourBucket::from_bytes(&b.to_bytes()).as_ref(), Some(b));
    }
    for m in k.attrs.values() {
        for a in m.values() {
            assert_eq!(AttrStats::from_bytes(&a.to_bytes()).as_ref(), Some(a));
        }
    }
    assert!(HourBucket::from_bytes(&[1, 2, 3]).is_none());
    assert!(AttrStats::from_bytes(&[2]).is_none());
    let st = &k.attrs[&AttrKind::Status];
    assert_eq!(st["403"].calls, 18);
    assert!(k.attrs[&AttrKind::Scope]["transfer:read"]
        .accepted_last
        .is_some());
}

#[test]
fn the_series_does_not_depend_on_event_order() {
    let base = 1_790_000_000i64;
    let events: Vec<EventRef> = (0..500)
        .map(|i| {
            ev(
                base + (i * 7919) % (3 * DAY),
                if i % 50 == 0 {
                    "203.0.113.9"
                } else {
                    "198.51.100.7"
                },
                if i % 13 == 0 { 403 } else { 200 },
                if i % 11 == 0 {
                    Access::Sensitive
                } else {
                    Access::Read
                },
            )
        })
        .collect();
    let mut a = Series::default();
    for e in &events {
        a.add(e, 1);
    }
    let mut b = Series::default();
    for e in events.iter().rev() {
        b.add(e, 1);
    }
    let mut c = Series::default();
    let mut parts = [Series::default(), Series::default()];
    for (i, e) in events.iter().enumerate() {
        parts[i % 2].add(e, 1);
    }
    c.merge(&parts[1]);
    c.merge(&parts[0]);
    assert_eq!(a, b);
    assert_eq!(a, c);
    let k = &a.keys["k"];
    assert_eq!(k.events, 500);
    let net = k
        .attrs
        .get(&AttrKind::SourceIp)
        .and_then(|m| m.get("203.0.113.9"))
        .unwrap();
    assert_eq!(net.calls, 10);
    assert!(net
        .early
        .keys()
        .all(|h| *h < net.first / HOUR + EARLY_HOURS));
}

#[test]
fn networks_and_agent_families() {
    assert_eq!(network_of("203.0.113.77", 24, 48), "203.0.113.0/24");
    assert_eq!(network_of("2001:db8:1:2:3::9", 24, 48), "2001:db8:1::/48");
    assert_eq!(
        user_agent_family("python-requests/2.31.0"),
        "python-requests"
    );
    assert_eq!(user_agent_family("erp-sync 1.2.3"), "erp-sync");
    assert_eq!(
        user_agent_family("Mozilla/5.0 (X11; Linux x86_64) curl/8.5.0"),
        "Mozilla (X11; Linux x86_64) curl"
    );
}

#[test]
fn classify_marks_money_moving_writes() {
    let c = Catalog::builtin();
    let (r, s, a) = classify(&c, "POST", "/api/v1/transfers/create");
    assert_eq!(r, "POST /api/v1/transfers/create");
    assert_eq!(s.as_deref(), Some("transfer:write"));
    assert_eq!(a, Access::Sensitive);
    let (_, _, a) = classify(&c, "GET", "/api/v1/transfers/abc123def");
    assert_eq!(a, Access::Read);
    let (r, s, a) = classify(&c, "DELETE", "/api/v1/nothing/abc123def");
    assert_eq!(r, "DELETE /api/v1/nothing/{id}");
    assert_eq!(s, None);
    assert_eq!(a, Access::Write);
}
