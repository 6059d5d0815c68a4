//! Entry points for the fuzz targets (`fuzz/`, run by `scripts/fuzz.sh`) and the property
//! tests (`gateway/tests/h1_properties.rs`): the parsers that read untrusted bytes,
//! reachable from outside the crate. Not an API: names and shapes change freely.

pub use crate::admin::fuzzing as admin;
pub use crate::proxy::h1::fuzzing::{Framing, HeadSummary, decode_chunked, read_head};
/// The request method type `read_head` takes.
pub use actix_web::http::Method;
