//! The config file: the shipped example loads; bad input is reported as `file:line: field:
//! message`, every problem at once, exit 2.

use crate::common::*;
use std::path::Path;

#[test]
fn example_config_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/awxguard.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let c = awxguard::config::Config::parse(&path, &text).expect("example config is valid");
    let names: Vec<&str> = c.keys.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["payvy-ap", "reporting", "payvy-sandbox"]);
    assert_eq!(
        c.keys[0].integration.as_deref(),
        Some("Payvy accounts payable")
    );
}

#[test]
fn example_config_lists_through_the_cli() {
    let dir = tempdir();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/awxguard.toml");
    std::fs::copy(&example, dir.path().join("awxguard.toml")).unwrap();
    let out = awxguard(dir.path())
        .env("PAYVY_AIRWALLEX_API_KEY", key("example-payvy"))
        .env_remove("AIRWALLEX_SANDBOX_API_KEY")
        .arg("inventory")
        .output()
        .unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("payvy-ap"), "{text}");
    assert!(
        text.contains("reporting: secret not resolvable: secret file"),
        "{text}"
    );
    assert!(text.contains(
        "payvy-sandbox: secret not resolvable: environment variable AIRWALLEX_SANDBOX_API_KEY \
         is not set"
    ));
    assert_no_secret(&text, &key("example-payvy"), "inventory of the example");
}

/// A config error stops every command (exit 2) and names file, line, key and field. A literal
/// key is not one (issue 16: it is a finding, `privilege.secret-literal`, and every key is
/// audited): `bad_secret_reference...` below and `audit::a_literal_key_is_a_finding...`.
#[test]
fn bad_config_names_file_line_key_and_field_and_exits_2() {
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        "[[key]]\nname = \"payvy\"\nclient_id = \"c\"\napi_key = \"envv:PAYVY_KEY\"\nenvironment \
         = \"production\"\nkind = \"custom\"\nscopes = [\"transfers:write\"]\nip_whitelist = \
         [\"10.0.0.0/8\"]\n",
    );
    let out = run(dir.path(), &["audit"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains(
            "awxguard.toml:7: key \"payvy\": scopes: unknown scope \"transfers:write\"; did you \
             mean \"transfer:write\"?"
        ),
        "{err}"
    );
    assert!(
        err.contains("awxguard.toml:4: key \"payvy\": api_key: unknown secret reference \"envv:\""),
        "{err}"
    );
    assert!(
        err.contains("awxguard.toml:8: key \"payvy\": ip_whitelist: 10.0.0.0/8 is wider"),
        "{err}"
    );
}

/// A value that is neither a reference nor a key is an error that never echoes it.
#[test]
fn a_secret_that_is_neither_reference_nor_key_is_refused_without_echo() {
    let dir = tempdir();
    let almost = format!("{}Z", &key("literal")[..95]);
    write(
        dir.path(),
        "awxguard.toml",
        format!(
            "[[key]]\nname = \"payvy\"\nclient_id = \"c\"\napi_key = \"{almost}\"\nenvironment \
             = \"production\"\nkind = \"admin\"\n"
        ),
    );
    let out = run(dir.path(), &["audit"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("awxguard.toml:4: key \"payvy\": api_key: is neither"),
        "{err}"
    );
    assert_no_secret(&err, &key("literal"), "config error");
}

#[test]
fn malformed_toml_and_unknown_field_are_located() {
    let dir = tempdir();
    write(
        dir.path(),
        "awxguard.toml",
        "[[key]]\nname = \"a\"\nclient_id = \"c\"\napi_key = \"env:A\"\nenvironment = \
         \"sandbox\"\nkind = \"admin\"\nowner = \"x\"\npurpose = \"y\"\nconsumer = [\"z\"]\n",
    );
    let out = run(dir.path(), &["inventory"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("awxguard.toml:9: consumer: unknown field `consumer`"),
        "{}",
        stderr(&out)
    );
    write(
        dir.path(),
        "awxguard.toml",
        "[[key]]\nname = \"a\nkind = 1\n",
    );
    let out = run(dir.path(), &["inventory"]);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("awxguard.toml:2:"),
        "{}",
        stderr(&out)
    );
}
