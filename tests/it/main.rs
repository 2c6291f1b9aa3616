//! Integration tests: one binary, one module per capability. Every test drives the real
//! `awxguard` binary in a temporary directory; servers (Airwallex stand-ins, SMTP) run on
//! loopback; no test reaches the internet.

mod airwallex;
mod alerts;
mod audit;
mod baseline;
mod bounds;
mod common;
mod config;
mod daemon;
mod demo;
mod findings;
mod fuzz;
mod git;
mod harden;
mod hook;
mod inventory;
mod layers;
mod paths;
mod pg_fleet;
mod postgres;
mod privilege;
mod proxy;
mod report;
mod report_browser;
mod rules;
mod sarif;
mod scan;
mod simulator;
mod store;
mod transport;
mod trust;
mod usage;
mod usage_store;
mod verify;
mod watch;
