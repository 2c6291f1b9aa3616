//! Reading Airwallex's lists, paging exactly as FACTS.md says, so that each poll reads only what
//! is new, a stopped poll resumes where it stopped, and nothing is missed or read as new twice.
//!
//! Stream lists (transfers, beneficiaries, financial transactions, balance history) are read by
//! time window: a poll reads `[from, to]` with `to` = the poll's start and `from` = the last
//! complete window's end minus `lateness` (the look-back on a first run), page by page. Each page
//! is stored together with the cursor that follows it (the next `page_after`, or page number),
//! in one transaction; after the last page the window's end becomes the list's high-water mark.
//! So:
//! - a poll stopped by a 429, a 5xx or a crash resumes at the page after the last one stored;
//! - the window is fixed while it is read, so items created meanwhile (after `to`) cannot shift
//!   its pages; they belong to the next window;
//! - windows overlap by `lateness`, with both bounds inclusive: items with the boundary's exact
//!   timestamp, and items that show up in a list up to `lateness` after their own time, are read
//!   again; the store knows every object by id (and a version of the fields that matter), so a
//!   re-read object is not new, and nothing is reported twice;
//! - balance history is read at most 7 days a query (FACTS.md): a long window is read in 7-day
//!   steps, each step a window of its own.
//!
//! Webhooks are a small directory whose entries change in place (a new URL): read whole every
//! poll, compared by version. Beneficiaries are also refreshed one by one
//! (`GET /api/v1/beneficiaries/{id}`) when a new transfer pays them, so a payee's new bank
//! details are seen when it matters.

use super::model::parse_item;
use crate::airwallex::{format_timestamp, Client, Error, LoginOutcome};
use crate::secret::Secret;
use crate::store::{PendingRead, Seen, Store, StoreError, WatchCursor, WatchObject};
use chrono::{DateTime, Duration, Utc};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;

/// How a list pages and filters.
#[derive(Debug, Clone, Copy)]
pub struct ListSpec {
    pub name: &'static str,
    pub path: &'static str,
    /// Cursor paging (`page` = the last `page_after`) or page numbers from 0 (`page_num`).
    pub cursor: bool,
    /// The time filters, `None` for a directory read whole.
    pub filters: Option<(&'static str, &'static str)>,
    /// The longest window one query may cover.
    pub max_span: Option<Duration>,
    /// The read scope the list needs.
    pub scope: &'static str,
}

/// Every list, as FACTS.md describes them.
pub const LISTS: &[ListSpec] = &[
    ListSpec {
        name: "beneficiaries",
        path: "/api/v1/beneficiaries",
        cursor: false,
        filters: Some(("from_date", "to_date")),
        max_span: None,
        scope: "beneficiary:read",
    },
    ListSpec {
        name: "transfers",
        path: "/api/v1/transfers",
        cursor: true,
        filters: Some(("from_created_at", "to_created_at")),
        max_span: None,
        scope: "transfer:read",
    },
    ListSpec {
        name: "financial_transactions",
        path: "/api/v1/financial_transactions",
        cursor: false,
        filters: Some(("from_created_at", "to_created_at")),
        max_span: None,
        scope: "financial_transaction:read",
    },
    ListSpec {
        name: "balance_history",
        path: "/api/v1/balances/history",
        cursor: false,
        filters: Some(("from_post_at", "to_post_at")),
        max_span: Some(Duration::days(7)),
        scope: "balance:read",
    },
    ListSpec {
        name: "webhooks",
        path: "/api/v1/webhooks",
        cursor: false,
        filters: None,
        max_span: None,
        scope: "webhook:read",
    },
];

pub fn spec(name: &str) -> Option<&'static ListSpec> {
    LISTS.iter().find(|l| l.name == name)
}

/// A guard against a server that never stops saying `has_more`.
const MAX_PAGES: usize = 100_000;

/// What reading one list did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ListSummary {
    pub list: String,
    /// Nothing read before: the window started at the look-back.
    pub first_run: bool,
    /// The poll continued a window a stopped poll left.
    pub resumed: bool,
    pub pages: usize,
    pub items: usize,
    pub new: usize,
    pub changed: usize,
    /// Windows read (`from`..`to`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<String>,
    /// Everything up to here has been read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub high_water: Option<String>,
    /// Why the list was not read to the end; the next poll resumes there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Items that could not be read (skipped).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

