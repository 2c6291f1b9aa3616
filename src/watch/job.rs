//! `watch::job::run`: one poll. Log in with the watch key through the one client, read every
//! list from where the last poll stopped, refresh the payees of new transfers, judge what is new
//! (in the objects' own time, against what the store remembers), record the findings under
//! `watch:<key>`, and only then mark the objects judged: a poll that dies before recording is
//! judged again by the next one, and the findings' stable ids keep that from reporting anything
//! twice.

use super::attribution::{Concerns, ProxiedCalls};
use super::detect::{detect, fmt_time, Context, Detection, Obs, WatchData};
use super::model::{BalancePoint, Beneficiary, Transfer, Webhook};
use super::poll::{
    on_store, read_directory, read_stream, refresh_beneficiary, spec, Api, ListSummary, ReadError,
    ReadSettings,
};
use super::rules::WatchRules;
use super::WatchError;
use crate::airwallex::{Catalog, Client, ClientSettings, KeyKind, LoginOutcome};
use crate::clock::Clock;
use crate::config::{Config, KeyDecl};
use crate::finding::{Finding, Status};
use crate::store::{RecordSummary, Store, StoredObject};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use std::collections::{BTreeSet, HashSet};

use std::sync::Arc;

/// What to watch.
#[derive(Clone, Default)]
pub struct WatchRequest {
    /// The declared key to read with (default: `[watch] key`).
    pub key: Option<String>,
    /// Who made changes: the proxy's record. Default: the store's usage evidence.
    pub calls: Option<Arc<dyn ProxiedCalls>>,
}

impl std::fmt::Debug for WatchRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatchRequest")
            .field("key", &self.key)
            .finish()
    }
}

/// What one poll did.
#[derive(Debug, Clone, Serialize)]
pub struct WatchOutcome {
    /// The declared key the watch read with.
    pub watcher: String,
    pub scope: String,
    pub base_url: String,
    pub at: String,
    /// Findings of this poll (status from the store: `new`, or `open` when judged again).
    #[serde(skip)]
    pub findings: Vec<Finding>,
    /// Findings of earlier polls still open (kept open for `keep_open`).
    pub still_open: usize,
    /// Findings this poll resolved (their evidence older than `keep_open`).
    #[serde(skip)]
    pub resolved: Vec<Finding>,
    pub lists: Vec<ListSummary>,
    /// Payees of new transfers read one by one.
    pub refreshed_beneficiaries: usize,
    /// Objects judged by this poll.
    pub judged: usize,
    pub api_calls: usize,
    /// Every list was read up to now.
    pub complete: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<RecordSummary>,
    pub notes: Vec<String>,
    pub problems: Vec<String>,
}

/// What a declared key may do, as far as its declaration says.
fn declared_writes(decl: &KeyDecl, catalog: &Catalog) -> Option<String> {
    match decl.kind {
        KeyKind::Admin => Some("it is declared an admin key (full access)".into()),
        KeyKind::ReadWrite => Some("it is declared read_write".into()),
        KeyKind::ReadOnly => None,
        KeyKind::Custom => {
            let writes: Vec<&str> = decl
                .scopes
                .iter()
                .filter(|s| {
                    catalog
                        .scope(s)
                        .is_some_and(|x| x.access == crate::airwallex::Access::Write)
                        || s.ends_with(":write")
                })
                .map(String::as_str)
                .collect();
            (!writes.is_empty())
                .then(|| format!("it declares write scopes ({})", writes.join(", ")))
        }
    }
}

/// What a token's `permissions` claim says it may write.
fn token_writes(permissions: &[String]) -> Option<String> {
    let w: Vec<&str> = permissions
        .iter()
        .filter(|p| p.as_str() == "w:awx:*:*" || p.starts_with("w:") || p.ends_with(":write"))
        .map(String::as_str)
        .collect();
    (!w.is_empty()).then(|| format!("its token carries write permissions ({})", w.join(", ")))
}

/// Whether the key may read a list's scope (a custom key lists its scopes; a write scope covers
/// its reads).
fn may_read(decl: &KeyDecl, scope: &str) -> bool {
    match decl.kind {
        KeyKind::Custom => {
            let resource = scope.trim_end_matches(":read");
            decl.scopes
                .iter()
                .any(|s| s == scope || s.as_str() == format!("{resource}:write"))
        }
        _ => true,
    }
}

fn parse_data<T: serde::de::DeserializeOwned>(o: &StoredObject) -> Option<T> {
    serde_json::from_value(o.object.data.clone()).ok()
}

fn beneficiary(o: &StoredObject) -> Option<Beneficiary> {
    let mut b: Beneficiary = parse_data(o)?;
    if o.previous.is_some() {
        b.bank_changed_at = o.object.changed_at;
    }
    Some(b)
}

