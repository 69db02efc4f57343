//! corral-testkit: what corral's load generator (`bench/corral-bench`) and its tests share to
//! speak to a server the way a client does.
//!
//! - [`client`]: one raw Kafka connection; requests are encoded by the kafka-protocol crate's
//!   client side, responses decoded at the request's version.
//! - [`records`]: record batches as a client encodes them, and a consumer's subscription.
//! - [`process`]: a server binary started on port 0, its address read from the first line it
//!   prints (never a port picked beforehand and hoped to be free); its stderr kept when asked;
//!   stopped with SIGTERM or SIGKILL; or one expected to refuse to start.

pub mod client;
pub mod process;
pub mod records;

pub use client::Client;
pub use process::ServerProcess;

use kafka_protocol::protocol::StrBytes;

/// A kafka-protocol string from a `&str`.
pub fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}
