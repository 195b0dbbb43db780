//! Strata keeps every object on the right storage tier, automatically.
//!
//! Data flows one way: access events feed the spike detector and the forecaster, whose
//! decisions pass through the policy onto the move queue, which the mover drains into
//! the catalogue. Each module below owns one step.

pub mod api;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod content;
pub mod db;
pub mod detector;
pub mod events;
pub mod forecast;
pub mod metrics;
pub mod mover;
pub mod policy;
pub mod service;
pub mod simulate;
pub mod storage;
pub mod timestamp;
