//! Property tests of the decode path: truncated, bit-flipped and length-lying frames of every
//! supported api never panic, abort or hang the decoder, and a server fed them keeps serving.

mod common;

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use common::{RawClient, TestServer};
use corral::protocol::{SUPPORTED, decode_request};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use uuid::Uuid;

/// A valid frame (without size prefix) for `key` at `version`, from the crate's defaults with
/// a couple of array entries where that is easy to add.
fn seed(key: ApiKey, version: i16) -> Bytes {
    fn enc<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, req: R) -> Bytes {
        let mut b = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("fuzz")))
            .encode(&mut b, R::header_version(version))
            .unwrap();
        req.encode(&mut b, version).unwrap();
        b.freeze()
    }
    let t = || TopicName(StrBytes::from_static_str("topic"));
    match key {
        ApiKey::Produce => enc(
            key,
            version,
            ProduceRequest::default().with_topic_data(vec![
                produce_request::TopicProduceData::default().with_name(t()).with_partition_data(vec![
                    produce_request::PartitionProduceData::default().with_records(Some(Bytes::from_static(&[0u8; 70]))),
                ]),
            ]),
        ),
        ApiKey::Fetch => {
            let mut ft = fetch_request::FetchTopic::default().with_partitions(vec![fetch_request::FetchPartition::default(); 2]);
            if version >= 13 {
                ft.topic_id = uuid::Uuid::from_u128(7);
            } else {
                ft.topic = t();
            }
            enc(key, version, FetchRequest::default().with_topics(vec![ft]))
        }
        ApiKey::ListOffsets => enc(
            key,
            version,
            ListOffsetsRequest::default().with_topics(vec![
                list_offsets_request::ListOffsetsTopic::default().with_name(t()).with_partitions(vec![Default::default(); 2]),
            ]),
        ),
        ApiKey::Metadata => enc(
            key,
            version,
            MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(t()))])),
        ),
        ApiKey::ApiVersions => enc(key, version, ApiVersionsRequest::default()),
        ApiKey::CreateTopics => enc(
            key,
            version,
            CreateTopicsRequest::default()
                .with_topics(vec![create_topics_request::CreatableTopic::default().with_name(t()).with_configs(vec![Default::default()])]),
        ),
        ApiKey::DeleteTopics => enc(
            key,
            version,
            if version >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![Default::default()])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![t()])
            },
        ),
        ApiKey::DeleteRecords => enc(
            key,
            version,
            DeleteRecordsRequest::default().with_topics(vec![
                delete_records_request::DeleteRecordsTopic::default().with_name(t()).with_partitions(vec![Default::default()]),
            ]),
        ),
        ApiKey::InitProducerId => enc(key, version, InitProducerIdRequest::default()),
        ApiKey::OffsetForLeaderEpoch => enc(
            key,
            version,
            OffsetForLeaderEpochRequest::default().with_topics(vec![
                offset_for_leader_epoch_request::OffsetForLeaderTopic::default().with_topic(t()).with_partitions(vec![Default::default()]),
            ]),
        ),
        ApiKey::DescribeAcls => enc(key, version, DescribeAclsRequest::default().with_pattern_type_filter(1)),
        ApiKey::DescribeConfigs => enc(key, version, DescribeConfigsRequest::default().with_resources(vec![Default::default(); 2])),
        ApiKey::AlterConfigs => enc(
            key,
            version,
            AlterConfigsRequest::default()
                .with_resources(vec![alter_configs_request::AlterConfigsResource::default().with_configs(vec![Default::default()])]),
        ),
        ApiKey::DescribeLogDirs => enc(key, version, DescribeLogDirsRequest::default()),
        ApiKey::CreatePartitions => enc(key, version, CreatePartitionsRequest::default().with_topics(vec![Default::default()])),
        ApiKey::IncrementalAlterConfigs => enc(
            key,
            version,
            IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default().with_configs(vec![Default::default()]),
            ]),
        ),
        ApiKey::DescribeCluster => enc(key, version, DescribeClusterRequest::default()),
        ApiKey::FindCoordinator => enc(
            key,
            version,
            if version >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![StrBytes::from_static_str("g"); 2])
            } else {
                FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g"))
            },
        ),
        ApiKey::JoinGroup => enc(
            key,
            version,
            JoinGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(vec![
                    join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(StrBytes::from_static_str("range"))
                        .with_metadata(Bytes::from_static(&[0, 1, 0, 0, 0, 1, 0, 1, b't'])),
                ]),
        ),
        ApiKey::SyncGroup => enc(
            key,
            version,
            SyncGroupRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_assignments(vec![Default::default(); 2]),
        ),
        ApiKey::Heartbeat => enc(key, version, HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g")))),
        ApiKey::LeaveGroup => enc(
            key,
            version,
            if version >= 3 {
                LeaveGroupRequest::default().with_members(vec![Default::default(); 2])
            } else {
                LeaveGroupRequest::default()
            },
        ),
        ApiKey::OffsetCommit => enc(
            key,
            version,
            OffsetCommitRequest::default().with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(t()).with_partitions(vec![Default::default(); 2]),
            ]),
        ),
        ApiKey::OffsetFetch => enc(
            key,
            version,
            if version >= 8 {
                OffsetFetchRequest::default().with_groups(vec![offset_fetch_request::OffsetFetchRequestGroup::default().with_topics(Some(
                    vec![offset_fetch_request::OffsetFetchRequestTopics::default().with_name(t()).with_partition_indexes(vec![0, 1])],
                ))])
            } else {
                OffsetFetchRequest::default().with_topics(Some(vec![
                    offset_fetch_request::OffsetFetchRequestTopic::default().with_name(t()).with_partition_indexes(vec![0, 1]),
                ]))
            },
        ),
        ApiKey::ListGroups => enc(key, version, ListGroupsRequest::default()),
        ApiKey::DescribeGroups => {
            enc(key, version, DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("g")); 2]))
        }
        ApiKey::DeleteGroups => {
            enc(key, version, DeleteGroupsRequest::default().with_groups_names(vec![GroupId(StrBytes::from_static_str("g"))]))
        }
        ApiKey::OffsetDelete => enc(
            key,
            version,
            OffsetDeleteRequest::default().with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default().with_name(t()).with_partitions(vec![Default::default()]),
            ]),
        ),
        ApiKey::AddPartitionsToTxn => enc(
            key,
            version,
            if version >= 4 {
                AddPartitionsToTxnRequest::default().with_transactions(vec![
                    add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                        .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                        .with_topics(vec![
                            add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(t()).with_partitions(vec![0, 1]),
                        ]),
                ])
            } else {
                AddPartitionsToTxnRequest::default()
                    .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                    .with_v3_and_below_topics(vec![
                        add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(t()).with_partitions(vec![0, 1]),
                    ])
            },
        ),
        ApiKey::AddOffsetsToTxn => enc(
            key,
            version,
            AddOffsetsToTxnRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_group_id(GroupId(StrBytes::from_static_str("g"))),
        ),
        ApiKey::EndTxn => {
            enc(key, version, EndTxnRequest::default().with_transactional_id(TransactionalId(StrBytes::from_static_str("tx"))))
        }
        ApiKey::TxnOffsetCommit => enc(
            key,
            version,
            TxnOffsetCommitRequest::default()
                .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(vec![
                    txn_offset_commit_request::TxnOffsetCommitRequestTopic::default()
                        .with_name(t())
                        .with_partitions(vec![Default::default()]),
                ]),
        ),
        ApiKey::DescribeProducers => enc(
            key,
            version,
            DescribeProducersRequest::default()
                .with_topics(vec![describe_producers_request::TopicRequest::default().with_name(t()).with_partition_indexes(vec![0])]),
        ),
        ApiKey::DescribeTransactions => enc(
            key,
            version,
            DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("tx"))]),
        ),
        ApiKey::ListTransactions => {
            enc(key, version, ListTransactionsRequest::default().with_state_filters(vec![StrBytes::from_static_str("Ongoing")]))
        }
        ApiKey::ConsumerGroupHeartbeat => enc(
            key,
            version,
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_member_id(StrBytes::from_static_str("m"))
                .with_instance_id(Some(StrBytes::from_static_str("i")))
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![t()]))
                .with_subscribed_topic_regex(if version >= 1 { Some(StrBytes::from_static_str("^t.*")) } else { None })
                .with_server_assignor(Some(StrBytes::from_static_str("uniform")))
                .with_topic_partitions(Some(vec![
                    consumer_group_heartbeat_request::TopicPartitions::default()
                        .with_topic_id(Uuid::from_u128(7))
                        .with_partitions(vec![0, 1]),
                ])),
        ),
        ApiKey::ConsumerGroupDescribe => {
            enc(key, version, ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_static_str("g"))]))
        }
        other => panic!("no fuzz seed for {other:?}: add one when adding it to the version table"),
    }
}

