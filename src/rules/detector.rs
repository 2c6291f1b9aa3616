//! Rules whose logic is a built-in detector named by `detector` (the anomaly rules of
//! `usage::detect` and the watch rules of `watch`): one file shape, one reader. Ids,
//! severities, typed parameters, message and step templates, examples and negative examples are
//! data; a family says which detectors, parameters and placeholders exist and what its examples
//! look like (`X`).

use super::{line_of, toml_error, RuleError};
use crate::finding::{Action, Severity};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Type of a detector parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    Integer,
    /// A number; an integer is taken too (`z = 3`).
    Float,
    Bool,
    Severity,
    /// A list of strings.
    Strings,
}

impl ParamType {
    pub fn toml_name(self) -> &'static str {
        match self {
            ParamType::Integer => "integer",
            ParamType::Float => "float",
            ParamType::Bool => "boolean",
            ParamType::Severity => "string",
            ParamType::Strings => "array of strings",
        }
    }
}

/// The parameters one detector reads.
pub type ParamSpec = &'static [(&'static str, ParamType)];

/// What a family of detector rules allows.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// For messages: `anomaly`, `watch`.
    pub kind: &'static str,
    /// Rule ids begin with one of these (`anomaly.`, `usage.`).
    pub prefixes: &'static [&'static str],
    /// The built-in detectors with the parameters each reads.
    pub detectors: &'static [(&'static str, ParamSpec)],
    /// Placeholders a message or step may use.
    pub placeholders: &'static [&'static str],
    /// Where parameter overrides come from, for their errors (`config [watch.params]`).
    pub overrides_from: &'static str,
}

impl Family {
    /// The parameters `detector` reads (none for an unknown one).
    pub fn params_of(&self, detector: &str) -> ParamSpec {
        self.detectors
            .iter()
            .find(|(d, _)| *d == detector)
            .map(|(_, p)| *p)
            .unwrap_or(&[])
    }

    /// Whether `id` is well formed for this family.
    pub fn valid_id(&self, id: &str) -> bool {
        self.prefixes.iter().any(|p| id.starts_with(p)) && super::id_words_valid(id)
    }

    /// Whether a user rule file holds rules of this family (an id with one of its prefixes), so
    /// directories shared with other rule kinds can be given to every loader. A file that does
    /// not parse is claimed, so that its syntax error is reported with its line.
    pub fn claims(&self, text: &str) -> bool {
        let Ok(t) = text.parse::<toml::Table>() else {
            return true;
        };
        t.get("rule")
            .and_then(|r| r.as_array())
            .is_some_and(|rules| {
                rules.iter().any(|r| {
                    r.get("id")
                        .and_then(|i| i.as_str())
                        .is_some_and(|i| self.prefixes.iter().any(|p| i.starts_with(p)))
                        && r.get("detector").is_some()
                })
            })
    }
}

/// One detector rule in force.
#[derive(Debug, Clone)]
pub struct DetectorRule<X> {
    pub id: String,
    pub name: String,
    pub detector: String,
    pub severity: Severity,
    pub action: Action,
    pub params: toml::Table,
    pub description: String,
    pub message: String,
    pub steps: Vec<String>,
    pub examples: Vec<X>,
    pub negative_examples: Vec<X>,
    pub source: PathBuf,
}

