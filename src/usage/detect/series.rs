//! The series the detectors read: the store's order-free usage aggregates
//! ([`crate::store::usage_series`]), which the store keeps as its long-lived rollups.

pub use crate::store::usage_series::*;
