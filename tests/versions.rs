//! Encoding fidelity: every api in the version table, at every version we advertise, answers a
//! realistic request with a response that decodes at that version (non-flexible and flexible
//! alike), and default-valued tagged fields are never sent.

mod common;

use bytes::Bytes;
use common::{RawClient, TestServer};
use corral::protocol::SUPPORTED;
use corral_testkit::records::{Rec, consumer_subscription, record_batch};
use corral_testkit::s;
use kafka_protocol::messages::alter_configs_request::{AlterConfigsResource, AlterableConfig};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource as IncResource, AlterableConfig as IncConfig};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_for_leader_epoch_request::{OffsetForLeaderPartition, OffsetForLeaderTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;

fn topic(v: &str) -> TopicName {
    TopicName(s(v))
}

fn batch() -> Bytes {
    record_batch(
        (0..3).map(|i| Rec {
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            timestamp: 1_700_000_000_000 + i,
        }),
        -1,
        0,
    )
}

async fn exercise(c: &mut RawClient, key: ApiKey, v: i16) {
    match key {
        ApiKey::ApiVersions => {
            let r = c
                .send(v, &ApiVersionsRequest::default().with_client_software_name(s("corral-test")).with_client_software_version(s("1.0")))
                .await;
            assert_eq!(r.error_code, 0);
            assert_eq!(r.api_keys.len(), SUPPORTED.len());
        }
        ApiKey::Metadata => {
            let named = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(topic("vt"))),
                MetadataRequestTopic::default().with_name(Some(topic(&format!("auto-{v}")))),
            ]));
            let r = c.send(v, &named).await;
            assert_eq!(r.topics.len(), 2);
            assert!(r.topics.iter().all(|t| t.error_code == 0), "v{v}: {:?}", r.topics);
            let all = c.send(v, &MetadataRequest::default().with_topics(if v == 0 { Some(vec![]) } else { None })).await;
            assert!(all.topics.iter().any(|t| t.name.as_ref().is_some_and(|n| n.as_str() == "vt")));
            assert_eq!(all.brokers.len(), 1);
        }
        ApiKey::Produce => {
            let r = c
                .send(
                    v,
                    &ProduceRequest::default().with_acks(-1).with_timeout_ms(1000).with_topic_data(vec![
                        TopicProduceData::default()
                            .with_name(topic("vt"))
                            .with_partition_data(vec![PartitionProduceData::default().with_index(0).with_records(Some(batch()))]),
                    ]),
                )
                .await;
            assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
        }
        ApiKey::Fetch => {
            let mut t = FetchTopic::default()
                .with_partitions(vec![FetchPartition::default().with_partition(0).with_fetch_offset(0).with_partition_max_bytes(1 << 20)]);
            if v >= 13 {
                // v13+ addresses topics by the id Metadata gives
                let md = c
                    .send(
                        12,
                        &MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(topic("vt")))])),
                    )
                    .await;
                t.topic_id = md.topics[0].topic_id;
                assert!(!t.topic_id.is_nil());
            } else {
                t.topic = topic("vt");
            }
            let r = c.send(v, &FetchRequest::default().with_max_wait_ms(10).with_min_bytes(1).with_topics(vec![t])).await;
            let p = &r.responses[0].partitions[0];
            assert_eq!(p.error_code, 0);
            assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
        }
        ApiKey::ListOffsets => {
            let r = c
                .send(
                    v,
                    &ListOffsetsRequest::default().with_replica_id(BrokerId(-1)).with_topics(vec![
                        ListOffsetsTopic::default()
                            .with_name(topic("vt"))
                            .with_partitions(vec![ListOffsetsPartition::default().with_partition_index(0).with_timestamp(-2)]),
                    ]),
                )
                .await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
            assert_eq!(r.topics[0].partitions[0].offset, 0);
        }
        ApiKey::CreateTopics => {
            let r = c
                .send(
                    v,
                    &CreateTopicsRequest::default().with_timeout_ms(1000).with_topics(vec![
                        CreatableTopic::default()
                            .with_name(topic(&format!("ct-{v}")))
                            .with_num_partitions(2)
                            .with_replication_factor(1)
                            .with_configs(vec![CreatableTopicConfig::default().with_name(s("retention.ms")).with_value(Some(s("60000")))]),
                    ]),
                )
                .await;
            assert_eq!(r.topics[0].error_code, 0, "{:?}", r.topics[0].error_message);
        }
        ApiKey::DeleteTopics => {
            let name = topic(&format!("ct-{}", if v >= 2 { v.min(7) } else { 2 }));
            let req = if v >= 6 {
                DeleteTopicsRequest::default().with_topics(vec![DeleteTopicState::default().with_name(Some(name))])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![name])
            };
            let r = c.send(v, &req.with_timeout_ms(1000)).await;
            assert_eq!(r.responses.len(), 1);
        }
        ApiKey::DeleteRecords => {
            let r = c
                .send(
                    v,
                    &DeleteRecordsRequest::default().with_timeout_ms(1000).with_topics(vec![
                        DeleteRecordsTopic::default()
                            .with_name(topic("vt"))
                            .with_partitions(vec![DeleteRecordsPartition::default().with_partition_index(0).with_offset(0)]),
                    ]),
                )
                .await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
        }
        ApiKey::InitProducerId => {
            let r = c.send(v, &InitProducerIdRequest::default().with_transactional_id(None).with_transaction_timeout_ms(60000)).await;
            assert_eq!(r.error_code, 0);
            assert!(r.producer_id.0 >= 0);
        }
        ApiKey::OffsetForLeaderEpoch => {
            let r = c
                .send(
                    v,
                    &OffsetForLeaderEpochRequest::default().with_topics(vec![
                        OffsetForLeaderTopic::default().with_topic(topic("vt")).with_partitions(vec![
                            OffsetForLeaderPartition::default().with_partition(0).with_current_leader_epoch(0).with_leader_epoch(0),
                        ]),
                    ]),
                )
                .await;
            let p = &r.topics[0].partitions[0];
            assert_eq!((p.error_code, p.leader_epoch), (0, 0));
            assert!(p.end_offset > 0);
        }
        ApiKey::DescribeAcls => {
            let r = c
                .send(
                    v,
                    &DescribeAclsRequest::default()
                        .with_resource_type_filter(1)
                        .with_operation(1)
                        .with_permission_type(1)
                        .with_pattern_type_filter(1),
                )
                .await;
            assert_eq!(r.error_code, 54);
        }
        ApiKey::DescribeConfigs => {
            let r = c
                .send(
                    v,
                    &DescribeConfigsRequest::default().with_include_synonyms(true).with_resources(vec![
                        DescribeConfigsResource::default().with_resource_type(2).with_resource_name(s("vt")),
                        DescribeConfigsResource::default().with_resource_type(4).with_resource_name(s("1")),
                    ]),
                )
                .await;
            assert!(r.results.iter().all(|x| x.error_code == 0 && !x.configs.is_empty()), "{r:?}");
        }
        ApiKey::AlterConfigs => {
            let r = c
                .send(
                    v,
                    &AlterConfigsRequest::default().with_resources(vec![
                        AlterConfigsResource::default()
                            .with_resource_type(2)
                            .with_resource_name(s("vt"))
                            .with_configs(vec![AlterableConfig::default().with_name(s("retention.ms")).with_value(Some(s("7200000")))]),
                    ]),
                )
                .await;
            assert_eq!(r.responses[0].error_code, 0);
        }
        ApiKey::IncrementalAlterConfigs => {
            let r = c
                .send(
                    v,
                    &IncrementalAlterConfigsRequest::default().with_resources(vec![
                        IncResource::default().with_resource_type(2).with_resource_name(s("vt")).with_configs(vec![
                            IncConfig::default().with_name(s("cleanup.policy")).with_config_operation(2).with_value(Some(s("compact"))),
                        ]),
                    ]),
                )
                .await;
            assert_eq!(r.responses[0].error_code, 0, "{:?}", r.responses[0].error_message);
        }
        ApiKey::DescribeLogDirs => {
            let r = c.send(v, &DescribeLogDirsRequest::default().with_topics(None)).await;
            assert_eq!(r.results.len(), 1);
        }
        ApiKey::CreatePartitions => {
            let r = c
                .send(
                    v,
                    &CreatePartitionsRequest::default()
                        .with_timeout_ms(1000)
                        .with_validate_only(true)
                        .with_topics(vec![CreatePartitionsTopic::default().with_name(topic("vt")).with_count(4).with_assignments(None)]),
                )
                .await;
            assert_eq!(r.results[0].error_code, 0);
        }
        ApiKey::DescribeCluster => {
            let mut req = DescribeClusterRequest::default();
            if v >= 1 {
                req.endpoint_type = 1;
            }
            let r = c.send(v, &req).await;
            assert_eq!(r.error_code, 0);
            assert_eq!(r.brokers.len(), 1);
        }
        ApiKey::FindCoordinator => {
            let r = c
                .send(
                    v,
                    &if v >= 4 {
                        FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g1"), s("g2")])
                    } else {
                        FindCoordinatorRequest::default().with_key(s("g1"))
                    },
                )
                .await;
            if v >= 4 {
                assert_eq!(r.coordinators.len(), 2);
                assert!(r.coordinators.iter().all(|x| x.error_code == 0 && x.node_id.0 == 1));
            } else {
                assert_eq!((r.error_code, r.node_id.0), (0, 1));
            }
        }
        ApiKey::JoinGroup => {
            let group = format!("join-{v}");
            let mut r = c.send(v, &join_request(&group, "")).await;
            if v >= 4 {
                assert_eq!(r.error_code, 79, "v{v} MEMBER_ID_REQUIRED");
                let id = r.member_id.to_string();
                r = c.send(v, &join_request(&group, &id)).await;
            }
            assert_eq!(r.error_code, 0, "v{v}");
            assert_eq!(r.generation_id, 1);
            assert_eq!(r.leader, r.member_id);
            assert_eq!(r.members.len(), 1);
            assert_eq!(r.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
        }
        ApiKey::SyncGroup => {
            let group = format!("sync-{v}");
            let (member, generation) = joined(c, &group).await;
            let r = c.send(v, &sync_request(&group, &member, generation, v)).await;
            assert_eq!(r.error_code, 0, "v{v}");
            assert_eq!(&r.assignment[..], b"assignment");
        }
        ApiKey::Heartbeat => {
            let group = format!("hb-{v}");
            let (member, generation) = stable(c, &group).await;
            let r = c
                .send(
                    v,
                    &HeartbeatRequest::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_member_id(s(&member))
                        .with_generation_id(generation),
                )
                .await;
            assert_eq!(r.error_code, 0);
            let r = c
                .send(
                    v,
                    &HeartbeatRequest::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_member_id(s(&member))
                        .with_generation_id(generation + 1),
                )
                .await;
            assert_eq!(r.error_code, 22, "ILLEGAL_GENERATION");
        }
        ApiKey::LeaveGroup => {
            let group = format!("leave-{v}");
            let (member, _) = stable(c, &group).await;
            let req = if v >= 3 {
                LeaveGroupRequest::default()
                    .with_group_id(GroupId(s(&group)))
                    .with_members(vec![leave_group_request::MemberIdentity::default().with_member_id(s(&member))])
            } else {
                LeaveGroupRequest::default().with_group_id(GroupId(s(&group))).with_member_id(s(&member))
            };
            let r = c.send(v, &req).await;
            assert_eq!(r.error_code, 0);
            if v >= 3 {
                assert_eq!(r.members[0].error_code, 0);
            }
        }
        ApiKey::OffsetCommit => {
            let mut req =
                OffsetCommitRequest::default().with_group_id(GroupId(s("commits"))).with_generation_id_or_member_epoch(-1).with_topics(
                    vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(topic("vt")).with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default()
                            .with_partition_index(0)
                            .with_committed_offset(100 + v as i64)
                            .with_committed_metadata(Some(s("meta"))),
                    ])],
                );
            if v <= 4 {
                req.retention_time_ms = -1;
            }
            let r = c.send(v, &req).await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0, "v{v}");
        }
        ApiKey::OffsetFetch => {
            let committed = |o: i64| assert!(o >= 102, "v{v}: fetched offset {o}");
            if v >= 8 {
                let r = c
                    .send(
                        v,
                        &OffsetFetchRequest::default().with_groups(vec![
                            offset_fetch_request::OffsetFetchRequestGroup::default().with_group_id(GroupId(s("commits"))).with_topics(None),
                        ]),
                    )
                    .await;
                committed(r.groups[0].topics[0].partitions[0].committed_offset);
            } else {
                let r = c
                    .send(
                        v,
                        &OffsetFetchRequest::default().with_group_id(GroupId(s("commits"))).with_topics(Some(vec![
                            offset_fetch_request::OffsetFetchRequestTopic::default().with_name(topic("vt")).with_partition_indexes(vec![0]),
                        ])),
                    )
                    .await;
                committed(r.topics[0].partitions[0].committed_offset);
                assert_eq!(r.topics[0].partitions[0].metadata.as_ref().map(|m| m.as_str()), Some("meta"));
            }
        }
        ApiKey::ListGroups => {
            let r = c.send(v, &ListGroupsRequest::default()).await;
            assert_eq!(r.error_code, 0);
            assert!(r.groups.iter().any(|g| g.group_id.as_str() == "commits" && g.protocol_type.is_empty()));
        }
        ApiKey::DescribeGroups => {
            let group = format!("describe-{v}");
            let (member, _) = stable(c, &group).await;
            let r = c.send(v, &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(&group)), GroupId(s("no-such-group"))])).await;
            let d = &r.groups[0];
            assert_eq!((d.error_code, d.group_state.as_str(), d.protocol_data.as_str()), (0, "Stable", "range"));
            assert_eq!(d.members[0].member_id.as_str(), member);
            assert_eq!(&d.members[0].member_assignment[..], b"assignment");
            let unknown = &r.groups[1];
            assert_eq!(unknown.error_code, if v >= 6 { 69 } else { 0 });
            assert_eq!(unknown.group_state.as_str(), "Dead");
        }
        ApiKey::DeleteGroups => {
            let group = format!("delete-{v}");
            commit_simple(c, &group).await;
            let r =
                c.send(v, &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(&group)), GroupId(s("no-such-group"))])).await;
            assert_eq!(r.results[0].error_code, 0);
            assert_eq!(r.results[1].error_code, 69);
        }
        ApiKey::OffsetDelete => {
            commit_simple(c, "offset-delete").await;
            let r = c
                .send(
                    v,
                    &OffsetDeleteRequest::default().with_group_id(GroupId(s("offset-delete"))).with_topics(vec![
                        offset_delete_request::OffsetDeleteRequestTopic::default()
                            .with_name(topic("vt"))
                            .with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default().with_partition_index(0)]),
                    ]),
                )
                .await;
            assert_eq!((r.error_code, r.topics[0].partitions[0].error_code), (0, 0));
        }
        ApiKey::AddPartitionsToTxn => {
            let id = format!("vt-add-{v}");
            let (pid, epoch) = init_txn(c, &id).await;
            let topics =
                vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default().with_name(topic("vt")).with_partitions(vec![0])];
            let codes: Vec<i16> = if v >= 4 {
                let r = c
                    .send(
                        v,
                        &AddPartitionsToTxnRequest::default().with_transactions(vec![
                            add_partitions_to_txn_request::AddPartitionsToTxnTransaction::default()
                                .with_transactional_id(TransactionalId(s(&id)))
                                .with_producer_id(ProducerId(pid))
                                .with_producer_epoch(epoch)
                                .with_topics(topics),
                        ]),
                    )
                    .await;
                assert_eq!(r.error_code, 0);
                r.results_by_transaction[0].topic_results[0].results_by_partition.iter().map(|p| p.partition_error_code).collect()
            } else {
                let r = c
                    .send(
                        v,
                        &AddPartitionsToTxnRequest::default()
                            .with_v3_and_below_transactional_id(TransactionalId(s(&id)))
                            .with_v3_and_below_producer_id(ProducerId(pid))
                            .with_v3_and_below_producer_epoch(epoch)
                            .with_v3_and_below_topics(topics),
                    )
                    .await;
                r.results_by_topic_v3_and_below[0].results_by_partition.iter().map(|p| p.partition_error_code).collect()
            };
            assert_eq!(codes, vec![0]);
        }
        ApiKey::AddOffsetsToTxn => {
            let id = format!("vt-offsets-{v}");
            let (pid, epoch) = init_txn(c, &id).await;
            let r = c.send(v, &add_offsets(&id, pid, epoch)).await;
            assert_eq!(r.error_code, 0);
        }
        ApiKey::EndTxn => {
            let id = format!("vt-end-{v}");
            let (pid, epoch) = init_txn(c, &id).await;
            assert_eq!(c.send(0, &add_offsets(&id, pid, epoch)).await.error_code, 0);
            let r = c
                .send(
                    v,
                    &EndTxnRequest::default()
                        .with_transactional_id(TransactionalId(s(&id)))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_committed(true),
                )
                .await;
            assert_eq!(r.error_code, 0);
        }
        ApiKey::TxnOffsetCommit => {
            let id = format!("vt-txn-commit-{v}");
            let (pid, epoch) = init_txn(c, &id).await;
            assert_eq!(c.send(0, &add_offsets(&id, pid, epoch)).await.error_code, 0);
            let r = c
                .send(
                    v,
                    &TxnOffsetCommitRequest::default()
                        .with_transactional_id(TransactionalId(s(&id)))
                        .with_group_id(GroupId(s("vt-group")))
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch)
                        .with_generation_id(-1)
                        .with_topics(vec![
                            txn_offset_commit_request::TxnOffsetCommitRequestTopic::default().with_name(topic("vt")).with_partitions(vec![
                                txn_offset_commit_request::TxnOffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(1),
                            ]),
                        ]),
                )
                .await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
        }
        ApiKey::DescribeProducers => {
            let r = c
                .send(
                    v,
                    &DescribeProducersRequest::default().with_topics(vec![
                        describe_producers_request::TopicRequest::default().with_name(topic("vt")).with_partition_indexes(vec![0]),
                    ]),
                )
                .await;
            assert_eq!(r.topics[0].partitions[0].error_code, 0);
        }
        ApiKey::DescribeTransactions => {
            let id = format!("vt-describe-{v}");
            init_txn(c, &id).await;
            let r = c.send(v, &DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(&id))])).await;
            assert_eq!((r.transaction_states[0].error_code, r.transaction_states[0].transaction_state.as_str()), (0, "Empty"));
        }
        ApiKey::ListTransactions => {
            let id = format!("vt-list-{v}");
            init_txn(c, &id).await;
            let r = c.send(v, &ListTransactionsRequest::default().with_duration_filter(-1)).await;
            assert_eq!(r.error_code, 0);
            assert!(r.transaction_states.iter().any(|t| t.transactional_id.as_str() == id));
        }
        ApiKey::ConsumerGroupHeartbeat => {
            // a member of the consumer protocol joins: epoch 1 and its partitions of "vt"
            let group = format!("vt-848-{v}");
            let r = c
                .send(
                    v,
                    &ConsumerGroupHeartbeatRequest::default()
                        .with_group_id(GroupId(s(&group)))
                        .with_member_id(s(if v >= 1 { "vt-member" } else { "" }))
                        .with_member_epoch(0)
                        .with_rebalance_timeout_ms(30_000)
                        .with_subscribed_topic_names(Some(vec![topic("vt")]))
                        .with_topic_partitions(Some(vec![])),
                )
                .await;
            assert_eq!((r.error_code, r.member_epoch), (0, 1), "{:?}", r.error_message);
            assert!(r.member_id.is_some_and(|m| !m.is_empty()));
            let a = r.assignment.expect("the assignment of a join");
            assert_eq!(a.topic_partitions.len(), 1);
        }
        ApiKey::ConsumerGroupDescribe => {
            let group = format!("vt-848-describe-{v}");
            let join = ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s(&group)))
                .with_member_id(s("vt-member"))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic("vt")]))
                .with_topic_partitions(Some(vec![]));
            assert_eq!(c.send(1, &join).await.error_code, 0);
            let r = c.send(v, &ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(&group))])).await;
            let g = &r.groups[0];
            assert_eq!((g.error_code, g.group_state.as_str(), g.group_epoch, g.members.len()), (0, "Stable", 1, 1));
            assert_eq!(g.members[0].member_type, if v >= 1 { 1 } else { -1 });
        }
        other => panic!("no exercise for {other:?}: add one when adding it to the version table"),
    }
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(consumer_subscription(&["vt"])),
        ])
}

