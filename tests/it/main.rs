//! Integration tests: one binary, one module per capability. Every test drives the real
//! `awxguard` binary in a temporary directory; servers (Airwallex stand-ins, SMTP) run on
//! loopback; no test reaches the internet.

mod common;
mod rules;
mod scan;
