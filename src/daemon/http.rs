//! The loopback HTTP endpoint (axum): `/healthz` (the scheduler's loop is turning), `/readyz`
//! (the store takes a write, every job succeeded recently enough, the in-process proxy listens)
//! and `/metrics` (Prometheus text, or OpenMetrics on request).

use super::state::{Board, Shared};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// `/healthz` fails when the loop has not turned for this long.
pub const LOOP_STALL: Duration = Duration::from_secs(60);

pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    let stalled = s.board().tick.elapsed();
    if stalled > LOOP_STALL {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: the scheduler loop has not run for {} s\n",
                stalled.as_secs()
            ),
        )
            .into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

/// One readiness check.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub check: String,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// A job is late when two of its scheduled times have passed since it last succeeded (or since
/// the daemon took it on): its last success is older than twice its interval.
pub fn job_checks(board: &Board, now: DateTime<Utc>) -> Vec<Check> {
    board
        .jobs
        .iter()
        .map(|(name, j)| {
            let reference = j.last_success.map_or(j.since, |s| s.max(j.since));
            let first = j.spec.schedule.next_after(reference, board.tz);
            let deadline = first.and_then(|f| j.spec.schedule.next_after(f, board.tz));
            let what = match j.last_success {
                Some(t) => format!("last success {}", ts(t)),
                None => format!("no success yet (taken on {})", ts(j.since)),
            };
            let (ok, detail) = match deadline {
                None => (true, format!("{what}; the schedule fires no more")),
                Some(d) if now <= d => (true, format!("{what}; late after {}", ts(d))),
                Some(d) => (
                    false,
                    format!(
                        "{what}; late since {} (two scheduled runs without success){}",
                        ts(d),
                        j.last_error
                            .as_ref()
                            .map_or(String::new(), |e| format!("; last error: {e}"))
                    ),
                ),
            };
            Check {
                check: format!("job:{name}"),
                ok,
                detail,
            }
        })
        .collect()
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let now = s.clock.now();
    let mut checks = Vec::new();
    let (store, me) = (s.store.clone(), s.me.clone());
    let store_check =
        match tokio::task::spawn_blocking(move || store.renew_daemon_lock(&me, now)).await {
            Ok(Ok(true)) => Check {
                check: "store".into(),
                ok: true,
                detail: "writable; this daemon holds the lock".into(),
            },
            Ok(Ok(false)) => Check {
                check: "store".into(),
                ok: false,
                detail: "writable, but another daemon holds the lock".into(),
            },
            Ok(Err(e)) => Check {
                check: "store".into(),
                ok: false,
                detail: super::jobs::chain(&e),
            },
            Err(e) => Check {
                check: "store".into(),
                ok: false,
                detail: e.to_string(),
            },
        };
    checks.push(store_check);
    {
        let board = s.board();
        if board.stopping {
            checks.push(Check {
                check: "daemon".into(),
                ok: false,
                detail: "stopping".into(),
            });
        }
        checks.extend(job_checks(&board, now));
        if let Some(p) = &board.proxy {
            checks.push(Check {
                check: "proxy".into(),
                ok: p.listening.is_some(),
                detail: match (&p.listening, &p.last_error) {
                    (Some(a), _) => format!("listening on http://{a}"),
                    (None, Some(e)) => format!("not listening: {e}"),
                    (None, None) => "starting".into(),
                },
            });
        }
    }
    let ready = checks.iter().all(|c| c.ok);
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&Readiness { ready, checks }).expect("readiness serializes");
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        crate::redact::scrub_string(body),
    )
        .into_response()
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    // One scrape at a time: the store-derived gauges are cleared and set per scrape.
    let _one = s.scrape.lock().await;
    let (store, now) = (s.store.clone(), s.clock.now());
    let stats = tokio::task::spawn_blocking(move || store.store_stats(now))
        .await
        .ok()
        .and_then(|r| {
            r.map_err(|e| tracing::warn!("metrics: cannot read the store: {e}"))
                .ok()
        });
    s.metrics.set_store(stats.as_ref());
    if let Some(c) = s.proxy_counters() {
        s.metrics.mirror_proxy(&c);
    }
    let openmetrics = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("application/openmetrics-text"));
    let (ct, body) = s.metrics.encode(openmetrics);
    (
        [(header::CONTENT_TYPE, ct)],
        crate::redact::scrub_string(body),
    )
        .into_response()
}
