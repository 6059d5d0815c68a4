//! The shared vocabulary of the gateway: the serde shapes of every configurable thing
//! (services, policies, cache, auth, redis). The config file and the admin API use the
//! same types, so a service reads the same in TOML and in JSON.
//!
//! Leaf values parse strictly when deserialized (durations, sizes, URLs, balancer names);
//! cross-field rules run in `validate()` and report the field path that is wrong.

mod bounds;
mod canonical;
mod cors;
mod error;
mod ip;
mod methods;
mod policy;
mod policy_checks;
mod service;
mod upstream;

pub use canonical::canonical_path;
pub use cors::{CorsSpec, HeaderToken, OriginPattern};
pub use error::FieldError;
pub use ip::{Cidr, IpSpec, unmapped};
pub use methods::{MethodList, MethodName};
pub use policy::{Algorithm, FailureMode, KeyPart, KeySpec, PolicySpec};
pub use service::{
    AuthMode, BalancerKind, CacheCookies, CacheScope, CacheSpec, CircuitBreakerSpec, HashKey, HealthCheckSpec,
    QueueMatch, QueueMode, QueueSpec, RateLimitRef, RateSpec, ServiceName, ServiceSpec,
};
pub use upstream::{EndpointSpec, Scheme, UpstreamUrl};