/// One poll.
pub async fn run(
    req: &WatchRequest,
    config: &Config,
    clock: &dyn Clock,
    store: Arc<dyn Store>,
) -> Result<WatchOutcome, WatchError> {
    let now = clock.now();
    let wc = &config.watch;
    let rules = WatchRules::load(&wc.rule_dirs, &wc.disable, &wc.params)?;
    let name = req
        .key
        .clone()
        .or_else(|| wc.key.clone())
        .ok_or(WatchError::NoKey)?;
    let decl =
        config
            .keys
            .iter()
            .find(|k| k.name == name)
            .ok_or_else(|| WatchError::UnknownKey {
                name: name.clone(),
                declared: config
                    .keys
                    .iter()
                    .map(|k| k.name.clone())
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
    let mut notes = Vec::new();
    let catalog = Catalog::builtin_ref();
    if let Some(why) = declared_writes(decl, catalog) {
        if !wc.allow_write_key {
            return Err(WatchError::WriteKey { name, why });
        }
        notes.push(format!(
            "warning: {name} can write ({why}); the watch needs only reads: give it a read-only \
             key ([watch] allow_write_key = true accepts this one)"
        ));
    }
    let secret =
        crate::inventory::resolve_secret(&decl.secret).map_err(|reason| WatchError::Secret {
            name: name.clone(),
            reason,
        })?;
    // The configured base URL, else Airwallex's host for the key's environment (the host
    // rule); `Client::new` refuses a destination the transport rule forbids.
    let host = crate::airwallex::login::hosts(&config.airwallex, Some(decl.environment))
        .into_iter()
        .next()
        .ok_or_else(|| WatchError::Internal("no Airwallex host for the key".into()))?;
    let base_url = host.url;
    let client = Client::new(ClientSettings::from_config(&base_url, &config.airwallex))?;
    let token = match client.login(&decl.client_id, &secret).await {
        LoginOutcome::Live(t) => t,
        LoginOutcome::Revoked { code, message } => {
            return Err(WatchError::Login {
                name,
                url: base_url,
                detail: format!("401 {code}: {message} (revoked, expired or wrong credentials)"),
            })
        }
        LoginOutcome::Forbidden { code, message } => {
            return Err(WatchError::Login {
                name,
                url: base_url,
                detail: format!(
                    "403 {code}: {message} (this machine's IP is not in the key's whitelist, or \
                     a permission is missing)"
                ),
            })
        }
        LoginOutcome::Unknown { reason } | LoginOutcome::Unreachable { reason } => {
            return Err(WatchError::Login {
                name,
                url: base_url,
                detail: reason,
            })
        }
    };
    if let Some(why) = token
        .claims
        .as_ref()
        .and_then(|c| token_writes(&c.permissions))
    {
        if !wc.allow_write_key {
            return Err(WatchError::WriteKey { name, why });
        }
        notes.push(format!("warning: {name} can write ({why})"));
    }
    let mut api = Api {
        client,
        client_id: decl.client_id.clone(),
        key: secret,
        token: token.token,
        calls: 0,
    };
    let settings = ReadSettings {
        watcher: name.clone(),
        now,
        lookback: Duration::from_std(wc.lookback).unwrap_or(Duration::days(7)),
        lateness: Duration::from_std(wc.lateness).unwrap_or(Duration::minutes(10)),
        page_size: wc.page_size,
    };
    let history = Duration::from_std(wc.history).unwrap_or(Duration::days(180));

    // Read the lists.
    let mut lists = Vec::new();
    let mut problems = Vec::new();
    let mut stopped: Option<String> = None;
    for list in &wc.lists {
        let spec = spec(list).expect("config lists are known");
        let mut summary = ListSummary {
            list: list.clone(),
            ..ListSummary::default()
        };
        if let Some(why) = &stopped {
            summary.stopped = Some(format!("not read: {why}; the next poll reads it"));
            lists.push(summary);
            continue;
        }
        if !may_read(decl, spec.scope) {
            summary.stopped = Some(format!(
                "not read: {name} does not declare {} (add it to the key's scopes to watch {list})",
                spec.scope
            ));
            lists.push(summary);
            continue;
        }
        let result = if spec.filters.is_some() {
            read_stream(&mut api, &store, spec, &settings, &mut summary).await
        } else {
            read_directory(&mut api, &store, spec, &settings, &mut summary).await
        };
        match result {
            Ok(()) => {}
            Err(ReadError::Refused(e)) => {
                summary.stopped = Some(format!("refused: {e}"));
                problems.push(format!("{list}: {e}"));
            }
            Err(ReadError::Unavailable(e)) => {
                let why = format!("Airwallex did not answer ({e})");
                summary.stopped = Some(format!("{why}; the next poll resumes here"));
                stopped = Some(why);
            }
            Err(ReadError::Store(e)) => return Err(WatchError::Store(e)),
            Err(ReadError::Internal(m)) => {
                summary.stopped = Some(m.clone());
                problems.push(format!("{list}: {m}"));
            }
        }
        problems.extend(summary.problems.iter().cloned());
        lists.push(summary);
    }

    // What is not judged yet (this poll's, and any a dead poll left).
    let watcher = name.clone();
    let mut unjudged = {
        let w = watcher.clone();
        on_store(&store, move |s| s.watch_unjudged(&w)).await?
    };

    // Refresh the payees of new transfers that this poll has not just read.
    let mut refreshed = 0;
    let mut payees_read = true;
    let mut gone = HashSet::new();
    if stopped.is_none() && may_read(decl, "beneficiary:read") {
        // Each payee with the time of the latest new transfer to it: a payee read after that
        // already shows any change made before the payment.
        let mut payees: std::collections::BTreeMap<String, DateTime<Utc>> = Default::default();
        for t in unjudged
            .iter()
            .filter(|o| o.object.kind == "transfer")
            .filter_map(parse_data::<Transfer>)
        {
            if let Some(b) = t.beneficiary_id {
                let e = payees.entry(b).or_insert(t.created_at);
                *e = (*e).max(t.created_at);
            }
        }
        for (id, paid_at) in payees {
            let (w, i) = (watcher.clone(), id.clone());
            let known = on_store(&store, move |s| s.watch_object(&w, "beneficiary", &i)).await?;
            if known.as_ref().is_some_and(|k| k.last_seen >= paid_at) {
                continue;
            }
            match refresh_beneficiary(&mut api, &store, &settings, &id).await {
                Ok(Some(_)) => refreshed += 1,
                Ok(None) => {
                    refreshed += 1;
                    gone.insert(id);
                }
                Err(ReadError::Store(e)) => return Err(WatchError::Store(e)),
                Err(e) => {
                    problems.push(format!("beneficiary {id}: {e}"));
                    if matches!(e, ReadError::Unavailable(_)) {
                        payees_read = false;
                        break;
                    }
                }
            }
        }
        if refreshed > 0 {
            let w = watcher.clone();
            unjudged = on_store(&store, move |s| s.watch_unjudged(&w)).await?;
        }
    }

    // Judge only kinds whose lists were read to the end (and new transfers only with their
    // payees read): the rest stays unjudged until the poll that completes them.
    let done = |list: &str| {
        lists
            .iter()
            .find(|l| l.list == list)
            .is_none_or(|l| l.stopped.is_none())
    };
    let mut judge: HashSet<&str> = HashSet::from(["beneficiary", "financial_transaction"]);
    if done("transfers") && stopped.is_none() && payees_read {
        judge.insert("transfer");
    }
    if done("webhooks") {
        judge.insert("webhook");
    }
    if done("balance_history") {
        judge.insert("balance");
    }
    let fresh: HashSet<(String, String)> = unjudged
        .iter()
        .filter(|o| judge.contains(o.object.kind.as_str()))
        .map(|o| (o.object.kind.clone(), o.object.id.clone()))
        .collect();
    let any = |kind: &str| fresh.iter().any(|(k, _)| k == kind);
    let since = now - history;
    let epoch = DateTime::<Utc>::UNIX_EPOCH;
    let load = |kind: &'static str, from: DateTime<Utc>| {
        let w = watcher.clone();
        let st = store.clone();
        async move { on_store(&st, move |s| s.watch_objects(&w, kind, from)).await }
    };
    let is_fresh = |o: &StoredObject| fresh.contains(&(o.object.kind.clone(), o.object.id.clone()));
    let mut data = WatchData {
        watcher: watcher.clone(),
        now,
        gone_beneficiaries: gone,
        ..WatchData::default()
    };
    if any("transfer") {
        let earliest = unjudged
            .iter()
            .filter(|o| o.object.kind == "transfer")
            .map(|o| o.object.at)
            .min()
            .unwrap_or(now);
        for o in load("transfer", since.min(earliest)).await? {
            if let Some(t) = parse_data::<Transfer>(&o) {
                data.transfers.push(Obs {
                    item: t,
                    fresh: is_fresh(&o),
                    previous: None,
                });
            }
        }
        data.transfers
            .sort_by(|a, b| (a.item.created_at, &a.item.id).cmp(&(b.item.created_at, &b.item.id)));
        for o in load("beneficiary", epoch).await? {
            if let Some(b) = beneficiary(&o) {
                data.beneficiaries.insert(
                    b.id.clone(),
                    Obs {
                        item: b,
                        fresh: is_fresh(&o),
                        previous: None,
                    },
                );
            }
        }
    }
    if any("webhook") {
        let all = load("webhook", epoch).await?;
        let first = all.iter().map(|o| o.first_seen).min().unwrap_or(now);
        data.webhook_baseline = Some(first - settings.lookback);
        for o in all.iter().filter(|o| is_fresh(o)) {
            if let Some(w) = parse_data::<Webhook>(o) {
                data.webhooks.push(Obs {
                    item: w,
                    fresh: true,
                    previous: o
                        .previous
                        .as_ref()
                        .and_then(|p| serde_json::from_value(p.clone()).ok()),
                });
            }
        }
    }
    if any("balance") {
        let earliest = unjudged
            .iter()
            .filter(|o| o.object.kind == "balance")
            .map(|o| o.object.at)
            .min()
            .unwrap_or(now);
        for o in load("balance", since.min(earliest)).await? {
            if let Some(p) = parse_data::<BalancePoint>(&o) {
                data.balances.push(Obs {
                    item: p,
                    fresh: is_fresh(&o),
                    previous: None,
                });
            }
        }
        data.balances
            .sort_by(|a, b| (a.item.posted_at, &a.item.id).cmp(&(b.item.posted_at, &b.item.id)));
    }

    // Who made what, and what is open on the keys.
    let calls: Arc<dyn ProxiedCalls> = match &req.calls {
        Some(c) => c.clone(),
        None => super::attribution::from_store(&store),
    };
    let stored = on_store(&store, move |s| s.list(None, now)).await?;
    let concerns = Concerns::from_findings(&stored);
    let scope = format!("watch:{watcher}");
    let keep_open = Duration::from_std(wc.keep_open).unwrap_or(Duration::days(7));
    let (
        Detection {
            findings: mut found,
            problems: lookups,
        },
        no_proxy,
    ) = tokio::task::spawn_blocking(move || {
        let found = detect(
            &rules,
            &data,
            &Context {
                calls: calls.as_ref(),
                concerns: &concerns,
            },
        );
        (found, calls.is_empty())
    })
    .await
    .map_err(|e| WatchError::Internal(format!("detection failed: {e}")))?;
    if no_proxy {
        notes.push(
            "no proxy record in the store: every change reads \"no proxied key\"; run the \
             integration through `awxguard proxy` on this database to tell its calls from \
             outside ones"
                .into(),
        );
    }
    problems.extend(lookups);

    // Findings of earlier polls stay open until `keep_open` after their evidence.
    let ids: BTreeSet<String> = found.iter().map(|f| f.id.clone()).collect();
    let mut carried: Vec<Finding> = stored
        .into_iter()
        .filter(|s| s.scope == scope && !ids.contains(&s.finding.id))
        .filter(|s| s.finding.status != Some(Status::Resolved))
        .filter(|s| {
            s.finding
                .end
                .as_deref()
                .and_then(|e| DateTime::parse_from_rfc3339(e).ok())
                .is_some_and(|e| e.to_utc() + keep_open > now)
        })
        .map(|s| s.finding)
        .collect();
    let n_found = found.len();
    found.append(&mut carried);
    let recorded = {
        let scope = scope.clone();
        on_store(&store, move |s| {
            let r = s.record(&scope, &mut found, now)?;
            Ok((found, r))
        })
        .await?
    };
    let (mut all, recorded) = recorded;
    let still_open = all.len() - n_found;
    all.truncate(n_found);

    // Judged: only now, after the findings are recorded.
    let judged: Vec<(String, String)> = fresh.into_iter().collect();
    let n_judged = judged.len();
    {
        let w = watcher.clone();
        on_store(&store, move |s| s.watch_mark_judged(&w, &judged)).await?;
    }
    {
        let w = watcher.clone();
        let before = now - history;
        on_store(&store, move |s| {
            s.watch_prune(
                &w,
                &["transfer", "financial_transaction", "balance"],
                before,
            )
        })
        .await?;
    }
    let complete = lists.iter().all(|l| l.stopped.is_none());
    if !complete {
        notes.push(
            "some lists were not read to the end (see lists); the next poll resumes where this \
             one stopped"
                .into(),
        );
    }
    if decl.environment == crate::airwallex::Environment::Sandbox {
        notes.push(format!(
            "{name} is a sandbox key: this watched the sandbox account"
        ));
    }
    Ok(WatchOutcome {
        watcher,
        scope,
        base_url: api.client.base_url().to_string(),
        at: fmt_time(now),
        findings: all,
        still_open,
        resolved: recorded.resolved,
        lists,
        refreshed_beneficiaries: refreshed,
        judged: n_judged,
        api_calls: api.calls,
        complete,
        store: Some(recorded.summary),
        notes,
        problems,
    })
}
