//! The response shapes the guard walks: one table per struct of a response schema.
//!
//! These cover the response *body*, the bytes after the response header (which for
//! ApiVersions is always header v0, even in the flexible versions of its body). In proxy mode
//! they are checked on what an upstream broker sends before `kafka-protocol` decodes it, so
//! they span every version the crate decodes, not just the ones corral serves.

use super::{Field, MAX, NEVER, Shape, Ty, api, field, tagged};

// ---------------------------------------------------------------------------------------------
// Shape tables
//
// One table per struct of a response schema, fields in wire order. The doc line names the
// struct as `kafka-protocol` 0.18 calls it and the versions the crate decodes it at; field
// ranges follow the crate, so that they can be compared with the schema directly. Tagged fields
// are listed after the regular ones; their position in the table does not matter. Structs the
// crate shares between apis by name (`NodeEndpoint`, `LeaderIdAndEpoch`) get a table per api, as
// their version ranges are the api's.
// ---------------------------------------------------------------------------------------------

use Ty::{Array, Bool, Int8, Int16, Int32, Int64, NullableArray, NullableBytes, NullableStr, Str, Struct, Uuid};

/// Every response the guard can walk: api key, name, versions (the whole range
/// `kafka-protocol` decodes), first flexible version, body.
pub(crate) const RESPONSE_SHAPES: &[Shape] = &[
    api(0, "Produce", 3, 13, 9, PRODUCE),
    api(1, "Fetch", 4, 18, 12, FETCH),
    api(2, "ListOffsets", 1, 10, 6, LIST_OFFSETS),
    api(3, "Metadata", 0, 13, 9, METADATA),
    api(8, "OffsetCommit", 2, 10, 8, OFFSET_COMMIT),
    api(9, "OffsetFetch", 1, 10, 6, OFFSET_FETCH),
    api(10, "FindCoordinator", 0, 6, 3, FIND_COORDINATOR),
    api(11, "JoinGroup", 0, 9, 6, JOIN_GROUP),
    api(12, "Heartbeat", 0, 4, 4, HEARTBEAT),
    api(13, "LeaveGroup", 0, 5, 4, LEAVE_GROUP),
    api(14, "SyncGroup", 0, 5, 4, SYNC_GROUP),
    api(18, "ApiVersions", 0, 4, 3, API_VERSIONS),
    api(19, "CreateTopics", 2, 7, 5, CREATE_TOPICS),
    api(20, "DeleteTopics", 1, 6, 4, DELETE_TOPICS),
    api(22, "InitProducerId", 0, 6, 2, INIT_PRODUCER_ID),
    api(32, "DescribeConfigs", 1, 4, 4, DESCRIBE_CONFIGS),
    api(42, "DeleteGroups", 0, 2, 2, DELETE_GROUPS),
    api(47, "OffsetDelete", 0, 0, NEVER, OFFSET_DELETE),
    api(60, "DescribeCluster", 0, 2, 0, DESCRIBE_CLUSTER),
];

/// `JoinGroupResponse` (crate versions 0-9).
const JOIN_GROUP: &[Field] = &[
    field("throttle_time_ms", Int32, 2, MAX),
    field("error_code", Int16, 0, MAX),
    field("generation_id", Int32, 0, MAX),
    field("protocol_type", NullableStr, 7, MAX),
    field("protocol_name", NullableStr, 0, MAX),
    field("leader", Str, 0, MAX),
    field("skip_assignment", Bool, 9, MAX),
    field("member_id", Str, 0, MAX),
    field("members", Array(&Struct(JOIN_GROUP_MEMBER)), 0, MAX),
];

/// `JoinGroupResponseMember` (crate versions 0-9).
const JOIN_GROUP_MEMBER: &[Field] =
    &[field("member_id", Str, 0, MAX), field("group_instance_id", NullableStr, 5, MAX), field("metadata", Ty::Bytes, 0, MAX)];

/// `HeartbeatResponse` (crate versions 0-4).
const HEARTBEAT: &[Field] = &[field("throttle_time_ms", Int32, 1, MAX), field("error_code", Int16, 0, MAX)];

