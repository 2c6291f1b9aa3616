//! awxguard keeps Airwallex API keys safe: it finds leaked keys, inventories and audits the
//! configured ones, and watches how they are used. The binary is a thin shell over this library.

// First: its `say!` / `tell!` macros are used by the modules below.
#[macro_use]
pub mod redact;

pub mod airwallex;
pub mod alert;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod files;
pub mod finding;
pub mod inventory;
pub mod privilege;
pub mod proxy;
pub mod report;
pub mod rulebook;
pub mod rules;
pub mod scan;
pub mod secret;
pub mod store;
pub mod usage;
pub mod watch;
