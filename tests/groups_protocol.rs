//! Wire-level rules of the group APIs that live in the API layer (checklist items 3, 4, 10,
//! 40, 41, 51, 94, 115; reference/kafka-group-coordinator.md §5).

mod common;

use bytes::Bytes;
use common::{RawClient, TestServer};
use corral_testkit::s;
use kafka_protocol::messages::*;

fn join(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_member_id(s(member))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default().with_name(s("range")).with_metadata(Bytes::from_static(b"m")),
        ])
}

/// Item 3: FindCoordinator v4 with keys [a, b] answers each key on its own.
/// Item 4: KeyType 2 (share) below v6 is INVALID_REQUEST for that key; a transactional id
/// (KeyType 1) is coordinated here too.
#[tokio::test]
async fn item_03_04_find_coordinator_batches_and_key_types() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let r = c.send(4, &FindCoordinatorRequest::default().with_coordinator_keys(vec![s("a"), s("b")])).await;
    assert_eq!(r.coordinators.iter().map(|x| x.key.as_str()).collect::<Vec<_>>(), ["a", "b"]);
    assert!(r.coordinators.iter().all(|x| x.error_code == 0 && x.port == server.addr.port() as i32));
    let r = c.send(5, &FindCoordinatorRequest::default().with_key_type(2).with_coordinator_keys(vec![s("a")])).await;
    assert_eq!((r.coordinators[0].error_code, r.coordinators[0].node_id.0), (42, -1));
    let r = c.send(3, &FindCoordinatorRequest::default().with_key_type(1).with_key(s("txn"))).await;
    assert_eq!((r.error_code, r.port), (0, server.addr.port() as i32));
}

/// Item 10: an empty group id is INVALID_GROUP_ID for Join, Sync, Heartbeat, Leave and
/// OffsetDelete (item 11, OffsetCommit accepting "", is in the shard checklist).
#[tokio::test]
async fn item_10_empty_group_ids() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    assert_eq!(c.send(5, &join("", "")).await.error_code, 24);
    assert_eq!(c.send(3, &SyncGroupRequest::default()).await.error_code, 24);
    assert_eq!(c.send(3, &HeartbeatRequest::default()).await.error_code, 24);
    assert_eq!(c.send(3, &LeaveGroupRequest::default()).await.error_code, 24);
    assert_eq!(c.send(0, &OffsetDeleteRequest::default()).await.error_code, 24);
}

/// Item 40: from v7 an error carries null protocol type and name; item 41: before v7 an unset
/// protocol name is "" on the wire.
#[tokio::test]
async fn item_40_41_protocol_fields_by_version() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    // an unknown member id for a group that does not exist: UNKNOWN_MEMBER_ID
    let r6 = c.send(6, &join("nope", "ghost")).await;
    assert_eq!(r6.error_code, 25);
    assert_eq!(r6.protocol_name.as_ref().map(|p| p.as_str()), Some(""));
    let r7 = c.send(7, &join("nope", "ghost")).await;
    assert_eq!(r7.error_code, 25);
    assert!(r7.protocol_name.is_none() && r7.protocol_type.is_none());
    // success at v7 names both
    let first = c.send(7, &join("g7", "")).await;
    let ok = c.send(7, &join("g7", first.member_id.as_str())).await;
    assert_eq!(ok.error_code, 0);
    assert_eq!(ok.protocol_type.as_ref().map(|p| p.as_str()), Some("consumer"));
    assert_eq!(ok.protocol_name.as_ref().map(|p| p.as_str()), Some("range"));
}

/// Item 51: SyncGroup v5 without protocol type or name is INCONSISTENT_GROUP_PROTOCOL.
#[tokio::test]
async fn item_51_sync_v5_needs_protocol_fields() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let first = c.send(5, &join("g", "")).await;
    let ok = c.send(5, &join("g", first.member_id.as_str())).await;
    let r = c
        .send(
            5,
            &SyncGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_member_id(ok.member_id.clone())
                .with_generation_id(ok.generation_id)
                .with_protocol_type(None)
                .with_protocol_name(Some(s("range"))),
        )
        .await;
    assert_eq!(r.error_code, 23);
}

/// Item 94: commits to unknown topics or partitions get UNKNOWN_TOPIC_OR_PARTITION; the
/// others in the same request are written.
#[tokio::test]
async fn item_94_unknown_topics_in_a_commit() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let md = c
        .send(
            9,
            &MetadataRequest::default()
                .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("real"))))])),
        )
        .await;
    assert_eq!(md.topics[0].error_code, 0);
    let part = |p: i32| offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(p).with_committed_offset(5);
    let r = c
        .send(
            8,
            &OffsetCommitRequest::default().with_group_id(GroupId(s("g"))).with_generation_id_or_member_epoch(-1).with_topics(vec![
                offset_commit_request::OffsetCommitRequestTopic::default()
                    .with_name(TopicName(s("real")))
                    .with_partitions(vec![part(0), part(7)]),
                offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("ghost"))).with_partitions(vec![part(0)]),
            ]),
        )
        .await;
    let codes: Vec<Vec<i16>> = r.topics.iter().map(|t| t.partitions.iter().map(|p| p.error_code).collect()).collect();
    assert_eq!(codes, vec![vec![0, 3], vec![3]]);
    let f = c.send(7, &OffsetFetchRequest::default().with_group_id(GroupId(s("g"))).with_topics(None)).await;
    assert_eq!(f.topics.len(), 1);
    assert_eq!(f.topics[0].partitions[0].committed_offset, 5);
}

/// Item 115: ListGroups filters by state and type, case-insensitively; an unknown type
/// matches nothing.
#[tokio::test]
async fn item_115_list_groups_filters() {
    let server = TestServer::start().await;
    let mut c = RawClient::connect(server.addr).await;
    let first = c.send(5, &join("stable-ish", "")).await;
    c.send(5, &join("stable-ish", first.member_id.as_str())).await;
    c.send(
        9,
        &MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s("t"))))])),
    )
    .await;
    let simple =
        OffsetCommitRequest::default().with_group_id(GroupId(s("simple"))).with_generation_id_or_member_epoch(-1).with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s("t"))).with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(1),
            ]),
        ]);
    assert_eq!(c.send(8, &simple).await.topics[0].partitions[0].error_code, 0);
    let list = |states: &[&str], types: &[&str]| {
        ListGroupsRequest::default()
            .with_states_filter(states.iter().map(|x| s(x)).collect())
            .with_types_filter(types.iter().map(|x| s(x)).collect())
    };
    let r = c.send(5, &list(&[], &[])).await;
    assert_eq!(r.groups.len(), 2);
    assert!(r.groups.iter().all(|g| g.group_type.as_str() == "classic"));
    let r = c.send(5, &list(&["COMPLETINGREBALANCE"], &["Classic"])).await;
    assert_eq!(r.groups.iter().map(|g| g.group_id.as_str()).collect::<Vec<_>>(), ["stable-ish"]);
    let r = c.send(5, &list(&[], &["consumer"])).await;
    assert!(r.groups.is_empty());
    let r = c.send(5, &list(&["empty"], &[])).await;
    assert_eq!(r.groups[0].protocol_type.as_str(), "", "a simple group has no protocol type");
}