/// `LeaveGroupResponse` (crate versions 0-5).
const LEAVE_GROUP: &[Field] = &[
    field("throttle_time_ms", Int32, 1, MAX),
    field("error_code", Int16, 0, MAX),
    field("members", Array(&Struct(LEAVE_GROUP_MEMBER)), 3, MAX),
];

/// `MemberResponse` (crate versions 0-5).
const LEAVE_GROUP_MEMBER: &[Field] =
    &[field("member_id", Str, 3, MAX), field("group_instance_id", NullableStr, 3, MAX), field("error_code", Int16, 3, MAX)];

/// `SyncGroupResponse` (crate versions 0-5).
const SYNC_GROUP: &[Field] = &[
    field("throttle_time_ms", Int32, 1, MAX),
    field("error_code", Int16, 0, MAX),
    field("protocol_type", NullableStr, 5, MAX),
    field("protocol_name", NullableStr, 5, MAX),
    field("assignment", Ty::Bytes, 0, MAX),
];

/// `ProduceResponse` (crate versions 3-13).
const PRODUCE: &[Field] = &[
    field("responses", Array(&Struct(PRODUCE_TOPIC)), 3, MAX),
    field("throttle_time_ms", Int32, 3, MAX),
    tagged(0, "node_endpoints", Array(&Struct(PRODUCE_NODE_ENDPOINT)), 10, MAX),
];

/// `TopicProduceResponse` (crate versions 3-13).
const PRODUCE_TOPIC: &[Field] =
    &[field("name", Str, 3, 12), field("topic_id", Uuid, 13, MAX), field("partition_responses", Array(&Struct(PRODUCE_PARTITION)), 3, MAX)];

/// `PartitionProduceResponse` (crate versions 3-13).
const PRODUCE_PARTITION: &[Field] = &[
    field("index", Int32, 3, MAX),
    field("error_code", Int16, 3, MAX),
    field("base_offset", Int64, 3, MAX),
    field("log_append_time_ms", Int64, 3, MAX),
    field("log_start_offset", Int64, 5, MAX),
    field("record_errors", Array(&Struct(PRODUCE_RECORD_ERROR)), 8, MAX),
    field("error_message", NullableStr, 8, MAX),
    tagged(0, "current_leader", Struct(PRODUCE_LEADER_ID_AND_EPOCH), 10, MAX),
];

/// `BatchIndexAndErrorMessage` (crate versions 3-13).
const PRODUCE_RECORD_ERROR: &[Field] = &[field("batch_index", Int32, 8, MAX), field("batch_index_error_message", NullableStr, 8, MAX)];

/// `LeaderIdAndEpoch` (crate versions 3-13).
const PRODUCE_LEADER_ID_AND_EPOCH: &[Field] = &[field("leader_id", Int32, 10, MAX), field("leader_epoch", Int32, 10, MAX)];

/// `NodeEndpoint` (crate versions 3-13).
const PRODUCE_NODE_ENDPOINT: &[Field] =
    &[field("node_id", Int32, 10, MAX), field("host", Str, 10, MAX), field("port", Int32, 10, MAX), field("rack", NullableStr, 10, MAX)];

/// `FetchResponse` (crate versions 4-18).
const FETCH: &[Field] = &[
    field("throttle_time_ms", Int32, 4, MAX),
    field("error_code", Int16, 7, MAX),
    field("session_id", Int32, 7, MAX),
    field("responses", Array(&Struct(FETCH_TOPIC)), 4, MAX),
    tagged(0, "node_endpoints", Array(&Struct(FETCH_NODE_ENDPOINT)), 16, MAX),
];

/// `FetchableTopicResponse` (crate versions 4-18).
const FETCH_TOPIC: &[Field] =
    &[field("topic", Str, 4, 12), field("topic_id", Uuid, 13, MAX), field("partitions", Array(&Struct(FETCH_PARTITION)), 4, MAX)];

