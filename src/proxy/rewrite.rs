//! Address rewriting: every broker address that reaches a client through the proxy is
//! corral's. Metadata and DescribeCluster list each upstream broker at its corral listener and
//! add corral's own node (librdkafka forgets a broker that a Metadata response no longer
//! lists, and the group coordinator must be one it knows); FindCoordinator for transaction
//! keys names the coordinator's corral listener; the KIP-951 `node_endpoints` of Produce
//! (v10+) and Fetch (v16+) responses, sent when leadership moved, are rewritten the same way.
//! Node ids are never changed: each upstream broker keeps its id, so leader ids, replica lists
//! and `current_leader` hints stay consistent with the addresses.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{BrokerId, DescribeClusterResponse, FindCoordinatorResponse, MetadataResponse};
use kafka_protocol::protocol::StrBytes;

use super::Proxy;
use super::cluster::Broker;

fn s(v: impl Into<String>) -> StrBytes {
    StrBytes::from_string(v.into())
}

/// The corral address of upstream node `id`; `None` for ids that are not upstream brokers
/// (-1, or a node the cluster does not list).
fn address_of(proxy: &Proxy, id: i32) -> Option<(StrBytes, i32)> {
    proxy.cluster.advertised(id).map(|(host, port)| (s(host), i32::from(port)))
}

/// Metadata: takes the brokers and topics into the cluster view, then lists every upstream
/// broker at its corral listener, and corral's own node.
pub fn metadata(proxy: &Proxy, version: i16, resp: &mut MetadataResponse) {
    let brokers: Vec<Broker> = resp.brokers.iter().map(|b| Broker { id: b.node_id.0, host: b.host.to_string(), port: b.port }).collect();
    let controller = (version >= 1).then_some(resp.controller_id.0);
    proxy.cluster.observe_brokers(&brokers, controller, resp.cluster_id.as_ref().map(|c| c.as_str()));
    for t in &resp.topics {
        if let Some(name) = &t.name {
            match t.error_code {
                0 => proxy.cluster.observe_topic(name.as_str(), Some(t.partitions.len() as i32)),
                3 => proxy.cluster.observe_topic(name.as_str(), None),
                _ => {}
            }
        }
    }
    resp.brokers.retain(|b| b.node_id.0 != proxy.own_id());
    for b in resp.brokers.iter_mut() {
        if let Some((host, port)) = address_of(proxy, b.node_id.0) {
            b.host = host;
            b.port = port;
        }
    }
    if version >= 1 {
        resp.controller_id = BrokerId(listed_controller(proxy, resp.controller_id.0));
    }
    let me = proxy.me();
    for n in std::iter::once(me).chain(proxy.peers()) {
        let mut node = MetadataResponseBroker::default().with_node_id(BrokerId(n.id)).with_host(n.host).with_port(n.port);
        if version >= 1 {
            node.rack = None;
        }
        resp.brokers.push(node);
    }
}

/// DescribeCluster: the same broker list as Metadata (corral's node included, for a broker
/// listener's answer).
pub fn describe_cluster(proxy: &Proxy, version: i16, resp: &mut DescribeClusterResponse) {
    if resp.error_code != 0 {
        return;
    }
    let brokers: Vec<Broker> = resp.brokers.iter().map(|b| Broker { id: b.broker_id.0, host: b.host.to_string(), port: b.port }).collect();
    proxy.cluster.observe_brokers(&brokers, Some(resp.controller_id.0), Some(resp.cluster_id.as_str()));
    resp.brokers.retain(|b| b.broker_id.0 != proxy.own_id());
    for b in resp.brokers.iter_mut() {
        if let Some((host, port)) = address_of(proxy, b.broker_id.0) {
            b.host = host;
            b.port = port;
        }
    }
    resp.controller_id = BrokerId(listed_controller(proxy, resp.controller_id.0));
    if version < 1 || resp.endpoint_type == 1 {
        for n in std::iter::once(proxy.me()).chain(proxy.peers()) {
            resp.brokers.push(DescribeClusterBroker::default().with_broker_id(BrokerId(n.id)).with_host(n.host).with_port(n.port));
        }
    }
}

/// The controller id clients are given: the upstream's when it is a broker they can reach
/// (KRaft clusters name a broker; Kafka's clients send topic administration there), else the
/// broker corral sends such requests to. An id that no listed broker has — librdkafka's mock
/// cluster reports 0 — would send clients looking for a broker that does not exist.
fn listed_controller(proxy: &Proxy, reported: i32) -> i32 {
    if reported < 0 || proxy.cluster.knows(reported) {
        return reported;
    }
    proxy.cluster.default_node().unwrap_or(-1)
}

/// FindCoordinator (transaction keys): the coordinator's corral listener.
pub fn find_coordinator(proxy: &Proxy, version: i16, resp: &mut FindCoordinatorResponse) {
    if version >= 4 {
        for c in resp.coordinators.iter_mut() {
            if let Some((host, port)) = address_of(proxy, c.node_id.0) {
                c.host = host;
                c.port = port;
            } else if c.node_id.0 >= 0 {
                unknown_node(&mut c.node_id, &mut c.host, &mut c.port, &mut c.error_code);
            }
        }
    } else if let Some((host, port)) = address_of(proxy, resp.node_id.0) {
        resp.host = host;
        resp.port = port;
    } else if resp.node_id.0 >= 0 {
        unknown_node(&mut resp.node_id, &mut resp.host, &mut resp.port, &mut resp.error_code);
    }
}

/// A coordinator corral has no listener for yet: the client asks again shortly (by then a
/// metadata refresh has shown the broker), and never sees the upstream address.
fn unknown_node(id: &mut BrokerId, host: &mut StrBytes, port: &mut i32, error: &mut i16) {
    *id = BrokerId(-1);
    *host = StrBytes::default();
    *port = -1;
    *error = crate::error::ErrorCode::COORDINATOR_NOT_AVAILABLE.code();
}

/// The KIP-951 endpoints of a Produce or Fetch response: each node's corral address. An
/// endpoint for a node corral has no listener for is dropped (the client then refreshes
/// metadata), so no upstream address gets through.
pub fn node_endpoints<E>(proxy: &Proxy, endpoints: &mut Vec<E>, fields: impl Fn(&mut E) -> (&mut BrokerId, &mut StrBytes, &mut i32)) {
    endpoints.retain_mut(|e| {
        let (id, host, port) = fields(e);
        match address_of(proxy, id.0) {
            Some((h, p)) => {
                *host = h;
                *port = p;
                true
            }
            None => false,
        }
    });
}