fn sync_request(group: &str, member: &str, generation: i32, v: i16) -> SyncGroupRequest {
    let mut r = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_generation_id(generation)
        .with_assignments(vec![
            sync_group_request::SyncGroupRequestAssignment::default()
                .with_member_id(s(member))
                .with_assignment(Bytes::from_static(b"assignment")),
        ]);
    if v >= 5 {
        r.protocol_type = Some(s("consumer"));
        r.protocol_name = Some(s("range"));
    }
    r
}

/// A one-member group after its join phase: (member id, generation).
async fn joined(c: &mut RawClient, group: &str) -> (String, i32) {
    let r = c.send(5, &join_request(group, "")).await;
    let id = r.member_id.to_string();
    let r = c.send(5, &join_request(group, &id)).await;
    assert_eq!(r.error_code, 0);
    (id, r.generation_id)
}

/// A one-member Stable group.
async fn stable(c: &mut RawClient, group: &str) -> (String, i32) {
    let (member, generation) = joined(c, group).await;
    let r = c.send(3, &sync_request(group, &member, generation, 3)).await;
    assert_eq!(r.error_code, 0);
    (member, generation)
}

/// A simple group holding one committed offset.
/// A transactional id's producer id and epoch (InitProducerId v4).
async fn init_txn(c: &mut RawClient, id: &str) -> (i64, i16) {
    let r = c
        .send(
            4,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(s(id))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .await;
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

fn add_offsets(id: &str, pid: i64, epoch: i16) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s("vt-group")))
}

