//! Working-tree scanning through the real binary.

use crate::common::*;

#[test]
fn finds_a_key_in_an_env_file_and_exits_1() {
    let d = tempdir();
    let k = key("env-file");
    write(d.path(), ".env", format!("AIRWALLEX_API_KEY={k}\n"));
    let o = run(d.path(), &["scan", "--format", "json", "."]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let j = json(&o);
    assert_eq!(j["findings"][0]["rule"], "leak.airwallex.api-key");
    assert_eq!(j["findings"][0]["path"], ".env");
    assert_eq!(j["findings"][0]["secret"]["fingerprint"], fingerprint(&k));
    assert_no_secret(&stdout(&o), &k, "json report");
}