fn all_seeds() -> Vec<Bytes> {
    SUPPORTED.iter().flat_map(|(k, min, max)| (*min..=*max).map(move |v| seed(*k, v))).collect()
}

/// One way of breaking a frame.
#[derive(Debug, Clone)]
enum Mutation {
    Truncate(usize),
    Flip(Vec<(usize, u8)>),
    /// Overwrite 4 bytes at a position with a lying length.
    Lie(usize, [u8; 4]),
    /// Overwrite 5 bytes with an over-long or huge varint.
    VarintBomb(usize, [u8; 5]),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        any::<usize>().prop_map(Mutation::Truncate),
        prop::collection::vec((any::<usize>(), 1u8..=255), 1..4).prop_map(Mutation::Flip),
        (
            any::<usize>(),
            prop_oneof![Just([0x7f, 0xff, 0xff, 0xff]), Just([0xff, 0xff, 0xff, 0xfe]), Just([0x00, 0x10, 0x00, 0x00]), any::<[u8; 4]>(),]
        )
            .prop_map(|(at, b)| Mutation::Lie(at, b)),
        (
            any::<usize>(),
            prop_oneof![Just([0xff, 0xff, 0xff, 0xff, 0x0f]), Just([0x80, 0x80, 0x80, 0x80, 0x08]), Just([0xff, 0xff, 0xff, 0xff, 0xff]),]
        )
            .prop_map(|(at, b)| Mutation::VarintBomb(at, b)),
    ]
}

