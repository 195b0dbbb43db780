//! Shared helpers of the integration tests, one file per subject.
//!
//! The tests talk to the real services that `scripts/stack.sh up` starts. They fail, not
//! skip, when the stack is missing: a test that cannot fail proves nothing.
#![allow(dead_code)] // Each test binary uses its own subset of these helpers.

mod browser;
mod data;
mod db;
mod deployment;
mod http;
mod kafka;
mod moves;
mod s3;
mod servers;
mod stack;
mod tls;

// Each test binary uses its own subset of these too.
#[allow(unused_imports)]
pub use self::{
    browser::*, data::*, db::*, deployment::*, http::*, kafka::*, moves::*, s3::*, servers::*,
    stack::*, tls::*,
};