/// Why a read stopped.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The API answered with a final error (400, 403, 404...): this list cannot be read.
    #[error("{0}")]
    Refused(Error),
    /// Retries ran out (429, 5xx, network): the poll stops; the next one resumes.
    #[error("{0}")]
    Unavailable(Error),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Internal(String),
}

/// A logged-in session: the client, the token, and what it takes to log in again when the token
/// expires mid-poll.
pub struct Api {
    pub client: Client,
    pub client_id: String,
    pub key: Secret<String>,
    pub token: Secret<String>,
    /// API calls made (logins excluded).
    pub calls: usize,
}

impl Api {
    /// `GET path?query`; a 401 (the token expired) logs in again once.
    pub async fn get(&mut self, path: &str, query: &[(&str, String)]) -> Result<Value, ReadError> {
        let mut relogged = false;
        loop {
            self.calls += 1;
            match self.client.get_json(&self.token, path, query).await {
                Ok(v) => return Ok(v),
                Err(e) if e.status() == Some(401) && !relogged => {
                    relogged = true;
                    match self.client.login(&self.client_id, &self.key).await {
                        LoginOutcome::Live(t) => self.token = t.token,
                        _ => return Err(ReadError::Refused(e)),
                    }
                }
                Err(e @ Error::Api { .. }) => return Err(ReadError::Refused(e)),
                Err(e) => return Err(ReadError::Unavailable(e)),
            }
        }
    }
}

/// What a list read needs besides the session.
pub struct ReadSettings {
    pub watcher: String,
    pub now: DateTime<Utc>,
    pub lookback: Duration,
    pub lateness: Duration,
    pub page_size: u32,
}

/// Runs a store call on a blocking thread.
pub async fn on_store<T: Send + 'static>(
    store: &Arc<dyn Store>,
    f: impl FnOnce(&dyn Store) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ReadError> {
    let s = store.clone();
    tokio::task::spawn_blocking(move || f(s.as_ref()))
        .await
        .map_err(|e| ReadError::Internal(format!("store task failed: {e}")))?
        .map_err(ReadError::Store)
}

fn stamp(t: DateTime<Utc>) -> String {
    format_timestamp(&t)
}

/// The items of a page and whether more follow (and the cursor for them).
fn page_of(body: &Value) -> (Vec<Value>, bool, Option<String>) {
    let items = body
        .get("items")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let has_more = body
        .get("has_more")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let after = body
        .get("page_after")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string);
    (items, has_more, after)
}

fn parse_page(list: &str, items: &[Value], summary: &mut ListSummary) -> Vec<WatchObject> {
    let mut out = Vec::with_capacity(items.len());
    for v in items {
        match parse_item(list, v) {
            Ok(o) => out.push(o),
            Err(e) => {
                if summary.problems.len() < 20 {
                    summary.problems.push(format!("{list}: item skipped: {e}"));
                }
            }
        }
    }
    out
}

fn count(summary: &mut ListSummary, seen: &[Seen]) {
    for s in seen {
        match s {
            Seen::New => summary.new += 1,
            Seen::Changed => summary.changed += 1,
            Seen::Unchanged => {}
        }
    }
}

