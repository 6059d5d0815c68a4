//! The gateway node: configuration, the HTTP front and request pipeline, the proxy,
//! the admin listener, and telemetry. The binary (`main.rs`) is a thin CLI over this.
#![warn(missing_docs)]

pub mod access_log;
pub mod admin;
pub mod client_faults;
pub mod config;
pub mod demo;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod health;
pub mod jwks;
pub mod names;
pub mod otlp;
pub mod pipeline;
pub mod proxy;
pub mod server;
pub mod telemetry;
