//! The gateway's actors and the vocabulary they share.
//!
//! Each actor owns one concern and its storage (memory today, Redis behind the same
//! messages). Read-mostly state is published as a lock-free snapshot (`snapshot::View`);
//! this crate has no actix-web types.

pub mod balancer;
pub mod registry;
pub mod snapshot;
pub mod spec;
pub mod units;
