//! The built-in checks a privilege rule can name (`check = "admin-key"`): the one list of them,
//! with what each needs. The rule files supply ids, severities, parameters and text; a check is
//! the logic (in `evaluate/`, by theme). Anomaly detectors can take the same shape: an enum of
//! what exists, each saying what it needs, one match that runs it.

use std::fmt;

/// What a check needs to be judged, and whom it applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Judged from usage evidence: without evidence covering its window, the key is reported
    /// "not judged" for this check (`privilege.not-judged`) instead of a guess.
    pub evidence: bool,
    /// Applies to shadow keys (found by discovery, declared by nobody), which have observed
    /// facts only (where found, leaks, login, file): checks of declared facts skip them.
    pub shadow_keys: bool,
    /// Its findings carry the usage evidence's window (`start`, `end`).
    pub window: bool,
}

/// What a check is run over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// Each key of the inventory.
    Key,
    /// Each key the usage evidence names and no inventory entry knows.
    UnknownKey,
    /// Each key some evidence check could not judge (the reasons of the other checks).
    NotJudged,
}

macro_rules! checks {
    ($($variant:ident = $id:literal { $($need:ident)* },)*) => {
        /// A built-in check.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Check {
            $($variant,)*
        }

        impl Check {
            /// Every check, in the order rules files list them.
            pub const ALL: &'static [Check] = &[$(Check::$variant,)*];

            /// The id rule files use (`admin-key`).
            pub fn id(self) -> &'static str {
                match self {
                    $(Check::$variant => $id,)*
                }
            }

            /// What the check needs.
            pub fn needs(self) -> Needs {
                match self {
                    $(Check::$variant => {
                        #[allow(unused_mut)]
                        let mut n = Needs::default();
                        $(n.$need = true;)*
                        n
                    })*
                }
            }
        }
    };
}

checks! {
    AdminKey = "admin-key" { shadow_keys window },
    DisguisedAdmin = "disguised-admin" {},
    DeclaredMismatch = "declared-mismatch" {},
    PermissionsUnknown = "permissions-unknown" {},
    WriteNeverUsed = "write-never-used" { evidence window },
    UnusedScope = "unused-scope" { evidence window },
    UnusedKey = "unused-key" { evidence window },
    RotationOverdue = "rotation-overdue" {},
    NoIpWhitelist = "no-ip-whitelist" {},
    SharedKey = "shared-key" {},
    PayeeAndPay = "payee-and-pay" {},
    WebhookWriteUnneeded = "webhook-write-unneeded" { evidence window },
    SecretLiteral = "secret-literal" {},
    SecretFileReadable = "secret-file-readable" { shadow_keys },
    SecretInGitWorkTree = "secret-in-git-work-tree" { shadow_keys },
    SecretInPlaintextFile = "secret-in-plaintext-file" {},
    MissingOwner = "missing-owner" {},
    WrongEnvironment = "wrong-environment" { evidence window },
    KeyRevoked = "key-revoked" {},
    KeyRefused = "key-refused" {},
    KeyLeaked = "key-leaked" { shadow_keys },
    ShadowKey = "shadow-key" { shadow_keys },
    SecretUnresolved = "secret-unresolved" {},
    KeyMisconfigured = "key-misconfigured" {},
    UnknownKey = "unknown-key" { window },
    UnknownRoute = "unknown-route" { window },
    OutsideWhitelist = "outside-whitelist" {},
    UndeclaredScope = "undeclared-scope" {},
    NotJudged = "not-judged" { window },
}

impl Check {
    /// What the check runs over.
    pub fn subject(self) -> Subject {
        match self {
            Check::UnknownKey => Subject::UnknownKey,
            Check::NotJudged => Subject::NotJudged,
            _ => Subject::Key,
        }
    }

    /// The check a rule file names.
    pub fn from_id(id: &str) -> Option<Check> {
        Check::ALL.iter().copied().find(|c| c.id() == id)
    }

    /// Every id, for messages.
    pub fn ids() -> String {
        Check::ALL
            .iter()
            .map(|c| c.id())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_parse_back() {
        let mut ids: Vec<&str> = Check::ALL.iter().map(|c| c.id()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), Check::ALL.len());
        for c in Check::ALL {
            assert_eq!(Check::from_id(c.id()), Some(*c));
        }
        assert_eq!(Check::from_id("magic"), None);
    }

    #[test]
    fn evidence_checks_carry_the_window() {
        for c in Check::ALL {
            if c.needs().evidence {
                assert!(c.needs().window, "{c}");
            }
        }
    }
}
