//! The watch detectors' unit tests.

use super::*;

#[test]
fn formatting() {
    assert_eq!(fmt_amount(1234567.891), "1,234,567.89");
    assert_eq!(fmt_amount(-950.0), "-950.00");
    assert_eq!(fmt_amount(12.0), "12.00");
    assert_eq!(fmt_age(Duration::minutes(4)), "4 minutes");
    assert_eq!(fmt_age(Duration::minutes(61)), "1 hour 1 minute");
    assert_eq!(fmt_age(Duration::days(3)), "3 days");
    let mut v = BTreeMap::new();
    v.insert("a", "x".to_string());
    assert_eq!(render("{a} and {b} {", &v), "x and - {");
    assert_eq!(
        url_host("https://User@Hooks.Example.com:8443/p?q"),
        "hooks.example.com"
    );
}

#[test]
fn median_and_mad() {
    let (m, mad) = median_mad(&[1.0, 2.0, 3.0, 4.0, 100.0]);
    assert_eq!(m, 3.0);
    assert!((mad - 1.4826).abs() < 1e-9);
}