/// Reads one stream list from where it stopped up to `settings.now`.
pub async fn read_stream(
    api: &mut Api,
    store: &Arc<dyn Store>,
    spec: &ListSpec,
    settings: &ReadSettings,
    summary: &mut ListSummary,
) -> Result<(), ReadError> {
    let (from_name, to_name) = spec.filters.expect("a stream list has time filters");
    let (watcher, list) = (settings.watcher.clone(), spec.name.to_string());
    let mut cursor = {
        let (w, l) = (watcher.clone(), list.clone());
        on_store(store, move |s| s.watch_cursor(&w, &l)).await?
    };
    summary.first_run = cursor.high_water.is_none() && cursor.pending.is_none();
    summary.resumed = cursor.pending.is_some();
    loop {
        let mut pending = match cursor.pending.clone() {
            Some(p) => p,
            None => {
                if cursor.high_water.is_some_and(|h| h >= settings.now) {
                    break;
                }
                let from = match cursor.high_water {
                    Some(h) => h - settings.lateness,
                    None => settings.now - settings.lookback,
                };
                let to = match spec.max_span {
                    Some(span) => settings.now.min(from + span),
                    None => settings.now,
                };
                PendingRead {
                    from,
                    to,
                    page: None,
                }
            }
        };
        summary.windows.push(format!(
            "{}..{}",
            super::detect::fmt_time(pending.from),
            super::detect::fmt_time(pending.to)
        ));
        let mut pages = 0;
        loop {
            let mut query: Vec<(&str, String)> = vec![
                (from_name, stamp(pending.from)),
                (to_name, stamp(pending.to)),
                ("page_size", settings.page_size.to_string()),
            ];
            let page_num: usize = if spec.cursor {
                if let Some(c) = &pending.page {
                    query.push(("page", c.clone()));
                }
                0
            } else {
                let n = pending
                    .page
                    .as_deref()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(0);
                query.push(("page_num", n.to_string()));
                n
            };
            let body = api.get(spec.path, &query).await?;
            let (items, has_more, after) = page_of(&body);
            let objects = parse_page(spec.name, &items, summary);
            summary.pages += 1;
            summary.items += items.len();
            pages += 1;
            let next = if !has_more {
                None
            } else if spec.cursor {
                match after {
                    Some(a) => Some(a),
                    None => {
                        return Err(ReadError::Internal(format!(
                            "{}: has_more without page_after",
                            spec.path
                        )))
                    }
                }
            } else {
                Some((page_num + 1).to_string())
            };
            cursor = match next {
                Some(n) if pages < MAX_PAGES => {
                    pending.page = Some(n);
                    WatchCursor {
                        high_water: cursor.high_water,
                        pending: Some(pending.clone()),
                    }
                }
                _ => WatchCursor {
                    high_water: Some(pending.to),
                    pending: None,
                },
            };
            let (w, l, c, now) = (watcher.clone(), list.clone(), cursor.clone(), settings.now);
            let seen = on_store(store, move |s| {
                s.watch_save_page(&w, &l, &objects, Some(&c), now)
            })
            .await?;
            count(summary, &seen);
            if cursor.pending.is_none() {
                break;
            }
        }
        summary.high_water = cursor.high_water.map(super::detect::fmt_time);
        if cursor.high_water.is_some_and(|h| h >= settings.now) {
            break;
        }
    }
    Ok(())
}

/// Reads a directory list whole (webhooks): page numbers from 0 until `has_more` is false.
pub async fn read_directory(
    api: &mut Api,
    store: &Arc<dyn Store>,
    spec: &ListSpec,
    settings: &ReadSettings,
    summary: &mut ListSummary,
) -> Result<(), ReadError> {
    let (watcher, list) = (settings.watcher.clone(), spec.name.to_string());
    let before = {
        let (w, l) = (watcher.clone(), list.clone());
        on_store(store, move |s| s.watch_cursor(&w, &l)).await?
    };
    summary.first_run = before.high_water.is_none();
    let mut page = 0usize;
    loop {
        let query = vec![
            ("page_num", page.to_string()),
            ("page_size", settings.page_size.to_string()),
        ];
        let body = api.get(spec.path, &query).await?;
        let (items, has_more, _) = page_of(&body);
        let objects = parse_page(spec.name, &items, summary);
        summary.pages += 1;
        summary.items += items.len();
        let done = !has_more || page + 1 >= MAX_PAGES;
        let cursor = done.then_some(WatchCursor {
            high_water: Some(settings.now),
            pending: None,
        });
        let (w, l, now) = (watcher.clone(), list.clone(), settings.now);
        let seen = on_store(store, move |s| {
            s.watch_save_page(&w, &l, &objects, cursor.as_ref(), now)
        })
        .await?;
        count(summary, &seen);
        if done {
            break;
        }
        page += 1;
    }
    summary.high_water = Some(super::detect::fmt_time(settings.now));
    Ok(())
}

/// Reads one beneficiary by id (`GET /api/v1/beneficiaries/{id}`) and stores it. `Ok(false)`
/// when it no longer exists.
pub async fn refresh_beneficiary(
    api: &mut Api,
    store: &Arc<dyn Store>,
    settings: &ReadSettings,
    id: &str,
) -> Result<Option<Seen>, ReadError> {
    let path = format!("/api/v1/beneficiaries/{id}");
    let body = match api.get(&path, &[]).await {
        Ok(b) => b,
        Err(ReadError::Refused(e)) if e.status() == Some(404) => return Ok(None),
        Err(e) => return Err(e),
    };
    let object = parse_item("beneficiaries", &body)
        .map_err(|e| ReadError::Internal(format!("{path}: {e}")))?;
    let (w, now) = (settings.watcher.clone(), settings.now);
    let seen = on_store(store, move |s| {
        s.watch_save_page(&w, "beneficiaries", &[object], None, now)
    })
    .await?;
    Ok(seen.first().copied())
}