fn apply(seed: &Bytes, m: &Mutation) -> Bytes {
    let mut v = seed.to_vec();
    match m {
        Mutation::Truncate(at) => v.truncate(at % (v.len() + 1)),
        Mutation::Flip(flips) => {
            for (at, mask) in flips {
                // keep the api key and version mostly intact so the body decoders are reached
                let i = 4 + at % (v.len().saturating_sub(4).max(1));
                if i < v.len() {
                    v[i] ^= mask;
                }
            }
        }
        Mutation::Lie(at, b) => {
            if v.len() > 4 {
                let i = 4 + at % (v.len() - 4);
                for (k, byte) in b.iter().enumerate() {
                    if i + k < v.len() {
                        v[i + k] = *byte;
                    }
                }
            }
        }
        Mutation::VarintBomb(at, b) => {
            if v.len() > 4 {
                let i = 4 + at % (v.len() - 4);
                v.splice(i..(i + 5).min(v.len()), b.iter().copied());
            }
        }
    }
    Bytes::from(v)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, ..ProptestConfig::default() })]

    /// The decode path alone: any mutation of any supported request decodes or is refused,
    /// without a panic (a failed allocation would abort this test binary).
    #[test]
    fn mutated_frames_never_break_the_decoder(which in any::<usize>(), m in mutation()) {
        let seeds = all_seeds();
        let frame = apply(&seeds[which % seeds.len()], &m);
        let _ = decode_request(frame, &corral::protocol::VersionTable::broker());
    }
}

#[test]
fn every_seed_decodes_unmutated() {
    for s in all_seeds() {
        decode_request(s.clone(), &corral::protocol::VersionTable::broker()).unwrap_or_else(|e| panic!("seed {:?}: {e}", &s[..8]));
    }
}

/// The whole server: hundreds of broken frames over many connections, then a good client is
/// still served promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_fed_broken_frames_keeps_serving() {
    let server = TestServer::start().await;
    let seeds = all_seeds();
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let strategy = (any::<usize>(), mutation());
    let mut conn = RawClient::connect(server.addr).await;
    for i in 0..600 {
        let (which, m) = strategy.new_tree(&mut runner).unwrap().current();
        let body = apply(&seeds[which % seeds.len()], &m);
        let mut framed = BytesMut::with_capacity(body.len() + 4);
        framed.put_i32(body.len() as i32);
        framed.extend_from_slice(&body);
        if conn.stream().try_write(&framed).is_err() || i % 20 == 0 {
            conn = RawClient::connect(server.addr).await;
            let _ = conn.stream().try_write(&framed);
        }
        // drain whatever comes back without waiting on it
        let mut sink = [0u8; 4096];
        let _ = conn.stream().try_read(&mut sink);
    }
    let mut good = RawClient::connect(server.addr).await;
    let r = tokio::time::timeout(Duration::from_secs(5), good.send(2, &ApiVersionsRequest::default()))
        .await
        .expect("the server answers promptly after the broken frames");
    assert_eq!(r.error_code, 0);
    let md = good.send(1, &MetadataRequest::default().with_topics(None)).await;
    assert_eq!(md.brokers.len(), 1);
}
