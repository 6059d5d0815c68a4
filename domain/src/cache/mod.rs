//! The cache's vocabulary: HTTP freshness rules (`policy`), the stored record and its
//! binary format (`entry`), and the cache keys (`key`). The L1/L2 cache itself and its
//! actor are `actors::cache`.

pub mod entry;
pub mod key;
pub mod policy;