impl<X> DetectorRule<X> {
    /// A float parameter (checked at load time to exist with that type).
    pub fn float(&self, name: &str) -> f64 {
        self.params
            .get(name)
            .and_then(|v| v.as_float().or_else(|| v.as_integer().map(|i| i as f64)))
            .unwrap_or(0.0)
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> i64 {
        self.params
            .get(name)
            .and_then(|v| v.as_integer())
            .unwrap_or(0)
    }

    /// A boolean parameter.
    pub fn flag(&self, name: &str) -> bool {
        self.params
            .get(name)
            .and_then(|v| v.as_bool())
            .unwrap_or(false)
    }

    /// A severity parameter, or the rule's severity.
    pub fn severity_param(&self, name: &str) -> Severity {
        self.params
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(self.severity)
    }

    /// A list-of-strings parameter.
    pub fn strings(&self, name: &str) -> Vec<String> {
        self.params
            .get(name)
            .and_then(|v| v.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Applies one rule's overrides from config (`severity` and its detector's parameters).
    pub fn apply_override(
        &mut self,
        family: &Family,
        table: &toml::Table,
    ) -> Result<(), RuleError> {
        let invalid = |message: String| RuleError::Invalid {
            path: PathBuf::from(family.overrides_from),
            id: self.id.clone(),
            message,
        };
        let spec = family.params_of(&self.detector);
        for (k, v) in table {
            if k == "severity" {
                let s = v
                    .as_str()
                    .ok_or_else(|| invalid("severity: expected a string".into()))?;
                self.severity = s.parse().map_err(|e: String| invalid(e))?;
                continue;
            }
            let Some((_, ty)) = spec.iter().find(|(n, _)| n == k) else {
                let mut known: Vec<&str> = spec.iter().map(|(n, _)| *n).collect();
                known.push("severity");
                return Err(invalid(format!(
                    "override parameter {k:?} does not exist (known: {})",
                    known.join(", ")
                )));
            };
            check_param(k, *ty, v).map_err(|m| invalid(format!("override {m}")))?;
            self.params.insert(k.clone(), v.clone());
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "X: DeserializeOwned")]
struct RawFile<X> {
    #[serde(default = "Vec::new")]
    rule: Vec<RawRule<X>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, bound = "X: DeserializeOwned")]
struct RawRule<X> {
    id: String,
    name: String,
    detector: String,
    severity: Severity,
    action: Action,
    #[serde(default)]
    params: toml::Table,
    description: String,
    message: String,
    #[serde(default)]
    steps: Vec<String>,
    #[serde(default = "Vec::new")]
    examples: Vec<X>,
    #[serde(default = "Vec::new")]
    negative_examples: Vec<X>,
}

/// Reads one rule file of `family`: every rule's id, detector, parameters (each one its
/// detector reads, of its type, and no other), placeholders, and at least one example and one
/// negative example; errors name the file and the rule's line.
pub fn parse_file<X: DeserializeOwned>(
    family: &Family,
    path: &Path,
    text: &str,
) -> Result<Vec<DetectorRule<X>>, RuleError> {
    let raw: RawFile<X> = toml::from_str(text).map_err(|e| toml_error(path, text, e))?;
    let mut out = Vec::new();
    for r in raw.rule {
        let line = text
            .find(&format!("\"{}\"", r.id))
            .map(|o| line_of(text, o))
            .unwrap_or(1);
        let parse_err = |message: String| RuleError::Parse {
            path: path.to_path_buf(),
            line,
            message,
        };
        if !family.valid_id(&r.id) {
            return Err(parse_err(format!(
                "rule id {:?} must be dotted lowercase words beginning {}",
                r.id,
                family.prefixes.join(" or ")
            )));
        }
        let Some((_, spec)) = family.detectors.iter().find(|(d, _)| *d == r.detector) else {
            let names: Vec<&str> = family.detectors.iter().map(|(d, _)| *d).collect();
            return Err(parse_err(format!(
                "rule {}: detector {:?} is not a built-in {} detector (known: {})",
                r.id,
                r.detector,
                family.kind,
                names.join(", ")
            )));
        };
        for (name, ty) in *spec {
            match r.params.get(*name) {
                None => {
                    return Err(parse_err(format!(
                        "rule {}: detector {} needs parameter {name} ({})",
                        r.id,
                        r.detector,
                        ty.toml_name()
                    )))
                }
                Some(v) => check_param(name, *ty, v)
                    .map_err(|m| parse_err(format!("rule {}: {m}", r.id)))?,
            }
        }
        if let Some(k) = r.params.keys().find(|k| !spec.iter().any(|(n, _)| n == k)) {
            return Err(parse_err(format!(
                "rule {}: detector {} has no parameter {k:?}",
                r.id, r.detector
            )));
        }
        for t in std::iter::once(&r.message).chain(&r.steps) {
            if let Some(p) = super::placeholders(t)
                .into_iter()
                .find(|p| !family.placeholders.contains(p))
            {
                return Err(parse_err(format!(
                    "rule {}: unknown placeholder {{{p}}} (known: {})",
                    r.id,
                    family.placeholders.join(", ")
                )));
            }
        }
        if r.examples.is_empty() || r.negative_examples.is_empty() {
            return Err(parse_err(format!(
                "rule {}: give at least one example and one negative example",
                r.id
            )));
        }
        out.push(DetectorRule {
            id: r.id,
            name: r.name,
            detector: r.detector,
            severity: r.severity,
            action: r.action,
            params: r.params,
            description: r.description,
            message: r.message,
            steps: r.steps,
            examples: r.examples,
            negative_examples: r.negative_examples,
            source: path.to_path_buf(),
        });
    }
    Ok(out)
}

/// Checks one parameter's value against its type: positive numbers, a severity name, at most
/// 1.0 for a `*_share`, well below 0.5 for a tail probability `alpha*`.
pub fn check_param(name: &str, ty: ParamType, v: &toml::Value) -> Result<(), String> {
    let number = v.as_float().or_else(|| v.as_integer().map(|i| i as f64));
    let ok = match ty {
        ParamType::Integer => v.as_integer().is_some(),
        ParamType::Float => number.is_some(),
        ParamType::Bool => v.as_bool().is_some(),
        ParamType::Severity => v.as_str().is_some_and(|s| s.parse::<Severity>().is_ok()),
        ParamType::Strings => v
            .as_array()
            .is_some_and(|a| a.iter().all(|s| s.as_str().is_some())),
    };
    if !ok {
        return Err(format!(
            "parameter {name}: expected {}, got {}",
            if ty == ParamType::Severity {
                "a severity (info, low, medium, high, critical)"
            } else {
                ty.toml_name()
            },
            v.type_str()
        ));
    }
    let positive = match ty {
        ParamType::Integer | ParamType::Float => number.is_some_and(|f| f > 0.0 && f.is_finite()),
        _ => true,
    };
    if !positive {
        return Err(format!("parameter {name}: must be a positive number"));
    }
    if name.starts_with("alpha") && number.is_some_and(|f| f >= 0.5) {
        return Err(format!(
            "parameter {name}: a tail probability, expected well below 0.5 (e.g. 1e-6)"
        ));
    }
    if name.ends_with("_share") && number.is_some_and(|f| f > 1.0) {
        return Err(format!("parameter {name}: a share, expected at most 1.0"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_are_checked_by_type_and_meaning() {
        let v = |s: &str| s.parse::<toml::Table>().unwrap()["v"].clone();
        assert!(check_param("z", ParamType::Float, &v("v = 3")).is_ok());
        assert!(check_param("n", ParamType::Integer, &v("v = 3.5")).is_err());
        assert!(check_param("n", ParamType::Integer, &v("v = 0"))
            .unwrap_err()
            .contains("positive"));
        assert!(check_param("alpha", ParamType::Float, &v("v = 0.9"))
            .unwrap_err()
            .contains("tail probability"));
        assert!(check_param("min_share", ParamType::Float, &v("v = 1.5"))
            .unwrap_err()
            .contains("at most 1.0"));
        assert!(check_param("s", ParamType::Severity, &v("v = \"urgent\""))
            .unwrap_err()
            .contains("a severity"));
        assert!(check_param("hosts", ParamType::Strings, &v("v = [\"a\", 1]")).is_err());
        assert!(check_param("hosts", ParamType::Strings, &v("v = [\"a\"]")).is_ok());
    }
}
