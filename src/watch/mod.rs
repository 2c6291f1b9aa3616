//! The money-movement watch: with a read-only key, poll the account's transfers, beneficiaries,
//! webhooks, financial transactions and balance history (`poll`), remember what was seen in the
//! store, and judge what is new (`detect`, rules as data in `rules/anomaly/watch.toml`): a payee
//! paid at once, a transfer far above its norm, a first payout to a new country or currency, a
//! burst of payouts, a new or changed webhook URL, a balance falling faster than its norm. Every
//! finding says who made the change (`attribution`): the key whose proxied call recorded the
//! object's id, or "no proxied key" (a leaked key elsewhere, or the web app).

pub mod attribution;
pub mod detect;
pub mod examples;
pub mod job;
pub mod model;
pub mod poll;
pub mod rules;

pub use attribution::{CallIndex, Concerns, NoProxy, ProxiedCall, ProxiedCalls};
pub use job::{run, WatchOutcome, WatchRequest};
pub use rules::{WatchRule, WatchRules};

/// Why a poll could not run at all (a list Airwallex refused, or a poll stopped by a 429, is not
/// this: the outcome reports it and the next poll resumes).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error(
        "no key to watch with: set `key` in [watch] (a declared [[key]] that can only read) or \
         give --key NAME"
    )]
    NoKey,
    #[error("{name:?} is not a declared key (declared: {declared}); add a [[key]] table for it")]
    UnknownKey { name: String, declared: String },
    #[error(
        "refusing to watch with {name}: {why}. The watch polls around the clock from wherever it \
         runs and needs only reads, so a key that can move money there widens what a leak of it \
         could do. Create a read-only key (Settings > Developer > API keys: Read Only, or Custom \
         with transfer:read, beneficiary:read, webhook:read, balance:read, \
         financial_transaction:read), declare it with kind = \"read_only\" and point [watch] key \
         at it; or set [watch] allow_write_key = true to accept this key with a warning"
    )]
    WriteKey { name: String, why: String },
    #[error("cannot read the secret of {name}: {reason}")]
    Secret { name: String, reason: String },
    #[error("{name} cannot log in at {url}: {detail}")]
    Login {
        name: String,
        url: String,
        detail: String,
    },
    #[error(transparent)]
    Client(#[from] crate::airwallex::Error),
    #[error("cannot load the watch rules: {0}")]
    Rules(#[from] crate::rules::RuleError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("{0}")]
    Internal(String),
}

impl From<poll::ReadError> for WatchError {
    fn from(e: poll::ReadError) -> Self {
        match e {
            poll::ReadError::Store(s) => WatchError::Store(s),
            other => WatchError::Internal(other.to_string()),
        }
    }
}
