//! Alerts on-call can act on, once: what an alert is and when it goes out (`model`), what it
//! says (`render`, contract `alerts.md`), and where it goes (`sink`: email, webhook, files).
//! The durable outbox in the store holds queued alerts by key and finding ids; this module
//! plans them (`deliver::Planner`, installed on the store), renders them and delivers them
//! (`deliver_due`, at the end of a recording CLI run and on the daemon's timer).

pub mod deliver;
pub mod listing;
pub mod model;
pub mod render;
pub mod sink;

pub use deliver::{deliver_due, install, prepare_due, DeliveryReport, Planner};
pub use listing::{configured, list, Listing, NotConfigured, TestReport};
pub use model::{plan_repeats, plan_run, recipients, AlertKind, KeyCard, QueuedAlert};
pub use render::{AlertDoc, Group, Item, Titles};
pub use sink::{Receipt, Sink, SinkError};

use crate::clock::Clock;
use crate::config::{AlertsConfig, Config};

/// Rule titles of every rule awxguard knows (built-in and configured leak and privilege rules);
/// other rule ids are made readable from the id.
pub fn titles(config: &Config) -> Titles {
    let mut t = Titles::default();
    for r in crate::rules::leak::LeakRules::builtin().rules {
        t.0.insert(r.id, r.name);
    }
    let privilege =
        crate::privilege::PrivilegeRules::load(&config.audit.rule_dirs, &[], &config.audit.params)
            .unwrap_or_else(|_| crate::privilege::PrivilegeRules::builtin());
    for r in privilege.rules {
        t.0.insert(r.id, r.name);
    }
    t
}

/// Every address any route or the fallback names: a test alert goes to all of them.
pub fn all_recipients(cfg: &AlertsConfig) -> Vec<String> {
    let mut to = cfg.fallback.clone();
    for r in &cfg.routes {
        for a in &r.to {
            if !to.contains(a) {
                to.push(a.clone());
            }
        }
    }
    to
}

/// The document of `awxguard alerts test`.
pub fn test_doc(cfg: &AlertsConfig, clock: &dyn Clock) -> AlertDoc {
    let now = clock.now();
    let id = model::alert_id(AlertKind::Test, "-", &[], now);
    render::build(
        AlertKind::Test,
        &id,
        Vec::new(),
        all_recipients(cfg),
        cfg,
        &Titles::default(),
        now,
    )
}

/// What one sink did with a test alert.
#[derive(Debug)]
pub struct TestOutcome {
    pub sink: &'static str,
    pub target: String,
    pub result: Result<Receipt, SinkError>,
}

/// Sends a test alert to each configured sink and reports what each server said.
pub async fn send_test(cfg: &AlertsConfig, clock: &dyn Clock) -> TestReport {
    let doc = test_doc(cfg, clock);
    let mut out = Vec::new();
    for s in sink::from_config(cfg) {
        let result = s.send(&doc).await;
        out.push(TestOutcome {
            sink: s.name(),
            target: s.describe(),
            result,
        });
    }
    TestReport { doc, outcomes: out }
}