async fn commit_simple(c: &mut RawClient, group: &str) {
    let r = c
        .send(
            8,
            &OffsetCommitRequest::default().with_group_id(GroupId(s(group))).with_generation_id_or_member_epoch(-1).with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(topic("vt")).with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1),
                ]),
            ]),
        )
        .await;
    assert_eq!(r.topics[0].partitions[0].error_code, 0);
}

#[tokio::test]
async fn every_api_at_every_version_answers_in_that_version() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c
        .send(
            5,
            &CreateTopicsRequest::default()
                .with_topics(vec![CreatableTopic::default().with_name(topic("vt")).with_num_partitions(1).with_replication_factor(1)]),
        )
        .await;
    assert_eq!(r.topics[0].error_code, 0);
    // produce first so fetch and offsets see data; then the rest in table order
    let mut order: Vec<(ApiKey, i16, i16)> = SUPPORTED.to_vec();
    order.sort_by_key(|(k, _, _)| match k {
        ApiKey::Produce => 0,
        ApiKey::OffsetCommit => 1,
        ApiKey::DeleteRecords => 3,
        _ => 2,
    });
    for (key, min, max) in order {
        for v in min..=max {
            exercise(&mut c, key, v).await;
        }
    }
}

#[tokio::test]
async fn flexible_api_versions_carries_no_default_tagged_fields() {
    // librdkafka before 2.2 (Debian's kcat) cannot skip tagged fields in ApiVersions.
    let server = TestServer::start().await;
    for v in [3i16, 4] {
        let mut c = RawClient::connect(server.addr).await;
        let req = ApiVersionsRequest::default().with_client_software_name(s("corral-test")).with_client_software_version(s("1.0"));
        let frame = c.frame(v, &req);
        c.write_raw(&frame).await;
        let body = c.read_frame().await.unwrap();
        assert_eq!(*body.last().unwrap(), 0, "v{v}: the top-level tagged field count must be 0");
        // every ApiVersion entry ends with an empty tagged-field section too: entries are
        // key(2) min(2) max(2) tags(1) = 7 bytes each after a compact array length
        let n = SUPPORTED.len();
        let entries = &body[4 + 2 + 1..4 + 2 + 1 + 7 * n];
        assert!(entries.chunks(7).all(|e| e[6] == 0), "v{v}: an entry carries tagged fields");
    }
}
