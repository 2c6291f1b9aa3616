//! Working-tree scanning through the real binary: every detector dialect as a positive, every
//! false-positive class as a negative, odd files, standard input, ignore rules, exit codes and
//! the snapshots of what a person and a program read.

use crate::common::*;
use base64::Engine;
use std::path::Path;

/// Scans `dir` with `--format json` and returns (exit code, report).
fn scan_json(dir: &Path, extra: &[&str]) -> (i32, serde_json::Value) {
    let mut args = vec!["scan", "--format", "json"];
    args.extend_from_slice(extra);
    let o = run(dir, &args);
    let c = code(&o);
    assert!(c == 0 || c == 1, "exit {c}; stderr:\n{}", stderr(&o));
    (c, json(&o))
}

fn findings(report: &serde_json::Value) -> &Vec<serde_json::Value> {
    report["findings"].as_array().expect("findings array")
}

/// The (path, rule, fingerprint) of every finding, sorted.
fn triples(report: &serde_json::Value) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = findings(report)
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap_or_default().to_string(),
                f["rule"].as_str().unwrap_or_default().to_string(),
                f["secret"]["fingerprint"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

fn b64url(data: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(data)
}

/// An HS256 JWT with the given claims and a deterministic signature.
fn jwt(claims: &serde_json::Value, header: &str) -> String {
    let sig = &key(&format!("sig:{claims}"))[..43];
    format!(
        "{}.{}.{}",
        b64url(header.as_bytes()),
        b64url(claims.to_string().as_bytes()),
        sig
    )
}

/// An access token with Airwallex's claims (FACTS.md); `exp` decides whether it has expired.
fn airwallex_token(seed: &str, exp: i64) -> String {
    let k = key(seed);
    let uuid = |i: usize| {
        format!(
            "{}-{}-4{}-a{}-{}",
            &k[i..i + 8],
            &k[i + 8..i + 12],
            &k[i + 13..i + 16],
            &k[i + 17..i + 20],
            &k[i + 20..i + 32]
        )
    };
    jwt(
        &serde_json::json!({
            "type": "client", "dc": "HK", "data_center_region": "HK", "issdc": "US",
            "jti": uuid(0), "sub": uuid(32), "iat": exp - 1800, "exp": exp,
            "account_id": uuid(60), "api_version": "2025-02-14",
            "permissions": ["r:awx:*:*", "w:awx:*:*"]
        }),
        r#"{"alg":"HS256"}"#,
    )
}

/// The test clock (`AWXGUARD_NOW` in `common::awxguard`) as Unix time: 2026-11-24T12:00:00Z.
const NOW: i64 = 1_795_521_600;

// ---------------------------------------------------------------------------------------------
// Positives: one test per dialect, each asserting the file, line, rule and fingerprint.

/// Writes `text` (with `{k}` the key, `{c}` a client ID, `{b}` base64 of the key) to `rel` in a
/// fresh directory, scans it, and asserts exactly one API-key finding with the key's fingerprint
/// at `line`, and the key nowhere in the output.
fn assert_dialect(rel: &str, text: &str, line: u64) -> serde_json::Value {
    let d = tempdir();
    let k = key(rel);
    let c = client_id(rel);
    let b = base64::engine::general_purpose::STANDARD.encode(format!("{k}\n"));
    let body = text
        .replace("{k}", &k)
        .replace("{c}", &c)
        .replace("{b}", &b);
    write(d.path(), rel, &body);
    let o = run(d.path(), &["scan", "--format", "json"]);
    assert_eq!(
        code(&o),
        1,
        "{rel}: expected a finding; stderr:\n{}",
        stderr(&o)
    );
    let j = json(&o);
    let f = findings(&j);
    assert_eq!(f.len(), 1, "{rel}: one finding expected, got {j:#}");
    assert_eq!(f[0]["rule"], "leak.airwallex.api-key", "{rel}");
    assert_eq!(f[0]["path"], rel);
    assert_eq!(f[0]["line"], line, "{rel}: line");
    assert_eq!(f[0]["secret"]["fingerprint"], fingerprint(&k), "{rel}");
    assert_eq!(f[0]["severity"], "high");
    assert_no_secret(&stdout(&o), &k, rel);
    let human = run(d.path(), &["scan"]);
    assert_eq!(code(&human), 1);
    assert_no_secret(&stdout(&human), &k, rel);
    assert!(stdout(&human).contains(rel), "{}", stdout(&human));
    f[0].clone()
}

macro_rules! dialect {
    ($name:ident, $rel:expr, $text:expr, $line:expr) => {
        #[test]
        fn $name() {
            assert_dialect($rel, $text, $line);
        }
    };
}

dialect!(
    dialect_env_file,
    ".env",
    "NODE_ENV=production\nAIRWALLEX_API_KEY={k}\n",
    2
);
dialect!(
    dialect_env_quoted_production,
    ".env.production",
    "AIRWALLEX_PRODUCTION_API_KEY='{k}'\n",
    1
);
dialect!(
    dialect_env_export_sandbox,
    "deploy/env.sh",
    "#!/bin/sh\nexport AIRWALLEX_SANDBOX_API_KEY=\"{k}\"\n",
    2
);
dialect!(
    dialect_dockerfile_env,
    "Dockerfile",
    "FROM node:20\nENV AIRWALLEX_API_KEY {k}\nCMD [\"node\", \"server.js\"]\n",
    2
);
dialect!(
    dialect_dockerfile_arg,
    "build/Dockerfile.api",
    "FROM node:20\nARG AWX_API_KEY={k}\n",
    2
);
dialect!(
    dialect_github_workflow,
    ".github/workflows/deploy.yml",
    "on: push\njobs:\n  deploy:\n    env:\n      AWX_API_KEY: \"{k}\"\n",
    5
);
dialect!(
    dialect_gitlab_ci,
    ".gitlab-ci.yml",
    "variables:\n  AIRWALLEX_API_KEY: {k}\n",
    2
);
dialect!(
    dialect_helm_values,
    "charts/payments/values.yaml",
    "airwallex:\n  baseUrl: https://api.airwallex.com\n  apiKey: {k}\n",
    3
);
dialect!(
    dialect_spring_properties,
    "src/main/resources/application.properties",
    "server.port=8080\nairwallex.api-key={k}\n",
    2
);
dialect!(
    dialect_appsettings_json,
    "appsettings.Production.json",
    "{\n  \"Airwallex\": {\n    \"BaseUrl\": \"https://api.airwallex.com\",\n    \"ApiKey\": \"{k}\"\n  }\n}\n",
    4
);
dialect!(
    dialect_terraform_tfvars,
    "infra/prod.tfvars",
    "region = \"ap-southeast-2\"\nairwallex_api_key = \"{k}\"\n",
    2
);
dialect!(
    dialect_curl_header,
    "scripts/login.sh",
    "curl -X POST https://api.airwallex.com/api/v1/authentication/login \\\n  -H 'x-api-key: {k}'\n",
    2
);
dialect!(
    dialect_fetch_headers,
    "web/client.js",
    "const r = await fetch(url, { headers: { 'x-api-key': '{k}' } });\n",
    1
);
dialect!(
    dialect_python_requests_headers,
    "tools/login.py",
    "import requests\nheaders = {\"x-api-key\": \"{k}\"}\n",
    2
);
dialect!(
    dialect_postman_collection,
    "Airwallex.postman_collection.json",
    "{\"item\": [{\"request\": {\"header\": [\n  {\"key\": \"x-api-key\", \"value\": \"{k}\", \"type\": \"text\"}\n]}}]}\n",
    2
);
dialect!(
    dialect_postman_value_first,
    "api.postman_collection.json",
    "{\"header\": [{\"value\": \"{k}\", \"key\": \"x-api-key\"}]}\n",
    1
);
dialect!(
    dialect_har_file,
    "session.har",
    "{\"log\": {\"entries\": [{\"request\": {\"headers\": [\n{\"name\": \"x-api-key\", \"value\": \"{k}\"}]}}]}}\n",
    2
);
dialect!(
    dialect_postman_environment,
    "awx.postman_environment.json",
    "{\"values\": [{\"key\": \"airwallex_api_key\", \"value\": \"{k}\", \"enabled\": true}]}\n",
    1
);
dialect!(
    dialect_sdk_setup_python,
    "pay.py",
    "from airwallex import Client\n\nclient = Client(api_key='{k}')\n",
    3
);
dialect!(
    dialect_sdk_setup_node,
    "src/awx.ts",
    "import { Airwallex } from '@airwallex/node-sdk';\nconst awx = new Airwallex({ apiKey: '{k}' });\n",
    2
);
dialect!(
    dialect_kubernetes_secret_base64,
    "k8s/secret.yaml",
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments\ntype: Opaque\ndata:\n  API_KEY: {b}\n",
    7
);
dialect!(
    dialect_kubernetes_secret_string_data,
    "k8s/payments.yaml",
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: payments\nstringData:\n  API_KEY: \"{k}\"\n",
    6
);
dialect!(
    dialect_jupyter_notebook,
    "notebooks/payouts.ipynb",
    "{\"cells\": [{\"cell_type\": \"code\", \"source\": [\"import os\\n\", \"os.environ[\\\"AIRWALLEX_API_KEY\\\"] = \\\"{k}\\\"\\n\"]}]}\n",
    1
);
dialect!(
    dialect_rust_const_with_type,
    "src/config.rs",
    "// payouts\npub const AIRWALLEX_API_KEY: &str = \"{k}\";\n",
    2
);
dialect!(
    dialect_typescript_typed_variable,
    "src/settings.ts",
    "export const AWX_API_KEY: string = \"{k}\";\n",
    1
);

#[test]
fn client_id_next_to_a_key_is_reported_with_it_redacted_not_on_its_own() {
    let d = tempdir();
    let (k, c) = (key("cid-pair"), client_id("cid-pair"));
    write(
        d.path(),
        ".env",
        format!("AIRWALLEX_CLIENT_ID={c}\nAIRWALLEX_API_KEY={k}\n"),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    let f = findings(&j);
    assert_eq!(
        f.len(),
        1,
        "the client ID is not a finding of its own: {j:#}"
    );
    let shown = f[0]["secret"]["client_id"].as_str().expect("client_id");
    assert_eq!(shown, format!("{}…{}", &c[..4], &c[18..]));
    let o = run(d.path(), &["scan"]);
    let out = stdout(&o);
    assert!(out.contains(&format!("client ID {shown}")), "{out}");
    assert!(!out.contains(&c), "client ID in clear: {out}");
    assert!(!j.to_string().contains(&c), "client ID in clear in JSON");
}

#[test]
fn a_client_id_alone_is_not_a_finding() {
    let d = tempdir();
    write(
        d.path(),
        ".env",
        format!("NEXT_PUBLIC_AIRWALLEX_CLIENT_ID={}\n", client_id("public")),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!((code, findings(&j).len()), (0, 0), "{j:#}");
}

#[test]
fn airwallex_access_token_is_found_and_an_expired_one_is_low() {
    let d = tempdir();
    let live = airwallex_token("live-token", NOW + 900);
    let old = airwallex_token("old-token", NOW - 86_400);
    write(
        d.path(),
        "logs/debug.log",
        format!("login ok token={live}\n"),
    );
    write(
        d.path(),
        "logs/old.log",
        format!("Authorization: Bearer {old}\n"),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    let f = findings(&j);
    assert_eq!(f.len(), 2, "{j:#}");
    let by_path = |p: &str| {
        f.iter()
            .find(|x| x["path"] == p)
            .unwrap_or_else(|| panic!("no finding in {p}: {j:#}"))
            .clone()
    };
    let l = by_path("logs/debug.log");
    assert_eq!(l["rule"], "leak.airwallex.access-token");
    assert_eq!(l["severity"], "high");
    assert_eq!(l["secret"]["fingerprint"], fingerprint(&live));
    let o = by_path("logs/old.log");
    assert_eq!(o["severity"], "low");
    assert!(o["message"].as_str().unwrap().contains("expired"), "{o}");
    let text = j.to_string();
    assert_no_secret(&text, &live, "json report");
    assert_no_secret(&text, &old, "json report");
}

#[test]
fn the_same_key_twice_in_one_file_is_two_findings_with_distinct_ids() {
    let d = tempdir();
    let k = key("twice");
    write(
        d.path(),
        ".env",
        format!("AIRWALLEX_API_KEY={k}\nAIRWALLEX_SANDBOX_API_KEY={k}\n"),
    );
    let (_, j) = scan_json(d.path(), &[]);
    let f = findings(&j);
    assert_eq!(f.len(), 2, "{j:#}");
    assert_ne!(f[0]["id"], f[1]["id"]);
    assert_eq!(f[0]["secret"]["fingerprint"], f[1]["secret"]["fingerprint"]);
}

#[test]
fn finding_ids_are_stable_across_runs() {
    let d = tempdir();
    write(d.path(), ".env", format!("AWX_API_KEY={}\n", key("stable")));
    let (_, a) = scan_json(d.path(), &[]);
    let (_, b) = scan_json(d.path(), &[]);
    assert_eq!(a["findings"][0]["id"], b["findings"][0]["id"]);
    assert!(a["findings"][0]["id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
}

#[test]
fn line_and_column_point_at_the_key_in_characters() {
    let d = tempdir();
    let k = key("column");
    // Two two-byte characters before the key on its line: the column counts characters.
    write(
        d.path(),
        "config.yml",
        format!("# déjà vu\nairwallex:\n  apiKey: {k} # é\n"),
    );
    let (_, j) = scan_json(d.path(), &[]);
    assert_eq!(j["findings"][0]["line"], 3);
    assert_eq!(j["findings"][0]["column"], 11);
}

// ---------------------------------------------------------------------------------------------
// Negatives: the classes of text that look like a key but are not one.

fn assert_clean(rel: &str, text: &str) {
    let d = tempdir();
    write(d.path(), rel, text);
    let o = run(d.path(), &["scan", "--format", "json"]);
    let j = json(&o);
    assert_eq!(findings(&j).len(), 0, "{rel}: no finding expected: {j:#}");
    assert_eq!(code(&o), 0, "{rel}");
    assert_eq!(j["summary"]["scan"]["files"], 1, "{rel} was scanned");
}

#[test]
fn negative_bare_sha384_digests() {
    let h = key("a release tarball");
    assert_clean("SHA384SUMS", &format!("{h}  airwallex-sdk-1.2.0.tgz\n"));
    assert_clean("checksums.txt", &format!("sha384  {h}  awx-cli.tar.gz\n"));
    assert_clean(
        "package-lock.json",
        &format!("{{\"@airwallex/node-sdk\": {{\"integrity\": \"sha384-{h}\"}}}}\n"),
    );
    assert_clean(".env", &format!("AIRWALLEX_SDK_SHA384={h}\n"));
    assert_clean("digest.txt", &format!("{h}\n"));
}

#[test]
fn negative_kubernetes_manifests_that_are_not_secrets() {
    let h = key("configmap");
    assert_clean(
        "k8s/configmap.yaml",
        &format!("apiVersion: v1\nkind: ConfigMap\ndata:\n  BUNDLE: {h}\n"),
    );
    assert_clean(
        "k8s/secret.yaml",
        &format!("kind: Secret\nstringData:\n  bundle-sha384: {h}\n"),
    );
}

#[test]
fn negative_env_lookups() {
    assert_clean(
        "app.py",
        "import os\napi_key = os.environ[\"AIRWALLEX_API_KEY\"]\n",
    );
    assert_clean("app2.py", "api_key = os.getenv('AIRWALLEX_API_KEY')\n");
    assert_clean("app.js", "const apiKey = process.env.AIRWALLEX_API_KEY;\n");
    assert_clean(
        "docker-compose.yml",
        "services:\n  api:\n    environment:\n      AIRWALLEX_API_KEY: ${AIRWALLEX_API_KEY}\n",
    );
    assert_clean(
        ".github/workflows/ci.yml",
        "env:\n  AWX_API_KEY: ${{ secrets.AWX_API_KEY }}\n",
    );
}

#[test]
fn negative_documentation_placeholders() {
    assert_clean(
        "README.md",
        "Set `AIRWALLEX_API_KEY=<your_api_key>` and send `x-api-key: {{api_key}}`.\n",
    );
    assert_clean(
        "docs/zeros.env",
        &format!("AIRWALLEX_API_KEY={}\n", "0".repeat(96)),
    );
    assert_clean(
        "docs/sequence.env",
        &format!("AIRWALLEX_API_KEY={}\n", "0123456789abcdef".repeat(6)),
    );
    assert_clean(
        "docs/repeat.env",
        &format!("AWX_API_KEY={}\n", "deadbeef".repeat(12)),
    );
    assert_clean("docs/x.env", &format!("AWX_API_KEY={}\n", "x".repeat(96)));
}

#[test]
fn negative_another_vendors_jwt() {
    let other = jwt(
        &serde_json::json!({"iss": "https://auth.example.com", "sub": "user-1842",
            "aud": "example-api", "iat": NOW, "exp": NOW + 3600, "scope": "read write"}),
        r#"{"alg":"HS256","typ":"JWT"}"#,
    );
    assert_clean("auth_test.go", &format!("token := \"{other}\"\n"));
    // Airwallex-shaped claims but another algorithm: not Airwallex's token.
    let rs = airwallex_token("rs256", NOW + 600).replacen(
        &b64url(br#"{"alg":"HS256"}"#),
        &b64url(br#"{"alg":"RS256"}"#),
        1,
    );
    assert_clean("rs.log", &format!("token={rs}\n"));
}

#[test]
fn negative_other_vendors_and_neighbours() {
    let h = key("neighbour");
    assert_clean("config.yaml", &format!("stripe:\n  api_key: {h}\n"));
    assert_clean(".env", &format!("AIRWALLEX_WEBHOOK_SECRET={h}\n"));
    // 128 hex digits (a SHA-512) is not a 96-digit key, even under an Airwallex name.
    assert_clean(".env.512", &format!("AIRWALLEX_API_KEY={h}{}\n", &h[..32]));
    // Mixed-case hex is no key.
    let mixed: String = h
        .chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect();
    assert_clean(".env.mixed", &format!("AIRWALLEX_API_KEY={mixed}\n"));
}

#[test]
fn issue15_an_upper_case_key_is_reported_as_airwallex_issued_it() {
    // Fingerprint and preview are the lower-case key's (the findings contract), so the finding
    // meets the same key found elsewhere or declared in the inventory.
    let d = tempdir();
    let k = key("upper");
    write(
        d.path(),
        ".env",
        format!("AIRWALLEX_API_KEY={}\n", k.to_ascii_uppercase()),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    let f = &findings(&j)[0];
    assert_eq!(f["secret"]["fingerprint"], fingerprint(&k));
    assert!(f["secret"]["preview"]
        .as_str()
        .unwrap()
        .starts_with(&k[..4]));
    assert_no_secret(&j.to_string(), &k.to_ascii_uppercase(), "json report");
}

#[test]
fn allow_comment_suppresses_its_line_only() {
    let d = tempdir();
    let (a, b) = (key("allowed"), key("not-allowed"));
    write(
        d.path(),
        ".env",
        format!("AIRWALLEX_API_KEY={a}  # awxguard:allow\nAWX_API_KEY={b}\n"),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(
        triples(&j),
        vec![(
            ".env".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&b)
        )]
    );
    assert_eq!(j["findings"][0]["line"], 2);
}

#[test]
fn allow_comment_in_other_comment_styles() {
    for (rel, text) in [
        (
            "a.js",
            "const k = { 'x-api-key': '{k}' }; // awxguard:allow\n",
        ),
        (
            "b.yaml",
            "airwallex:\n  apiKey: {k} # awxguard:allow (test fixture)\n",
        ),
        ("c.py", "AIRWALLEX_API_KEY = '{k}'  # noqa awxguard:allow\n"),
    ] {
        assert_clean(rel, &text.replace("{k}", &key(rel)));
    }
}

// ---------------------------------------------------------------------------------------------
// Files: hidden, binary, non-UTF-8, huge, unreadable, special.

#[test]
fn hidden_files_are_scanned_and_dot_git_is_skipped() {
    let d = tempdir();
    let (a, b, g) = (key("dotenv"), key("dotgithub"), key("dotgit"));
    write(d.path(), ".env", format!("AIRWALLEX_API_KEY={a}\n"));
    write(
        d.path(),
        ".github/workflows/ci.yml",
        format!("env:\n  AWX_API_KEY: {b}\n"),
    );
    write(d.path(), ".git/config", format!("AIRWALLEX_API_KEY={g}\n"));
    write(d.path(), ".git/objects/ab/cd", format!("AWX_API_KEY={g}\n"));
    let (_, j) = scan_json(d.path(), &[]);
    let mut expected = vec![
        (
            ".env".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&a),
        ),
        (
            ".github/workflows/ci.yml".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&b),
        ),
    ];
    expected.sort();
    assert_eq!(triples(&j), expected);
    assert_eq!(j["summary"]["scan"]["files"], 2);
}

#[test]
fn binary_files_are_skipped_and_counted() {
    let d = tempdir();
    let k = key("binary");
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    png.extend_from_slice(format!("AIRWALLEX_API_KEY={k}\n").as_bytes());
    write(d.path(), "logo.png", &png);
    write(d.path(), "ok.txt", "nothing here\n");
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 0, "{j:#}");
    let s = &j["summary"]["scan"];
    assert_eq!(s["skipped_binary"], 1);
    assert_eq!(s["files"], 1);
    let o = run(d.path(), &["scan"]);
    assert!(stdout(&o).contains("1 binary"), "{}", stdout(&o));
}

#[test]
fn non_utf8_text_is_scanned() {
    let d = tempdir();
    let k = key("latin1");
    // Latin-1 comment bytes (invalid UTF-8) around a key.
    let mut text = b"# Einstellungen f\xfcr die Zahlungen \xe9\xe8\n".to_vec();
    text.extend_from_slice(format!("AIRWALLEX_API_KEY={k}\n").as_bytes());
    text.extend_from_slice(b"# \xff\xfe end\n");
    write(d.path(), "settings.env", &text);
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(j["findings"][0]["line"], 2);
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&k));
}

#[test]
fn issue15_utf16_text_is_decoded_and_its_key_found_at_the_right_line() {
    // Windows .reg exports and PowerShell `Out-File` write UTF-16: with a byte-order mark, or
    // (no mark) NUL-interleaved ASCII. Both are decoded, not skipped as binary; line and column
    // count characters as a reader sees them.
    let utf16 = |text: &str, little: bool, bom: bool| {
        let mut t = Vec::new();
        if bom {
            t.extend_from_slice(if little { &[0xff, 0xfe] } else { &[0xfe, 0xff] });
        }
        for c in text.encode_utf16() {
            t.extend_from_slice(&if little {
                c.to_le_bytes()
            } else {
                c.to_be_bytes()
            });
        }
        t
    };
    let d = tempdir();
    let (a, b, c) = (key("utf16-reg"), key("utf16-ps"), key("utf16-be"));
    write(
        d.path(),
        "env.reg",
        utf16(
            &format!(
                "Windows Registry Editor Version 5.00\r\n\r\n[HKEY_CURRENT_USER\\Environment]\r\n\"AIRWALLEX_API_KEY\"=\"{a}\"\r\n"
            ),
            true,
            true,
        ),
    );
    write(
        d.path(),
        "env-export.txt",
        utf16(
            &format!("Name               Value\r\n----               -----\r\nAIRWALLEX_API_KEY  {b}\r\n"),
            true,
            false,
        ),
    );
    write(
        d.path(),
        "settings.ini",
        utf16(&format!("[airwallex]\r\napi_key={c}\r\n"), false, true),
    );
    // Binary data stays binary.
    write(d.path(), "blob.bin", [0u8, 1, 2, 3, 0, 0, 7, 0, 0xff, 0x10]);
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(j["summary"]["scan"]["skipped_binary"], 1);
    let by_path = |p: &str| {
        findings(&j)
            .iter()
            .find(|f| f["path"] == p)
            .cloned()
            .unwrap_or_else(|| panic!("no finding in {p}: {j}"))
    };
    let reg = by_path("env.reg");
    assert_eq!(reg["secret"]["fingerprint"], fingerprint(&a));
    assert_eq!(
        (reg["line"].as_u64(), reg["column"].as_u64()),
        (Some(4), Some(22))
    );
    let ps = by_path("env-export.txt");
    assert_eq!(ps["secret"]["fingerprint"], fingerprint(&b));
    assert_eq!(
        (ps["line"].as_u64(), ps["column"].as_u64()),
        (Some(3), Some(20))
    );
    assert_eq!(
        by_path("settings.ini")["secret"]["fingerprint"],
        fingerprint(&c)
    );
}

#[test]
fn files_above_the_size_limit_are_skipped_and_counted() {
    let d = tempdir();
    let k = key("huge");
    let mut big = "// filler line of generated code\n".repeat(40_000);
    big.push_str(&format!("AIRWALLEX_API_KEY={k}\n"));
    write(d.path(), "big.js", &big);
    write(d.path(), ".env", format!("AWX_API_KEY={}\n", key("small")));
    let (code, j) = scan_json(d.path(), &["--max-file-size", "100000"]);
    assert_eq!(code, 1);
    assert_eq!(j["summary"]["scan"]["skipped_too_large"], 1);
    assert_eq!(j["summary"]["scan"]["files"], 1);
    assert_eq!(findings(&j).len(), 1);
    assert_eq!(j["findings"][0]["path"], ".env");
    // Under the default limit (25 MiB) the same file is scanned.
    let (_, j) = scan_json(d.path(), &[]);
    assert_eq!(findings(&j).len(), 2);
    assert_eq!(j["summary"]["scan"]["skipped_too_large"], 0);
}

#[test]
fn a_huge_file_over_the_default_limit_is_skipped_without_reading_it() {
    let d = tempdir();
    // A sparse 64 MiB file: over the default 25 MiB limit.
    let f = std::fs::File::create(d.path().join("dump.sql")).unwrap();
    f.set_len(64 << 20).unwrap();
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(j["summary"]["scan"]["skipped_too_large"], 1);
    assert_eq!(j["summary"]["scan"]["files"], 0);
}

#[test]
fn a_dangling_symlink_is_reported_not_fatal() {
    let d = tempdir();
    std::os::unix::fs::symlink("does-not-exist.env", d.path().join("gone.env")).unwrap();
    write(
        d.path(),
        ".env",
        format!("AWX_API_KEY={}\n", key("dangling")),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1, "findings still decide the exit code");
    assert_eq!(findings(&j).len(), 1);
    assert_eq!(j["summary"]["scan"]["unreadable"], 1);
    let p = &j["summary"]["problems"][0];
    assert_eq!(p["path"], "gone.env");
    assert!(p["error"].as_str().unwrap().contains("symlink"), "{p}");
    let o = run(d.path(), &["scan"]);
    assert!(
        stdout(&o).contains("warning: gone.env: broken or unreadable symlink"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_symlink_loop_is_reported_not_fatal() {
    let d = tempdir();
    write(
        d.path(),
        "sub/.env",
        format!("AWX_API_KEY={}\n", key("loop")),
    );
    std::os::unix::fs::symlink("..", d.path().join("sub/up")).unwrap();
    std::os::unix::fs::symlink("self", d.path().join("self")).unwrap();
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(findings(&j).len(), 1, "the key is found once: {j:#}");
    let problems = j["summary"]["problems"].as_array().unwrap();
    let paths: Vec<&str> = problems
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, vec!["self", "sub/up"], "{problems:?}");
    assert!(problems[1]["error"]
        .as_str()
        .unwrap()
        .contains("symlink loop"));
    // --no-follow leaves symlinks alone: no loop, no problem.
    let (_, j) = scan_json(d.path(), &["--no-follow"]);
    assert!(j["summary"].get("problems").is_none(), "{j:#}");
    assert_eq!(findings(&j).len(), 1);
}

#[test]
fn an_unreadable_file_is_reported_not_fatal() {
    // Tests run as root here, where chmod 000 stops nothing. /proc/self/mem is a regular file
    // that fails to read at offset 0 (EIO) for everyone, root included; a symlink brings it into
    // the scanned tree.
    if !Path::new("/proc/self/mem").exists() {
        eprintln!("skipped: no /proc/self/mem on this system");
        return;
    }
    let d = tempdir();
    std::os::unix::fs::symlink("/proc/self/mem", d.path().join("mem.txt")).unwrap();
    write(
        d.path(),
        ".env",
        format!("AWX_API_KEY={}\n", key("unreadable")),
    );
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 1);
    assert_eq!(findings(&j).len(), 1);
    assert_eq!(j["summary"]["scan"]["unreadable"], 1);
    assert_eq!(j["summary"]["problems"][0]["path"], "mem.txt");
}

#[test]
fn a_fifo_is_not_read() {
    // Reading a FIFO nobody writes to would hang the scan; it is not a file to scan.
    let d = tempdir();
    let st = std::process::Command::new("mkfifo")
        .arg(d.path().join("pipe"))
        .status()
        .expect("mkfifo");
    assert!(st.success());
    write(d.path(), "a.txt", "hello\n");
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(j["summary"]["scan"]["files"], 1);
}

#[test]
fn empty_files_and_empty_directories_are_fine() {
    let d = tempdir();
    write(d.path(), "empty.txt", "");
    std::fs::create_dir_all(d.path().join("nothing/here")).unwrap();
    let (code, j) = scan_json(d.path(), &[]);
    assert_eq!(code, 0);
    assert_eq!(j["summary"]["scan"]["files"], 1);
    assert_eq!(j["summary"]["scan"]["bytes"], 0);
}

#[test]
fn many_files_in_parallel_are_all_found() {
    let d = tempdir();
    let mut expected = Vec::new();
    for i in 0..300 {
        let k = key(&format!("many-{i}"));
        let rel = format!("svc{}/pkg{}/.env", i % 7, i);
        write(d.path(), &rel, format!("AIRWALLEX_API_KEY={k}\n"));
        write(
            d.path(),
            &format!("svc{}/pkg{}/main.rs", i % 7, i),
            "fn main() {}\n",
        );
        expected.push((rel, "leak.airwallex.api-key".to_string(), fingerprint(&k)));
    }
    expected.sort();
    let (_, j) = scan_json(d.path(), &[]);
    assert_eq!(triples(&j), expected);
    assert_eq!(j["summary"]["scan"]["files"], 600);
}

// ---------------------------------------------------------------------------------------------
// Inputs: roots, standard input.

#[test]
fn stdin_dash_is_scanned_as_stdin() {
    let d = tempdir();
    let k = key("stdin");
    let mut child = awxguard(d.path())
        .args(["scan", "--format", "json", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(format!("x-api-key: {k}\n").as_bytes())
            .unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(code(&o), 1);
    let j = json(&o);
    assert_eq!(j["findings"][0]["path"], "<stdin>");
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&k));
    assert_eq!(j["summary"]["scan"]["files"], 1);
    assert_no_secret(&stdout(&o), &k, "stdin json report");
}

#[test]
fn stdin_clean_and_binary() {
    let d = tempdir();
    let o = awxguard(d.path())
        .args(["scan", "--format", "json", "-"])
        .stdin(std::fs::File::open("/dev/null").unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    write(d.path(), "bin", b"\0\x01\x02AWX_API_KEY=");
    let o = awxguard(d.path())
        .args(["scan", "--format", "json", "-"])
        .stdin(std::fs::File::open(d.path().join("bin")).unwrap())
        .output()
        .unwrap();
    assert_eq!(code(&o), 0);
    assert_eq!(json(&o)["summary"]["scan"]["skipped_binary"], 1);
}

#[test]
fn several_roots_files_and_directories() {
    let d = tempdir();
    let (a, b) = (key("root-a"), key("root-b"));
    write(d.path(), "one/.env", format!("AWX_API_KEY={a}\n"));
    write(
        d.path(),
        "two/deploy.sh",
        format!("curl -H 'x-api-key: {b}'\n"),
    );
    let (_, j) = scan_json(d.path(), &["one", "two/deploy.sh"]);
    let mut expected = vec![
        (
            "one/.env".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&a),
        ),
        (
            "two/deploy.sh".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&b),
        ),
    ];
    expected.sort();
    assert_eq!(triples(&j), expected);
}

#[test]
fn default_root_is_the_current_directory() {
    let d = tempdir();
    write(
        d.path(),
        "a/b/.env",
        format!("AWX_API_KEY={}\n", key("default")),
    );
    let o = run(d.path(), &["scan", "--format", "json"]);
    assert_eq!(code(&o), 1);
    assert_eq!(json(&o)["findings"][0]["path"], "a/b/.env");
}

// ---------------------------------------------------------------------------------------------
// Ignore rules.

#[test]
fn gitignore_and_awxguardignore_are_honoured_and_counted() {
    let d = tempdir();
    let k = key("kept");
    write(d.path(), ".gitignore", "node_modules/\n*.log\n");
    write(d.path(), ".awxguardignore", "fixtures/\n");
    write(
        d.path(),
        "node_modules/sdk/test.env",
        format!("AWX_API_KEY={}\n", key("nm")),
    );
    write(
        d.path(),
        "debug.log",
        format!("AWX_API_KEY={}\n", key("log")),
    );
    write(
        d.path(),
        "fixtures/keys.env",
        format!("AWX_API_KEY={}\n", key("fixture")),
    );
    write(d.path(), "src/.env", format!("AWX_API_KEY={k}\n"));
    let (_, j) = scan_json(d.path(), &[]);
    assert_eq!(
        triples(&j),
        vec![(
            "src/.env".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&k)
        )]
    );
    assert_eq!(j["summary"]["scan"]["skipped_ignored"], 3);
    let o = run(d.path(), &["scan"]);
    assert!(stdout(&o).contains("skipped 3 ignored"), "{}", stdout(&o));

    let (_, j) = scan_json(d.path(), &["--no-ignore"]);
    assert_eq!(findings(&j).len(), 4, "{j:#}");
    assert_eq!(j["summary"]["scan"]["skipped_ignored"], 0);
}

#[test]
fn nested_ignore_files_and_negation() {
    let d = tempdir();
    write(d.path(), ".gitignore", "*.env\n!keep.env\n");
    write(d.path(), "sub/.gitignore", "local/\n");
    write(d.path(), "a.env", format!("AWX_API_KEY={}\n", key("a")));
    let kept = key("keep");
    write(d.path(), "keep.env", format!("AWX_API_KEY={kept}\n"));
    write(
        d.path(),
        "sub/local/x.yml",
        format!("AWX_API_KEY: {}\n", key("x")),
    );
    let (_, j) = scan_json(d.path(), &[]);
    assert_eq!(
        triples(&j),
        vec![(
            "keep.env".to_string(),
            "leak.airwallex.api-key".to_string(),
            fingerprint(&kept)
        )]
    );
    assert_eq!(j["summary"]["scan"]["skipped_ignored"], 2);
}

#[test]
fn scanning_a_subdirectory_honours_the_repositorys_gitignore() {
    let d = tempdir();
    std::fs::create_dir_all(d.path().join(".git")).unwrap();
    write(d.path(), ".gitignore", "secrets/\n");
    write(
        d.path(),
        "app/secrets/k.env",
        format!("AWX_API_KEY={}\n", key("sub-ignored")),
    );
    write(d.path(), "app/main.py", "print('hi')\n");
    let (code, j) = scan_json(&d.path().join("app"), &[]);
    assert_eq!(code, 0, "{j:#}");
    assert_eq!(j["summary"]["scan"]["skipped_ignored"], 1);
}

// ---------------------------------------------------------------------------------------------
// Exit codes.

#[test]
fn exit_0_when_clean() {
    let d = tempdir();
    write(d.path(), "main.rs", "fn main() { println!(\"hello\"); }\n");
    let o = run(d.path(), &["scan"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(stdout(&o).contains("0 findings"), "{}", stdout(&o));
}

#[test]
fn exit_1_on_findings_and_fail_on_decides() {
    let d = tempdir();
    write(
        d.path(),
        "old.log",
        format!("token={}\n", airwallex_token("fail-on", NOW - 100_000)),
    );
    // An expired token is low: fails at the default (low), not at --fail-on high.
    assert_eq!(code(&run(d.path(), &["scan"])), 1);
    assert_eq!(code(&run(d.path(), &["scan", "--fail-on", "high"])), 0);
    assert_eq!(code(&run(d.path(), &["scan", "--fail-on", "low"])), 1);
}

#[test]
fn exit_2_when_a_root_does_not_exist() {
    let d = tempdir();
    let o = run(d.path(), &["scan", "no/such/dir"]);
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("cannot scan no/such/dir"),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).is_empty());
}

#[test]
fn exit_2_on_bad_usage() {
    let d = tempdir();
    let o = run(d.path(), &["scan", "-", "."]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("standard input"), "{}", stderr(&o));
    let o = run(d.path(), &["scan", "--disable", "leak.nope"]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("leak.nope"), "{}", stderr(&o));
    let o = run(d.path(), &["scan", "--format", "yaml"]);
    assert_eq!(code(&o), 2);
}

#[test]
fn output_file_gets_the_report_and_stdout_stays_empty() {
    let d = tempdir();
    let k = key("output-file");
    write(d.path(), "src/.env", format!("AWX_API_KEY={k}\n"));
    let o = run(
        d.path(),
        &["scan", "--format", "json", "-o", "report.json", "src"],
    );
    assert_eq!(code(&o), 1);
    assert!(stdout(&o).is_empty());
    let text = std::fs::read_to_string(d.path().join("report.json")).unwrap();
    let j: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&k));
    assert_no_secret(&text, &k, "report file");
}

// ---------------------------------------------------------------------------------------------
// What people and programs read: snapshots, and the secret never in clear.

/// A small tree with one finding of each kind and the odd files, all made from fixed seeds.
fn snapshot_tree(dir: &Path) {
    write(
        dir,
        ".env",
        format!(
            "AIRWALLEX_CLIENT_ID={}\nAIRWALLEX_API_KEY={}\n",
            client_id("snap"),
            key("snap-env")
        ),
    );
    write(
        dir,
        "scripts/smoke.sh",
        format!(
            "curl -X POST https://api.airwallex.com/api/v1/authentication/login \\\n  -H 'x-api-key: {}'\n",
            key("snap-curl")
        ),
    );
    write(
        dir,
        "logs/app.log",
        format!(
            "login ok token={}\n",
            airwallex_token("snap-token", NOW - 60)
        ),
    );
    write(dir, "README.md", "Set AIRWALLEX_API_KEY=<your_api_key>.\n");
    write(dir, ".gitignore", "node_modules/\n");
    write(
        dir,
        "node_modules/x/.env",
        format!("AWX_API_KEY={}\n", key("snap-ignored")),
    );
    write(dir, "logo.png", b"\x89PNG\r\n\x1a\n\0\0");
    std::os::unix::fs::symlink("missing.yaml", dir.join("broken.yaml")).unwrap();
}

fn snapshot_secrets() -> Vec<String> {
    vec![
        key("snap-env"),
        key("snap-curl"),
        key("snap-ignored"),
        airwallex_token("snap-token", NOW - 60),
    ]
}

/// Replaces the run time in the human summary (`in 0.03s`) with a fixed marker.
fn redact_time(text: &str) -> String {
    let re = regex::Regex::new(r"in [0-9]+\.[0-9]{2}s").unwrap();
    re.replace_all(text, "in [TIME]s").into_owned()
}

#[test]
fn snapshot_human_report() {
    let d = tempdir();
    snapshot_tree(d.path());
    let o = run(d.path(), &["scan"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    insta::assert_snapshot!("scan_human", redact_time(&stdout(&o)));
}

#[test]
fn snapshot_json_report() {
    let d = tempdir();
    snapshot_tree(d.path());
    let o = run(d.path(), &["scan", "--format", "json"]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let mut j = json(&o);
    assert!(j["summary"]["scan"]["elapsed_ms"].is_u64());
    j["summary"]["scan"]["elapsed_ms"] = serde_json::json!("[elapsed]");
    // Paths are relative to the directory scanned from (no git work tree here).
    let root = std::path::PathBuf::from(j["summary"]["scan"]["root"].as_str().unwrap());
    assert_eq!(root, std::fs::canonicalize(d.path()).unwrap());
    j["summary"]["scan"]["root"] = serde_json::json!("[root]");
    insta::assert_json_snapshot!("scan_json", j);
}

#[test]
fn colour_only_when_asked_or_on_a_terminal() {
    let d = tempdir();
    snapshot_tree(d.path());
    // Piped (as here): no escape codes, even without NO_COLOR.
    let o = awxguard(d.path())
        .env_remove("NO_COLOR")
        .args(["scan"])
        .output()
        .unwrap();
    assert!(!stdout(&o).contains('\x1b'), "{}", stdout(&o));
    let o = run(d.path(), &["scan", "--color", "always"]);
    assert!(stdout(&o).contains("\x1b[31mhigh\x1b[0m"), "{}", stdout(&o));
}

#[test]
fn no_output_format_or_log_level_shows_a_secret() {
    let d = tempdir();
    snapshot_tree(d.path());
    let formats = [
        vec!["scan"],
        vec!["scan", "--format", "human", "--color", "always"],
        vec!["scan", "--format", "json"],
        vec!["scan", "--no-ignore"],
        vec!["scan", "--no-ignore", "--format", "json"],
        vec!["scan", "-vvv"],
        vec!["scan", "-vvv", "--format", "json", "--no-ignore"],
    ];
    let mut checked = 0;
    for args in &formats {
        let o = run(d.path(), args);
        assert_eq!(code(&o), 1, "{args:?}: {}", stderr(&o));
        for s in snapshot_secrets() {
            assert_no_secret(&stdout(&o), &s, &format!("stdout of {args:?}"));
            assert_no_secret(&stderr(&o), &s, &format!("stderr of {args:?}"));
            checked += 1;
        }
    }
    // Written to a file, too.
    let o = run(
        d.path(),
        &["scan", "--format", "json", "--no-ignore", "-o", "out.json"],
    );
    assert_eq!(code(&o), 1);
    let text = std::fs::read_to_string(d.path().join("out.json")).unwrap();
    assert!(text.contains("leak.airwallex.api-key"));
    for s in snapshot_secrets() {
        assert_no_secret(&text, &s, "report file");
    }
    assert_eq!(checked, formats.len() * 4);
}