/// `PartitionData` (crate versions 4-18).
const FETCH_PARTITION: &[Field] = &[
    field("partition_index", Int32, 4, MAX),
    field("error_code", Int16, 4, MAX),
    field("high_watermark", Int64, 4, MAX),
    field("last_stable_offset", Int64, 4, MAX),
    field("log_start_offset", Int64, 5, MAX),
    field("aborted_transactions", NullableArray(&Struct(FETCH_ABORTED_TRANSACTION)), 4, MAX),
    field("preferred_read_replica", Int32, 11, MAX),
    field("records", NullableBytes, 4, MAX),
    tagged(0, "diverging_epoch", Struct(FETCH_EPOCH_END_OFFSET), 12, MAX),
    tagged(1, "current_leader", Struct(FETCH_LEADER_ID_AND_EPOCH), 12, MAX),
    tagged(2, "snapshot_id", Struct(FETCH_SNAPSHOT_ID), 12, MAX),
];

/// `AbortedTransaction` (crate versions 4-18).
const FETCH_ABORTED_TRANSACTION: &[Field] = &[field("producer_id", Int64, 4, MAX), field("first_offset", Int64, 4, MAX)];

/// `EpochEndOffset` (crate versions 4-18).
const FETCH_EPOCH_END_OFFSET: &[Field] = &[field("epoch", Int32, 12, MAX), field("end_offset", Int64, 12, MAX)];

/// `LeaderIdAndEpoch` (crate versions 4-18).
const FETCH_LEADER_ID_AND_EPOCH: &[Field] = &[field("leader_id", Int32, 12, MAX), field("leader_epoch", Int32, 12, MAX)];

/// `SnapshotId` (crate versions 4-18).
const FETCH_SNAPSHOT_ID: &[Field] = &[field("end_offset", Int64, 4, MAX), field("epoch", Int32, 4, MAX)];

/// `NodeEndpoint` (crate versions 4-18).
const FETCH_NODE_ENDPOINT: &[Field] =
    &[field("node_id", Int32, 16, MAX), field("host", Str, 16, MAX), field("port", Int32, 16, MAX), field("rack", NullableStr, 16, MAX)];

/// `ListOffsetsResponse` (crate versions 1-10).
const LIST_OFFSETS: &[Field] = &[field("throttle_time_ms", Int32, 2, MAX), field("topics", Array(&Struct(LIST_OFFSETS_TOPIC)), 1, MAX)];

/// `ListOffsetsTopicResponse` (crate versions 1-10).
const LIST_OFFSETS_TOPIC: &[Field] = &[field("name", Str, 1, MAX), field("partitions", Array(&Struct(LIST_OFFSETS_PARTITION)), 1, MAX)];

/// `ListOffsetsPartitionResponse` (crate versions 1-10).
const LIST_OFFSETS_PARTITION: &[Field] = &[
    field("partition_index", Int32, 1, MAX),
    field("error_code", Int16, 1, MAX),
    field("timestamp", Int64, 1, MAX),
    field("offset", Int64, 1, MAX),
    field("leader_epoch", Int32, 4, MAX),
];

/// `MetadataResponse` (crate versions 0-13).
const METADATA: &[Field] = &[
    field("throttle_time_ms", Int32, 3, MAX),
    field("brokers", Array(&Struct(METADATA_BROKER)), 0, MAX),
    field("cluster_id", NullableStr, 2, MAX),
    field("controller_id", Int32, 1, MAX),
    field("topics", Array(&Struct(METADATA_TOPIC)), 0, MAX),
    field("cluster_authorized_operations", Int32, 8, 10),
    field("error_code", Int16, 13, MAX),
];

/// `MetadataResponseBroker` (crate versions 0-13).
const METADATA_BROKER: &[Field] =
    &[field("node_id", Int32, 0, MAX), field("host", Str, 0, MAX), field("port", Int32, 0, MAX), field("rack", NullableStr, 1, MAX)];

/// `MetadataResponseTopic` (crate versions 0-13).
const METADATA_TOPIC: &[Field] = &[
    field("error_code", Int16, 0, MAX),
    field("name", NullableStr, 0, MAX),
    field("topic_id", Uuid, 10, MAX),
    field("is_internal", Bool, 1, MAX),
    field("partitions", Array(&Struct(METADATA_PARTITION)), 0, MAX),
    field("topic_authorized_operations", Int32, 8, MAX),
];

