//! Metadata and DescribeCluster: who the broker is, and which topics and partitions exist.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic};
use kafka_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{Broker, Topic, partition::LEADER_EPOCH};
use crate::error::ErrorCode;

/// Kafka's "authorized operations not requested" marker.
const OPS_NOT_REQUESTED: i32 = i32::MIN;

fn topic_entry(broker: &Broker, version: i16, t: &Topic) -> MetadataResponseTopic {
    let me = BrokerId(broker.node_id());
    let partitions = (0..t.partition_count())
        .map(|i| {
            let mut p = MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(me)
                .with_replica_nodes(vec![me])
                .with_isr_nodes(vec![me]);
            if version >= 7 {
                p.leader_epoch = LEADER_EPOCH;
            }
            p
        })
        .collect();
    let mut e =
        MetadataResponseTopic::default().with_name(Some(TopicName(StrBytes::from_string(t.name.clone())))).with_partitions(partitions);
    if version >= 10 {
        e.topic_id = t.id;
    }
    e
}

fn error_entry(name: Option<TopicName>, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default().with_name(name).with_error_code(code.code())
}

/// One requested topic's entry (auto-creating it when allowed).
async fn metadata_entry(
    broker: &std::sync::Arc<Broker>,
    version: i16,
    w: kafka_protocol::messages::metadata_request::MetadataRequestTopic,
    auto: bool,
) -> MetadataResponseTopic {
    if version < 12 && (w.name.is_none() || !w.topic_id.is_nil()) {
        return error_entry(w.name.clone(), ErrorCode::INVALID_REQUEST);
    }
    let name = match (&w.name, !w.topic_id.is_nil()) {
        (_, true) => match broker.topic_by_id(&w.topic_id) {
            Some(t) => return topic_entry(broker, version, &t),
            None => {
                let mut e = error_entry(None, ErrorCode::UNKNOWN_TOPIC_ID);
                e.topic_id = w.topic_id;
                return e;
            }
        },
        (Some(n), false) => n.clone(),
        (None, false) => return error_entry(None, ErrorCode::INVALID_REQUEST),
    };
    if let Some(t) = broker.topic(&name) {
        return topic_entry(broker, version, &t);
    }
    if super::validate_topic_name(&name).is_err() {
        return error_entry(Some(name), ErrorCode::INVALID_TOPIC_EXCEPTION);
    }
    if !auto {
        return error_entry(Some(name), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
    }
    match broker.auto_create(&name).await {
        Ok(t) => topic_entry(broker, version, &t),
        Err(e) => error_entry(Some(name), e.code),
    }
}

/// Metadata: `topics = null` lists every topic, `[]` only the broker; unknown topics are
/// created when both the request and `auto.create.topics.enable` allow it.
pub async fn handle_metadata(broker: &std::sync::Arc<Broker>, version: i16, req: MetadataRequest) -> MetadataResponse {
    // v0 spells "all topics" as an empty list; v1+ as null.
    let all = match &req.topics {
        None => true,
        Some(t) => version == 0 && t.is_empty(),
    };
    let topics = match req.topics {
        _ if all => broker.topics().iter().map(|t| topic_entry(broker, version, t)).collect(),
        None => Vec::new(),
        Some(wanted) => {
            let auto = broker.config.auto_create_topics_enable && (version < 4 || req.allow_auto_topic_creation);
            let mut entries = Vec::with_capacity(wanted.len());
            for w in wanted {
                entries.push(metadata_entry(broker, version, w, auto).await);
            }
            entries
        }
    };
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default().with_node_id(BrokerId(broker.node_id())).with_host(broker.host()).with_port(broker.port()),
        ])
        .with_topics(topics);
    if version >= 1 {
        resp.controller_id = BrokerId(broker.node_id());
    }
    if version >= 2 {
        resp.cluster_id = Some(StrBytes::from_string(broker.cluster_id.clone()));
    }
    resp
}

/// DescribeCluster: the same broker list, for admin clients.
pub fn handle_describe_cluster(broker: &Broker, version: i16, req: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut resp = DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(broker.cluster_id.clone()))
        .with_controller_id(BrokerId(broker.node_id()))
        .with_cluster_authorized_operations(OPS_NOT_REQUESTED)
        .with_brokers(vec![
            DescribeClusterBroker::default().with_broker_id(BrokerId(broker.node_id())).with_host(broker.host()).with_port(broker.port()),
        ]);
    if version >= 1 {
        // 1 = brokers, 2 = controllers; our listener is a broker listener, as Kafka's is.
        resp.endpoint_type = req.endpoint_type;
        let refused = match req.endpoint_type {
            1 => None,
            2 => Some((
                ErrorCode::MISMATCHED_ENDPOINT_TYPE,
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )),
            _ => Some((ErrorCode::UNSUPPORTED_ENDPOINT_TYPE, "Unsupported endpoint type")),
        };
        if let Some((code, message)) = refused {
            return DescribeClusterResponse::default()
                .with_endpoint_type(req.endpoint_type)
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_static_str(message)));
        }
    }
    resp
}
