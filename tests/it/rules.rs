//! Rules are data: `awxguard rules check` runs every example, users add rules from a directory
//! (command line or config) and disable built-ins by id, and a broken rule file is a clear error.

use crate::common::*;
use awxguard::rules::LeakRules;
use std::collections::HashSet;

/// A user rule for a made-up vendor token `acme_` + 32 lowercase alphanumerics.
fn acme_rule(example: &str) -> String {
    format!(
        r#"[[rule]]
id = "leak.acme.token"
name = "Acme token"
severity = "medium"
description = "An Acme API token."
keywords = ["acme_"]

[[rule.pattern]]
name = "acme-token"
regex = '''\b(?P<secret>acme_[a-z0-9]{{32}})\b'''

[[rule.examples]]
path = "acme.env"
text = "ACME_TOKEN={example}"

[[rule.negative_examples]]
path = "acme.md"
text = "ACME_TOKEN=acme_<your token>"
"#
    )
}

/// A realistic Acme token from a seed.
fn acme_token(seed: &str) -> String {
    format!("acme_{}", &key(seed)[..32])
}

#[test]
fn rules_check_passes_on_the_built_in_rules() {
    let d = tempdir();
    let o = run(d.path(), &["rules", "check"]);
    assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("all pass"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");
    // Every built-in rule has positive and negative examples, and the command ran them all.
    let rules = LeakRules::builtin();
    let n: usize = rules
        .rules
        .iter()
        .map(|r| {
            assert!(!r.examples.is_empty(), "{} has no examples", r.id);
            assert!(
                !r.negative_examples.is_empty(),
                "{} has no negative examples",
                r.id
            );
            r.examples.len() + r.negative_examples.len()
        })
        .sum();
    assert!(
        out.contains(&format!(
            "{} leak rules, {n} examples: all pass",
            rules.rules.len()
        )),
        "{out}"
    );
}

#[test]
fn rule_ids_are_unique_and_well_formed() {
    let rules = LeakRules::builtin();
    let mut seen = HashSet::new();
    for r in &rules.rules {
        assert!(seen.insert(r.id.clone()), "duplicate rule id {}", r.id);
        assert!(awxguard::rules::leak::valid_rule_id(&r.id), "{}", r.id);
        assert!(r.id.starts_with("leak."), "{}", r.id);
        let mut names = HashSet::new();
        for p in &r.patterns {
            assert!(
                names.insert(p.name.clone()),
                "{}: pattern {} twice",
                r.id,
                p.name
            );
        }
    }
    assert!(seen.contains("leak.airwallex.api-key"));
    assert!(seen.contains("leak.airwallex.access-token"));
}

#[test]
fn a_user_rule_reusing_a_built_in_id_is_refused() {
    let d = tempdir();
    let text = acme_rule(&acme_token("dup")).replace("leak.acme.token", "leak.airwallex.api-key");
    write(d.path(), "myrules/dup.toml", text);
    let o = run(d.path(), &["scan", "--rules", "myrules", "."]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("rule id leak.airwallex.api-key is defined twice"),
        "{err}"
    );
    assert!(err.contains("myrules/dup.toml"), "{err}");
}

#[test]
fn a_user_rule_directory_adds_a_rule() {
    let d = tempdir();
    let t = acme_token("user-rule");
    write(
        d.path(),
        "myrules/acme.toml",
        acme_rule(&acme_token("example")),
    );
    write(d.path(), "myrules/README.md", "not a rule file, ignored\n");
    write(d.path(), "app/.env", format!("ACME_TOKEN={t}\n"));

    // Without the rule: nothing.
    let o = run(d.path(), &["scan", "--format", "json", "app"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));

    // With it: found, and never shown in clear.
    let o = run(
        d.path(),
        &["scan", "--format", "json", "--rules", "myrules", "app"],
    );
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["findings"][0]["rule"], "leak.acme.token");
    assert_eq!(j["findings"][0]["severity"], "medium");
    // Paths are relative to the repository top, else the current directory (issue 15).
    assert_eq!(j["findings"][0]["path"], "app/.env");
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&t));
    assert!(!stdout(&o).contains(&t));

    // rules check runs the user rule's examples too; rules list shows it.
    let o = run(d.path(), &["rules", "check", "--rules", "myrules"]);
    assert_eq!(code(&o), 0, "{}", stdout(&o));
    assert!(stdout(&o).contains("3 leak rules"), "{}", stdout(&o));
    let o = run(d.path(), &["rules", "list", "--rules", "myrules"]);
    assert!(stdout(&o).contains("leak.acme.token"), "{}", stdout(&o));
    assert!(stdout(&o).contains("pattern acme-token"), "{}", stdout(&o));
}

