//! One incident, one finding: folding the findings a stronger one on the same key implies.

use super::*;

/// A finding as made, with what folding needs.
pub(super) struct Made {
    pub(super) finding: Finding,
    pub(super) check: Check,
    /// The checks it carries when they fire on the same key.
    pub(super) folds: Vec<Check>,
    /// What it adds to the finding that carries it.
    pub(super) folded_steps: Vec<String>,
    /// What it adds to a carrier without a replacement key of its own.
    pub(super) folded_replacement_steps: Vec<String>,
}

/// One incident, one finding (findings contract, "Folding"): a finding that a stronger one on
/// the same key implies is carried in the stronger one's `also` (with its message and evidence
/// in `evidence.folded`, its inputs in `observed_by`, its `folded_steps` appended to the steps)
/// instead of being reported on its own. The carrier keeps its severity: a revoked key carrying
/// an admin key's findings is not "critical: can call every API". Which rule carries which is
/// data (`folds` in the rule files); a finding carried by one that is itself carried goes to
/// the top of the chain.
pub(super) fn fold(made: Vec<Made>) -> Vec<Finding> {
    let n = made.len();
    // An acknowledged finding (a literal the config accepts) carries nothing: what it would
    // carry is not what was accepted.
    let folds = |j: usize| -> &[Check] {
        if made[j].finding.status == Some(Status::Acknowledged) {
            &[]
        } else {
            &made[j].folds
        }
    };
    // carrier[i]: the index of the finding that carries finding i directly
    let carrier: Vec<Option<usize>> = (0..n)
        .map(|i| {
            (0..n).find(|&j| {
                j != i && folds(j).contains(&made[i].check) && !folds(i).contains(&made[j].check)
            })
        })
        .collect();
    let top = |mut i: usize| -> Option<usize> {
        let mut steps = 0;
        while let Some(j) = carrier[i] {
            i = j;
            steps += 1;
            if steps > n {
                return None; // a cycle: leave it on its own
            }
        }
        Some(i)
    };
    let mut carried: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut standalone = vec![true; n];
    for i in 0..n {
        if carrier[i].is_none() {
            continue;
        }
        if let Some(t) = top(i) {
            carried[t].push(i);
            standalone[i] = false;
        }
    }
    let mut out = Vec::new();
    for t in 0..n {
        if !standalone[t] {
            continue;
        }
        let mut f = made[t].finding.clone();
        if carried[t].is_empty() {
            out.push(f);
            continue;
        }
        let mut folded = Vec::new();
        let mut observed: BTreeSet<String> = f.observed_by.iter().cloned().collect();
        let own_replacement = f
            .recommendation
            .as_ref()
            .is_some_and(|r| r.replacement.is_some());
        for &i in &carried[t] {
            let w = &made[i].finding;
            f.also.push(w.rule.clone());
            f.also.extend(w.also.iter().cloned());
            folded.push(json!({
                "rule": w.rule,
                "severity": w.severity,
                "message": w.message,
                "evidence": w.evidence,
            }));
            observed.extend(w.observed_by.iter().cloned());
            if let Some(r) = f.recommendation.as_mut() {
                // a carrier that names its replacement key already says what the key should be
                let replacement_steps = if own_replacement {
                    &[][..]
                } else {
                    &made[i].folded_replacement_steps[..]
                };
                for step in made[i].folded_steps.iter().chain(replacement_steps) {
                    if !r.steps.contains(step) {
                        r.steps.push(step.clone());
                    }
                }
                if r.replacement.is_none() {
                    r.replacement = w
                        .recommendation
                        .as_ref()
                        .and_then(|x| x.replacement.clone());
                }
            }
        }
        f.also.sort();
        f.also.dedup();
        f.observed_by = observed.into_iter().collect();
        match f.evidence.as_mut().and_then(|e| e.as_object_mut()) {
            Some(o) => {
                o.insert("folded".into(), Value::Array(folded));
            }
            None => f.evidence = Some(json!({ "folded": folded })),
        }
        out.push(f);
    }
    out
}