/// `MetadataResponsePartition` (crate versions 0-13).
const METADATA_PARTITION: &[Field] = &[
    field("error_code", Int16, 0, MAX),
    field("partition_index", Int32, 0, MAX),
    field("leader_id", Int32, 0, MAX),
    field("leader_epoch", Int32, 7, MAX),
    field("replica_nodes", Array(&Int32), 0, MAX),
    field("isr_nodes", Array(&Int32), 0, MAX),
    field("offline_replicas", Array(&Int32), 5, MAX),
];

/// `OffsetCommitResponse` (crate versions 2-10).
const OFFSET_COMMIT: &[Field] = &[field("throttle_time_ms", Int32, 3, MAX), field("topics", Array(&Struct(OFFSET_COMMIT_TOPIC)), 2, MAX)];

/// `OffsetCommitResponseTopic` (crate versions 2-10).
const OFFSET_COMMIT_TOPIC: &[Field] =
    &[field("name", Str, 2, 9), field("topic_id", Uuid, 10, MAX), field("partitions", Array(&Struct(OFFSET_COMMIT_PARTITION)), 2, MAX)];

/// `OffsetCommitResponsePartition` (crate versions 2-10).
const OFFSET_COMMIT_PARTITION: &[Field] = &[field("partition_index", Int32, 2, MAX), field("error_code", Int16, 2, MAX)];

/// `OffsetFetchResponse` (crate versions 1-10).
const OFFSET_FETCH: &[Field] = &[
    field("throttle_time_ms", Int32, 3, MAX),
    field("topics", Array(&Struct(OFFSET_FETCH_TOPIC)), 1, 7),
    field("error_code", Int16, 2, 7),
    field("groups", Array(&Struct(OFFSET_FETCH_GROUP)), 8, MAX),
];

/// `OffsetFetchResponseTopic` (crate versions 1-10).
const OFFSET_FETCH_TOPIC: &[Field] = &[field("name", Str, 1, 7), field("partitions", Array(&Struct(OFFSET_FETCH_PARTITION)), 1, 7)];

/// `OffsetFetchResponsePartition` (crate versions 1-10).
const OFFSET_FETCH_PARTITION: &[Field] = &[
    field("partition_index", Int32, 1, 7),
    field("committed_offset", Int64, 1, 7),
    field("committed_leader_epoch", Int32, 5, 7),
    field("metadata", NullableStr, 1, 7),
    field("error_code", Int16, 1, 7),
];

/// `OffsetFetchResponseGroup` (crate versions 1-10).
const OFFSET_FETCH_GROUP: &[Field] =
    &[field("group_id", Str, 8, MAX), field("topics", Array(&Struct(OFFSET_FETCH_TOPICS)), 8, MAX), field("error_code", Int16, 8, MAX)];

/// `OffsetFetchResponseTopics` (crate versions 1-10).
const OFFSET_FETCH_TOPICS: &[Field] =
    &[field("name", Str, 8, 9), field("topic_id", Uuid, 10, MAX), field("partitions", Array(&Struct(OFFSET_FETCH_PARTITIONS)), 8, MAX)];

/// `OffsetFetchResponsePartitions` (crate versions 1-10).
const OFFSET_FETCH_PARTITIONS: &[Field] = &[
    field("partition_index", Int32, 8, MAX),
    field("committed_offset", Int64, 8, MAX),
    field("committed_leader_epoch", Int32, 8, MAX),
    field("metadata", NullableStr, 8, MAX),
    field("error_code", Int16, 8, MAX),
];

/// `FindCoordinatorResponse` (crate versions 0-6).
const FIND_COORDINATOR: &[Field] = &[
    field("throttle_time_ms", Int32, 1, MAX),
    field("error_code", Int16, 0, 3),
    field("error_message", NullableStr, 1, 3),
    field("node_id", Int32, 0, 3),
    field("host", Str, 0, 3),
    field("port", Int32, 0, 3),
    field("coordinators", Array(&Struct(FIND_COORDINATOR_COORDINATOR)), 4, MAX),
];