#[test]
fn a_user_rule_directory_from_the_config_file() {
    let d = tempdir();
    let t = acme_token("config-rule");
    write(d.path(), "rules.d/acme.toml", acme_rule(&acme_token("ex")));
    write(
        d.path(),
        "awxguard.toml",
        "[scan]\nrules = [\"rules.d\"]\ndisable = [\"leak.airwallex.access-token\"]\n",
    );
    write(d.path(), "src/.env", format!("ACME_TOKEN={t}\n"));
    let o = run(d.path(), &["scan", "--format", "json", "src"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert_eq!(json(&o)["findings"][0]["rule"], "leak.acme.token");
    let o = run(d.path(), &["rules", "list"]);
    let out = stdout(&o);
    assert!(out.contains("leak.acme.token"), "{out}");
    assert!(out.contains("leak.airwallex.api-key"), "{out}");
}

#[test]
fn a_failing_user_example_fails_rules_check() {
    let d = tempdir();
    // The example holds an upper-case token, which the rule's regex does not match.
    let bad = acme_rule(
        &acme_token("upper")
            .to_ascii_uppercase()
            .replace("ACME_", "acme_"),
    );
    write(d.path(), "myrules/acme.toml", bad);
    let o = run(d.path(), &["rules", "check", "--rules", "myrules"]);
    assert_eq!(code(&o), 1, "{}", stdout(&o));
    let out = stdout(&o);
    assert!(
        out.contains("FAIL leak.acme.token acme.env (example): example not found"),
        "{out}"
    );
    assert!(out.contains("1 failed"), "{out}");
}

#[test]
fn disable_turns_a_built_in_rule_off() {
    let d = tempdir();
    write(
        d.path(),
        ".env",
        format!("AIRWALLEX_API_KEY={}\n", key("disable")),
    );
    let o = run(d.path(), &["scan", "--format", "json"]);
    assert_eq!(code(&o), 1);
    let o = run(
        d.path(),
        &[
            "scan",
            "--format",
            "json",
            "--disable",
            "leak.airwallex.api-key",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(json(&o)["summary"]["findings"], 0);
    // Disabling one rule leaves the others alone.
    let o = run(
        d.path(),
        &[
            "scan",
            "--format",
            "json",
            "--disable",
            "leak.airwallex.access-token",
        ],
    );
    assert_eq!(code(&o), 1);
}

#[test]
fn disabling_an_unknown_rule_is_an_error_that_lists_the_known_ones() {
    let d = tempdir();
    let o = run(d.path(), &["scan", "--disable", "leak.airwallex.apikey"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("cannot disable rule leak.airwallex.apikey: no such rule"),
        "{err}"
    );
    assert!(err.contains("leak.airwallex.api-key"), "{err}");
}

#[test]
fn a_malformed_rule_file_is_a_file_and_line_error_and_exit_2() {
    let d = tempdir();
    // Line 6 has an unterminated string.
    let text = "[[rule]]\nid = \"leak.acme.token\"\nname = \"Acme\"\nseverity = \"medium\"\n\
                description = \"x\"\nkeywords = [\"acme_]\n";
    write(d.path(), "myrules/broken.toml", text);
    for args in [
        vec!["scan", "--rules", "myrules", "."],
        vec!["rules", "check", "--rules", "myrules"],
        vec!["rules", "list", "--rules", "myrules"],
    ] {
        let o = run(d.path(), &args);
        assert_eq!(code(&o), 2, "{args:?}");
        let err = stderr(&o);
        assert!(err.contains("myrules/broken.toml:6:"), "{args:?}: {err}");
        assert!(stdout(&o).is_empty(), "{args:?}");
    }
}

#[test]
fn an_unknown_field_in_a_rule_is_reported_with_its_line() {
    let d = tempdir();
    let text = acme_rule(&acme_token("unknown-field")).replace(
        "severity = \"medium\"",
        "severity = \"medium\"\nseverty = \"high\"",
    );
    write(d.path(), "r/acme.toml", text);
    let o = run(d.path(), &["rules", "check", "--rules", "r"]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(err.contains("r/acme.toml:5:"), "{err}");
    assert!(err.contains("severty"), "{err}");
}

#[test]
fn a_bad_regex_names_the_file_rule_and_pattern() {
    let d = tempdir();
    let text = acme_rule(&acme_token("bad-regex")).replace("{32}", "{32");
    write(d.path(), "r/acme.toml", text);
    let o = run(d.path(), &["scan", "--rules", "r", "."]);
    assert_eq!(code(&o), 2);
    let err = stderr(&o);
    assert!(
        err.contains("r/acme.toml: rule leak.acme.token: pattern acme-token: regex"),
        "{err}"
    );
}

#[test]
fn a_pattern_without_a_secret_group_is_refused() {
    let d = tempdir();
    let text = acme_rule(&acme_token("no-group")).replace("(?P<secret>", "(");
    write(d.path(), "r/acme.toml", text);
    let o = run(d.path(), &["rules", "check", "--rules", "r"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("no (?P<secret>...) group"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_missing_rule_directory_is_an_error() {
    let d = tempdir();
    let o = run(d.path(), &["scan", "--rules", "nowhere", "."]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("nowhere"), "{}", stderr(&o));
}

#[test]
fn rules_list_regexes_is_a_pattern_file_for_ripgrep() {
    let d = tempdir();
    let o = run(d.path(), &["rules", "list", "--regexes"]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    let patterns: usize = LeakRules::builtin()
        .rules
        .iter()
        .map(|r| r.patterns.len())
        .sum();
    assert_eq!(lines.len(), patterns);
    // ripgrep joins the lines into one alternation: no named groups (they would clash), and the
    // whole must compile with the regex engine ripgrep uses.
    assert!(!out.contains("(?P<"), "{out}");
    let joined = lines
        .iter()
        .map(|l| format!("(?:{l})"))
        .collect::<Vec<_>>()
        .join("|");
    let re = regex::bytes::Regex::new(&joined).expect("the joined patterns compile");
    // And it matches a planted key line, as the detectors do.
    let line = format!("AIRWALLEX_API_KEY={}", key("rg"));
    assert!(re.is_match(line.as_bytes()));
}
