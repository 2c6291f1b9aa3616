//! Leak rules test themselves: every rule's examples must be found and its negative examples
//! must not (`awxguard rules check`).

use super::Matcher;

/// One example that did not behave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFailure {
    pub rule: String,
    pub path: String,
    pub expected_finding: bool,
    pub detail: String,
}

/// Runs every example of every leak rule through the matcher; returns the failures and the
/// number of examples run.
pub fn check_leak_rules(matcher: &Matcher) -> (Vec<ExampleFailure>, usize) {
    let mut failures = Vec::new();
    let mut ran = 0;
    for (i, rule) in matcher.rules().rules.iter().enumerate() {
        for ex in &rule.examples {
            ran += 1;
            let hits: Vec<_> = matcher
                .scan(&ex.path, ex.text.as_bytes())
                .into_iter()
                .filter(|m| m.rule == i)
                .collect();
            if hits.is_empty() {
                failures.push(ExampleFailure {
                    rule: rule.id.clone(),
                    path: ex.path.clone(),
                    expected_finding: true,
                    detail: "example not found".into(),
                });
            }
        }
        for ex in &rule.negative_examples {
            ran += 1;
            let hits: Vec<_> = matcher
                .scan(&ex.path, ex.text.as_bytes())
                .into_iter()
                .filter(|m| m.rule == i)
                .collect();
            if let Some(m) = hits.first() {
                failures.push(ExampleFailure {
                    rule: rule.id.clone(),
                    path: ex.path.clone(),
                    expected_finding: false,
                    detail: format!(
                        "negative example reported by pattern {} at line {}",
                        m.pattern, m.line
                    ),
                });
            }
        }
    }
    (failures, ran)
}
