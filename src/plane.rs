//! The data-plane seam: where topics, partitions and records live. Chosen once at start —
//! the local broker (broker mode) or the upstream cluster behind the forwarder (proxy mode) —
//! so the router and the coordinator ask the same few questions of either.

use std::sync::Arc;

use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::proxy::Proxy;

/// The data plane of a server.
#[derive(Debug, Clone)]
pub enum DataPlane {
    /// Topics and partitions served here.
    Broker(Arc<Broker>),
    /// Topics and partitions on the upstream cluster; requests for them are forwarded.
    Proxy(Arc<Proxy>),
}

/// A node clients are told to connect to: id and advertised address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAddr {
    pub id: i32,
    pub host: StrBytes,
    pub port: i32,
}

impl DataPlane {
    /// Whether corral answers `api_key` itself. Everything else is forwarded upstream (proxy
    /// mode); in broker mode corral answers everything it serves.
    pub fn answers_locally(&self, api_key: ApiKey) -> bool {
        match self {
            DataPlane::Broker(_) => true,
            DataPlane::Proxy(_) => crate::proxy::answered_locally(api_key),
        }
    }

    /// corral's own node: the group coordinator FindCoordinator names.
    pub fn me(&self) -> NodeAddr {
        match self {
            DataPlane::Broker(b) => NodeAddr { id: b.node_id(), host: b.host(), port: b.port() },
            DataPlane::Proxy(p) => p.me(),
        }
    }

    /// The node serving coordinator shard `shard`: corral's own, unless several proxies share
    /// the coordinator (then whichever the last assignment named; `None` while it moves).
    pub fn coordinator_for(&self, shard: usize) -> Option<NodeAddr> {
        match self {
            DataPlane::Broker(_) => Some(self.me()),
            DataPlane::Proxy(p) => p.owner_of(shard),
        }
    }

    /// The number of partitions of `topic`, if it exists: what the coordinator checks commits
    /// and offset deletions against. The proxy answers from its cached view of the upstream and
    /// asks the upstream on a miss.
    pub async fn partition_count(&self, topic: &str) -> Option<i32> {
        match self {
            DataPlane::Broker(b) => b.topic(topic).map(|t| t.partition_count()),
            DataPlane::Proxy(p) => p.partition_count(topic).await,
        }
    }

    /// Whether `partition` of `topic` exists.
    pub async fn has_partition(&self, topic: &str, partition: i32) -> bool {
        if partition < 0 {
            return false;
        }
        match self {
            DataPlane::Broker(b) => b.topic(topic).is_some_and(|t| partition < t.partition_count()),
            DataPlane::Proxy(p) => p.has_partition(topic, partition).await,
        }
    }
}
