//! corral: one binary that speaks the Apache Kafka wire protocol — a group coordinator and a
//! complete single-node broker that stock Kafka clients use unmodified.
//!
//! # How a request travels
//!
//! ```text
//! socket ─► frame        4-byte size prefix, socket.request.max.bytes      (frame)
//!        ─► decode       version checked against the one table, then the
//!                        header, a guard walk of the body, the crate decode (protocol)
//!        ─► route        the one match on api key                           (router)
//!             ├─ ApiVersions                                               (protocol::SUPPORTED)
//!             ├─ broker: Metadata, Produce, Fetch, ListOffsets, topics...  (broker)
//!             └─ coordinator: FindCoordinator, Join/Sync/Heartbeat/Leave,
//!                  OffsetCommit/Fetch/Delete, List/Describe/DeleteGroups    (coordinator)
//!                  └─ shard: a pure state machine, time passed in as a value
//!                       └─ records ─► offsets log, replies after they are durable
//!             └─ transactions: InitProducerId, AddPartitions/AddOffsetsToTxn,
//!                  EndTxn (markers), TxnOffsetCommit, Describe/List   (txn)
//!        ─► encode       at the request's version, header v0/v1             (protocol)
//! ```
//!
//! One request is in flight per connection, as Kafka mutes a channel until it answers
//! (`connection`). The accept loop, connection limit and graceful shutdown are in `server`;
//! every setting and its Kafka name in `config`.

pub mod batch;
pub mod broker;
pub mod clock;
pub mod config;
pub mod connection;
pub mod coordinator;
pub mod error;
pub mod frame;
pub mod log;
pub mod plane;
pub mod protocol;
pub mod proxy;
pub mod router;
pub mod server;
pub mod txn;

pub use config::Config;

/// A hash map with a fast, randomly seeded hasher, for the coordinator's hot maps (group
/// ids and offsets, the offsets log's live keys). Seeded per process, so keys chosen by
/// clients cannot be aimed at one bucket.
pub type FastMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub use server::{Server, run};
