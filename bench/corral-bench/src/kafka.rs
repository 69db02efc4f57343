//! The requests more than one scenario sends: connecting as corral-bench, creating a topic,
//! finding a partition's leader, and produce frames with their batches.

use std::time::{Duration, Instant};

use bytes::Bytes;
use corral_testkit::records::{Rec, record_batch};
use corral_testkit::{Client, s};
use kafka_protocol::messages::*;

use crate::measure::now_ms;

/// The topic that commits (and the coordinator scenario's commits) name.
pub const TOPIC: &str = "bench";

/// A connection whose requests name client id "corral-bench".
pub async fn connect(addr: &str) -> std::io::Result<Client> {
    Client::connect(addr, "corral-bench").await
}

/// One batch of `records` values of `value_len` bytes, stamped now.
pub fn batch(records: usize, value_len: usize, producer_id: i64, sequence: i32) -> Bytes {
    let value = Bytes::from(vec![b'x'; value_len]);
    let timestamp = now_ms();
    record_batch((0..records).map(|_| Rec { key: None, value: Some(value.clone()), timestamp }), producer_id, sequence)
}

/// A Produce v7 frame carrying `records` to one partition.
pub fn produce_frame(c: &mut Client, topic: &str, partition: i32, acks: i16, records: Bytes) -> Bytes {
    c.frame(
        7,
        &ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![
            produce_request::TopicProduceData::default().with_name(TopicName(s(topic))).with_partition_data(vec![
                produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records)),
            ]),
        ]),
    )
}

pub async fn ensure_topic(target: &str, topic: &str, partitions: i32) {
    let mut c = connect(target).await.expect("connect");
    c.call(
        5,
        &CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(TopicName(s(topic)))
                .with_num_partitions(partitions)
                .with_replication_factor(1),
        ]),
    )
    .await
    .expect("create topic");
}

/// The address of the broker leading `partition` of `topic`, as a Metadata response (v9, asked
/// of `target`) names it: a proxy lists each upstream broker at a listener of its own, and a
/// partition's requests must go there. Asks again while the leader is not known yet (10 s).
pub async fn leader_addr(target: &str, topic: &str, partition: i32) -> Result<String, String> {
    let mut c = connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]))
            .with_allow_auto_topic_creation(false);
        let r = c.call(9, &req).await.map_err(|e| format!("Metadata from {target}: {e}"))?;
        let part = r
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition));
        let leader = part.map(|p| p.leader_id.0).unwrap_or(-1);
        if let Some(b) = r.brokers.iter().find(|b| leader >= 0 && b.node_id.0 == leader) {
            return Ok(format!("{}:{}", b.host.as_str(), b.port));
        }
        if Instant::now() > deadline {
            let why = match part {
                None => "the topic or partition is not in Metadata".to_string(),
                Some(p) if p.leader_id.0 < 0 => format!("no leader (error code {})", p.error_code),
                Some(p) => format!("leader {} is not among the brokers listed", p.leader_id.0),
            };
            return Err(format!("{topic}-{partition} at {target}: {why}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
