//! What `/metrics` exposes, with `prometheus-client` (the Prometheus project's Rust client):
//! job runs by outcome, failures, overlapping fires skipped, durations, last success times, new
//! findings; findings by severity and status and the outbox's depth (read from the store at
//! scrape time); alert deliveries; usage events ingested; the in-process proxy's counters;
//! config reloads. Served as the Prometheus text format 0.0.4, or OpenMetrics when the scraper
//! asks for it.

use crate::proxy::Counters;
use crate::store::StoreStats;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct JobLabels {
    pub job: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub job: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FindingLabels {
    pub severity: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub version: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

fn duration_histogram() -> Histogram {
    // 10 ms to about 11 minutes.
    Histogram::new(exponential_buckets(0.01, 4.0, 9))
}

/// Every metric of the daemon.
pub struct Metrics {
    registry: Registry,
    pub job_runs: Family<OutcomeLabels, Counter>,
    pub job_failures: Family<JobLabels, Counter>,
    pub job_skipped: Family<JobLabels, Counter>,
    pub job_running: Family<JobLabels, Gauge>,
    pub job_duration: Family<JobLabels, Histogram, fn() -> Histogram>,
    pub job_last_success: Family<JobLabels, FloatGauge>,
    pub job_new_findings: Family<JobLabels, Counter>,
    pub findings: Family<FindingLabels, Gauge>,
    pub alerts_waiting: Gauge,
    pub deliveries_pending: Gauge,
    pub deliveries_failing: Gauge,
    pub deliveries_dead: Gauge,
    pub deliveries: Family<ResultLabels, Counter>,
    pub delivery_round_errors: Counter,
    pub events_ingested: Family<SourceLabels, Counter>,
    pub proxy_requests: Counter,
    pub proxy_refused: Counter,
    pub proxy_upstream_errors: Counter,
    pub proxy_events_spilled: Counter,
    pub proxy_events_dropped: Counter,
    pub proxy_starts: Counter,
    pub reloads: Family<ResultLabels, Counter>,
    pub store_up: Gauge,
    /// The proxy counters as last mirrored (so counters only move forward).
    proxy_seen: Mutex<[u64; 6]>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub fn new(started: chrono::DateTime<chrono::Utc>) -> Metrics {
        let mut registry = Registry::with_prefix("awxguard");
        let m = Metrics {
            registry: Registry::default(),
            job_runs: Family::default(),
            job_failures: Family::default(),
            job_skipped: Family::default(),
            job_running: Family::default(),
            job_duration: Family::new_with_constructor(duration_histogram),
            job_last_success: Family::default(),
            job_new_findings: Family::default(),
            findings: Family::default(),
            alerts_waiting: Gauge::default(),
            deliveries_pending: Gauge::default(),
            deliveries_failing: Gauge::default(),
            deliveries_dead: Gauge::default(),
            deliveries: Family::default(),
            delivery_round_errors: Counter::default(),
            events_ingested: Family::default(),
            proxy_requests: Counter::default(),
            proxy_refused: Counter::default(),
            proxy_upstream_errors: Counter::default(),
            proxy_events_spilled: Counter::default(),
            proxy_events_dropped: Counter::default(),
            proxy_starts: Counter::default(),
            reloads: Family::default(),
            store_up: Gauge::default(),
            proxy_seen: Mutex::new([0; 6]),
        };
        // Series that exist from the start, at zero.
        for source in ["proxy", "file"] {
            let _ = m.events_ingested.get_or_create(&SourceLabels {
                source: source.into(),
            });
        }
        for result in ["sent", "failed"] {
            let _ = m.deliveries.get_or_create(&ResultLabels {
                result: result.into(),
            });
        }
        for result in ["applied", "refused"] {
            let _ = m.reloads.get_or_create(&ResultLabels {
                result: result.into(),
            });
        }
        let r = &mut registry;
        r.register(
            "job_runs",
            "Job runs that ended, by job and outcome (ok, failed, interrupted)",
            m.job_runs.clone(),
        );
        r.register(
            "job_failures",
            "Job runs that failed (retried at their next scheduled time)",
            m.job_failures.clone(),
        );
        r.register(
            "job_skipped",
            "Scheduled fires skipped because the job was still running (a job never overlaps itself)",
            m.job_skipped.clone(),
        );
        r.register(
            "job_running",
            "Whether the job is running now",
            m.job_running.clone(),
        );
        r.register(
            "job_duration_seconds",
            "How long job runs took",
            m.job_duration.clone(),
        );
        r.register(
            "job_last_success_timestamp_seconds",
            "When the job last ended well (Unix time)",
            m.job_last_success.clone(),
        );
        r.register(
            "job_new_findings",
            "Findings recorded as new by the job's runs",
            m.job_new_findings.clone(),
        );
        r.register(
            "findings",
            "Stored findings by severity and status (new, open, acknowledged, resolved)",
            m.findings.clone(),
        );
        r.register(
            "alerts_waiting",
            "Queued alerts waiting for their time (digest) or the next delivery round",
            m.alerts_waiting.clone(),
        );
        r.register(
            "alert_deliveries_pending",
            "Alert deliveries not yet accepted by their sink (the outbox depth)",
            m.deliveries_pending.clone(),
        );
        r.register(
            "alert_deliveries_failing",
            "Pending alert deliveries that failed at least once",
            m.deliveries_failing.clone(),
        );
        r.register(
            "alert_deliveries_dead",
            "Alert deliveries that gave up ([alerts] give_up_after or max_attempts): never \
             retried, see `awxguard alerts list`",
            m.deliveries_dead.clone(),
        );
        r.register(
            "alert_deliveries",
            "Alert delivery attempts by this daemon, by result (sent, failed, dead: gave up)",
            m.deliveries.clone(),
        );
        r.register(
            "alert_delivery_round_errors",
            "Delivery rounds that could not read or write the outbox",
            m.delivery_round_errors.clone(),
        );
        r.register(
            "usage_events_ingested",
            "Usage events stored, by source (proxy, file)",
            m.events_ingested.clone(),
        );
        r.register(
            "proxy_requests",
            "Requests the in-process proxy handled",
            m.proxy_requests.clone(),
        );
        r.register(
            "proxy_refused",
            "Requests the in-process proxy refused (403: scope, client, money guard)",
            m.proxy_refused.clone(),
        );
        r.register(
            "proxy_upstream_errors",
            "Requests answered 502 or 504 because the upstream failed",
            m.proxy_upstream_errors.clone(),
        );
        r.register(
            "proxy_events_spilled",
            "Proxy usage events written to the spill file while the store refused them",
            m.proxy_events_spilled.clone(),
        );
        r.register(
            "proxy_events_dropped",
            "Proxy usage events lost (queue full and spill file unwritable)",
            m.proxy_events_dropped.clone(),
        );
        r.register(
            "proxy_starts",
            "Times the in-process proxy started (first start, after it stopped, after a config change)",
            m.proxy_starts.clone(),
        );
        r.register(
            "config_reloads",
            "SIGHUP reloads by result (applied, refused)",
            m.reloads.clone(),
        );
        r.register(
            "store_up",
            "Whether the store answered the last scrape's queries",
            m.store_up.clone(),
        );
        let start: FloatGauge = Gauge::default();
        start.set(started.timestamp_millis() as f64 / 1000.0);
        r.register(
            "start_time_seconds",
            "When the daemon started (Unix time)",
            start,
        );
        let info = Family::<VersionLabels, Gauge>::default();
        info.get_or_create(&VersionLabels {
            version: env!("CARGO_PKG_VERSION").into(),
        })
        .set(1);
        r.register("build_info", "The awxguard version (always 1)", info);
        Metrics { registry, ..m }
    }

    fn job(name: &str) -> JobLabels {
        JobLabels { job: name.into() }
    }

    /// A job's label sets exist from the start, so a scrape shows every job with zeros.
    pub fn declare_job(&self, name: &str) {
        let l = Self::job(name);
        for outcome in ["ok", "failed", "interrupted"] {
            let _ = self.job_runs.get_or_create(&OutcomeLabels {
                job: name.into(),
                outcome: outcome.into(),
            });
        }
        let _ = self.job_failures.get_or_create(&l);
        let _ = self.job_skipped.get_or_create(&l);
        let _ = self.job_running.get_or_create(&l);
        let _ = self.job_new_findings.get_or_create(&l);
    }

    pub fn job_started(&self, name: &str) {
        self.job_running.get_or_create(&Self::job(name)).set(1);
    }

    pub fn job_ended(&self, name: &str, outcome: &str, seconds: f64, new: u64, at: f64) {
        let l = Self::job(name);
        self.job_running.get_or_create(&l).set(0);
        self.job_runs
            .get_or_create(&OutcomeLabels {
                job: name.into(),
                outcome: outcome.into(),
            })
            .inc();
        match outcome {
            "ok" => {
                self.job_duration.get_or_create(&l).observe(seconds);
                self.job_last_success.get_or_create(&l).set(at);
                self.job_new_findings.get_or_create(&l).inc_by(new);
            }
            "failed" => {
                self.job_duration.get_or_create(&l).observe(seconds);
                self.job_failures.get_or_create(&l).inc();
            }
            _ => {}
        }
    }

    /// Usage events the usage job stored from its files.
    pub fn file_events_stored(&self, n: u64) {
        self.events_ingested
            .get_or_create(&SourceLabels {
                source: "file".into(),
            })
            .inc_by(n);
    }

    pub fn job_skipped(&self, name: &str) {
        self.job_skipped.get_or_create(&Self::job(name)).inc();
    }

    /// Sets the store-derived gauges (or marks the store down).
    pub fn set_store(&self, stats: Option<&StoreStats>) {
        let Some(s) = stats else {
            self.store_up.set(0);
            return;
        };
        self.store_up.set(1);
        self.findings.clear();
        for (severity, status, n) in &s.findings {
            self.findings
                .get_or_create(&FindingLabels {
                    severity: severity.clone(),
                    status: status.clone(),
                })
                .set(*n as i64);
        }
        self.alerts_waiting.set(s.alerts_waiting as i64);
        self.deliveries_pending.set(s.deliveries_pending as i64);
        self.deliveries_failing.set(s.deliveries_failing as i64);
        self.deliveries_dead.set(s.deliveries_dead as i64);
    }

    /// Mirrors the proxy's counters (only forward; a restarted proxy starts from zero again).
    pub fn mirror_proxy(&self, c: &Counters) {
        let now = [
            c.requests.load(Ordering::Relaxed),
            c.refused.load(Ordering::Relaxed),
            c.upstream_errors.load(Ordering::Relaxed),
            c.spilled.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
            c.stored.load(Ordering::Relaxed) + c.unspilled.load(Ordering::Relaxed),
        ];
        let mut seen = self.proxy_seen.lock().unwrap_or_else(|e| e.into_inner());
        let stored = self.events_ingested.get_or_create(&SourceLabels {
            source: "proxy".into(),
        });
        let targets: [&Counter; 6] = [
            &self.proxy_requests,
            &self.proxy_refused,
            &self.proxy_upstream_errors,
            &self.proxy_events_spilled,
            &self.proxy_events_dropped,
            &stored,
        ];
        for i in 0..6 {
            let delta = if now[i] >= seen[i] {
                now[i] - seen[i]
            } else {
                now[i]
            };
            targets[i].inc_by(delta);
            seen[i] = now[i];
        }
    }

    /// A new proxy's counters start from zero.
    pub fn proxy_started(&self) {
        *self.proxy_seen.lock().unwrap_or_else(|e| e.into_inner()) = [0; 6];
        self.proxy_starts.inc();
    }

    /// The exposition: OpenMetrics when `openmetrics`, else the Prometheus text format 0.0.4.
    /// Returns (content type, body).
    pub fn encode(&self, openmetrics: bool) -> (&'static str, String) {
        let mut body = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut body, &self.registry)
                .expect("writing to a String");
            (
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                body,
            )
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut body, &self.registry)
                .expect("writing to a String");
            (
                prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                body,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_exposed_with_its_type() {
        let m = Metrics::new(chrono::Utc::now());
        m.declare_job("audit");
        m.job_started("audit");
        m.job_ended("audit", "ok", 0.5, 2, 1.7e9);
        m.set_store(Some(&StoreStats {
            findings: vec![("high".into(), "new".into(), 3)],
            ..Default::default()
        }));
        let (ct, text) = m.encode(false);
        assert!(ct.starts_with("text/plain; version=0.0.4"));
        for needle in [
            "# TYPE awxguard_job_runs_total counter",
            "awxguard_job_runs_total{job=\"audit\",outcome=\"ok\"} 1",
            "awxguard_job_runs_total{job=\"audit\",outcome=\"failed\"} 0",
            "# TYPE awxguard_job_duration_seconds histogram",
            "awxguard_job_last_success_timestamp_seconds{job=\"audit\"} 1700000000",
            "awxguard_findings{severity=\"high\",status=\"new\"} 3",
            "awxguard_job_new_findings_total{job=\"audit\"} 2",
        ] {
            assert!(text.contains(needle), "{needle}\n{text}");
        }
        let (ct, om) = m.encode(true);
        assert!(ct.starts_with("application/openmetrics-text"));
        assert!(om.ends_with("# EOF\n"));
    }

    #[test]
    fn proxy_counters_only_move_forward() {
        let m = Metrics::new(chrono::Utc::now());
        let c = Counters::default();
        c.requests.store(5, Ordering::Relaxed);
        m.mirror_proxy(&c);
        m.mirror_proxy(&c);
        assert_eq!(m.proxy_requests.get(), 5);
        m.proxy_started();
        let c = Counters::default();
        c.requests.store(2, Ordering::Relaxed);
        m.mirror_proxy(&c);
        assert_eq!(m.proxy_requests.get(), 7);
    }
}
