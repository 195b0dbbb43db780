//! Strata keeps every object on the right storage tier, automatically.
//!
//! Data flows one way: access events feed the spike detector and the forecaster, whose
//! decisions pass through the policy onto the move queue, which the mover drains into
//! the catalogue. Each module below owns one step.
//!
//! # Layout
//!
//! - [`events`]: access events on Kafka: their format, the publisher, the consumer that
//!   counts them exactly once, the embedded broker.
//! - [`detector`]: the reactive spike detector the consumer feeds.
//! - [`forecast`]: features, models, training and the per-object history it predicts from.
//! - [`policy`]: which tier an object belongs on; ranked placement against capacity;
//!   operator rules and bulk moves.
//! - [`jobs`]: the long-running jobs that drive the policy (spikes, scheduled forecasts,
//!   rules) and the catalogue's roll-up.
//! - [`mover`]: executes queued moves: copy, verify, switch, delete.
//! - [`storage`]: the tier backends; [`content`]: object bytes across tiers.
//! - [`db`]: the catalogue (PostgreSQL or SQLite).
//! - [`api`]: the HTTP API; [`client`] and [`cli`]: its client and the command line.
//! - [`s3_endpoint`]: the S3 protocol over the same objects, for unchanged S3 clients.
//! - [`service`]: `strata serve`, its tasks under the [`supervisor`], readiness from
//!   [`health`]; [`metrics`]: the process counters.
//! - [`simulate`]: replays access traces through the same policy code; [`check`]: the
//!   catalogue against the tiers.
//! - [`config`]: settings from the environment; [`tls`]: the one TLS provider;
//!   [`timestamp`]: RFC 3339 times; [`wire`]: whole numbers as JSON writers send them;
//!   [`causes`]: an error and its causes in one line; [`tcp`]: socket options that keep
//!   requests and answers from waiting on each other's timers.

pub mod api;
pub mod causes;
pub mod check;
pub mod cli;
pub mod client;
pub mod config;
pub mod content;
pub mod db;
pub mod detector;
pub mod events;
pub mod forecast;
pub mod health;
pub mod jobs;
pub mod metrics;
pub mod mover;
pub mod policy;
pub mod s3_endpoint;
pub mod service;
pub mod simulate;
pub mod storage;
pub mod supervisor;
pub mod tcp;
pub mod timestamp;
pub mod tls;
pub mod wire;