/// `Coordinator` (crate versions 0-6).
const FIND_COORDINATOR_COORDINATOR: &[Field] = &[
    field("key", Str, 4, MAX),
    field("node_id", Int32, 4, MAX),
    field("host", Str, 4, MAX),
    field("port", Int32, 4, MAX),
    field("error_code", Int16, 4, MAX),
    field("error_message", NullableStr, 4, MAX),
];

/// `ApiVersionsResponse` (crate versions 0-4).
const API_VERSIONS: &[Field] = &[
    field("error_code", Int16, 0, MAX),
    field("api_keys", Array(&Struct(API_VERSIONS_API_VERSION)), 0, MAX),
    field("throttle_time_ms", Int32, 1, MAX),
    tagged(0, "supported_features", Array(&Struct(API_VERSIONS_SUPPORTED_FEATURE_KEY)), 3, MAX),
    tagged(1, "finalized_features_epoch", Int64, 3, MAX),
    tagged(2, "finalized_features", Array(&Struct(API_VERSIONS_FINALIZED_FEATURE_KEY)), 3, MAX),
    tagged(3, "zk_migration_ready", Bool, 3, MAX),
];

/// `ApiVersion` (crate versions 0-4).
const API_VERSIONS_API_VERSION: &[Field] =
    &[field("api_key", Int16, 0, MAX), field("min_version", Int16, 0, MAX), field("max_version", Int16, 0, MAX)];

/// `SupportedFeatureKey` (crate versions 0-4).
const API_VERSIONS_SUPPORTED_FEATURE_KEY: &[Field] =
    &[field("name", Str, 3, MAX), field("min_version", Int16, 3, MAX), field("max_version", Int16, 3, MAX)];

/// `FinalizedFeatureKey` (crate versions 0-4).
const API_VERSIONS_FINALIZED_FEATURE_KEY: &[Field] =
    &[field("name", Str, 3, MAX), field("max_version_level", Int16, 3, MAX), field("min_version_level", Int16, 3, MAX)];

/// `CreateTopicsResponse` (crate versions 2-7).
const CREATE_TOPICS: &[Field] = &[field("throttle_time_ms", Int32, 2, MAX), field("topics", Array(&Struct(CREATE_TOPICS_RESULT)), 2, MAX)];

/// `CreatableTopicResult` (crate versions 2-7).
const CREATE_TOPICS_RESULT: &[Field] = &[
    field("name", Str, 2, MAX),
    field("topic_id", Uuid, 7, MAX),
    field("error_code", Int16, 2, MAX),
    field("error_message", NullableStr, 2, MAX),
    field("num_partitions", Int32, 5, MAX),
    field("replication_factor", Int16, 5, MAX),
    field("configs", NullableArray(&Struct(CREATE_TOPICS_CONFIG)), 5, MAX),
    tagged(0, "topic_config_error_code", Int16, 5, MAX),
];

/// `CreatableTopicConfigs` (crate versions 2-7).
const CREATE_TOPICS_CONFIG: &[Field] = &[
    field("name", Str, 5, MAX),
    field("value", NullableStr, 5, MAX),
    field("read_only", Bool, 5, MAX),
    field("config_source", Int8, 5, MAX),
    field("is_sensitive", Bool, 5, MAX),
];

/// `DeleteTopicsResponse` (crate versions 1-6).
const DELETE_TOPICS: &[Field] =
    &[field("throttle_time_ms", Int32, 1, MAX), field("responses", Array(&Struct(DELETE_TOPICS_RESULT)), 1, MAX)];

/// `DeletableTopicResult` (crate versions 1-6).
const DELETE_TOPICS_RESULT: &[Field] = &[
    field("name", NullableStr, 1, MAX),
    field("topic_id", Uuid, 6, MAX),
    field("error_code", Int16, 1, MAX),
    field("error_message", NullableStr, 5, MAX),
];

/// `InitProducerIdResponse` (crate versions 0-6).
const INIT_PRODUCER_ID: &[Field] = &[
    field("throttle_time_ms", Int32, 0, MAX),
    field("error_code", Int16, 0, MAX),
    field("producer_id", Int64, 0, MAX),
    field("producer_epoch", Int16, 0, MAX),
    field("ongoing_txn_producer_id", Int64, 6, MAX),
    field("ongoing_txn_producer_epoch", Int16, 6, MAX),
];

