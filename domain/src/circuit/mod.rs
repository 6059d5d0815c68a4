//! A breaker's pure parts: its state machine (`Machine`, mirrored by
//! `actors/lua/circuit.lua`) and the per-endpoint atomics the request path reads
//! (`CircuitCell`). The `CircuitBreaker` actor in `actors::circuit` drives both.

mod cell;
mod machine;

pub use cell::CircuitCell;
pub use machine::{CircuitState, Machine, should_trip};