/// `DescribeConfigsResponse` (crate versions 1-4).
const DESCRIBE_CONFIGS: &[Field] =
    &[field("throttle_time_ms", Int32, 1, MAX), field("results", Array(&Struct(DESCRIBE_CONFIGS_RESULT)), 1, MAX)];

/// `DescribeConfigsResult` (crate versions 1-4).
const DESCRIBE_CONFIGS_RESULT: &[Field] = &[
    field("error_code", Int16, 1, MAX),
    field("error_message", NullableStr, 1, MAX),
    field("resource_type", Int8, 1, MAX),
    field("resource_name", Str, 1, MAX),
    field("configs", Array(&Struct(DESCRIBE_CONFIGS_RESOURCE_RESULT)), 1, MAX),
];

/// `DescribeConfigsResourceResult` (crate versions 1-4).
const DESCRIBE_CONFIGS_RESOURCE_RESULT: &[Field] = &[
    field("name", Str, 1, MAX),
    field("value", NullableStr, 1, MAX),
    field("read_only", Bool, 1, MAX),
    field("config_source", Int8, 1, MAX),
    field("is_sensitive", Bool, 1, MAX),
    field("synonyms", Array(&Struct(DESCRIBE_CONFIGS_SYNONYM)), 1, MAX),
    field("config_type", Int8, 3, MAX),
    field("documentation", NullableStr, 3, MAX),
];

/// `DescribeConfigsSynonym` (crate versions 1-4).
const DESCRIBE_CONFIGS_SYNONYM: &[Field] =
    &[field("name", Str, 1, MAX), field("value", NullableStr, 1, MAX), field("source", Int8, 1, MAX)];

/// `DeleteGroupsResponse` (crate versions 0-2).
const DELETE_GROUPS: &[Field] = &[field("throttle_time_ms", Int32, 0, MAX), field("results", Array(&Struct(DELETE_GROUPS_RESULT)), 0, MAX)];

/// `DeletableGroupResult` (crate versions 0-2).
const DELETE_GROUPS_RESULT: &[Field] = &[field("group_id", Str, 0, MAX), field("error_code", Int16, 0, MAX)];

/// `OffsetDeleteResponse` (crate versions 0-0).
const OFFSET_DELETE: &[Field] = &[
    field("error_code", Int16, 0, MAX),
    field("throttle_time_ms", Int32, 0, MAX),
    field("topics", Array(&Struct(OFFSET_DELETE_TOPIC)), 0, MAX),
];

/// `OffsetDeleteResponseTopic` (crate versions 0-0).
const OFFSET_DELETE_TOPIC: &[Field] = &[field("name", Str, 0, MAX), field("partitions", Array(&Struct(OFFSET_DELETE_PARTITION)), 0, MAX)];

/// `OffsetDeleteResponsePartition` (crate versions 0-0).
const OFFSET_DELETE_PARTITION: &[Field] = &[field("partition_index", Int32, 0, MAX), field("error_code", Int16, 0, MAX)];

/// `DescribeClusterResponse` (crate versions 0-2).
const DESCRIBE_CLUSTER: &[Field] = &[
    field("throttle_time_ms", Int32, 0, MAX),
    field("error_code", Int16, 0, MAX),
    field("error_message", NullableStr, 0, MAX),
    field("endpoint_type", Int8, 1, MAX),
    field("cluster_id", Str, 0, MAX),
    field("controller_id", Int32, 0, MAX),
    field("brokers", Array(&Struct(DESCRIBE_CLUSTER_BROKER)), 0, MAX),
    field("cluster_authorized_operations", Int32, 0, MAX),
];

/// `DescribeClusterBroker` (crate versions 0-2).
const DESCRIBE_CLUSTER_BROKER: &[Field] = &[
    field("broker_id", Int32, 0, MAX),
    field("host", Str, 0, MAX),
    field("port", Int32, 0, MAX),
    field("rack", NullableStr, 0, MAX),
    field("is_fenced", Bool, 2, MAX),
];
