//! The request shapes the guard walks: one table per struct of a request schema.

use super::{Field, MAX, NEVER, Shape, Ty, api, field, tagged};

// ---------------------------------------------------------------------------------------------
// Shape tables
//
// One table per struct of a request schema, fields in wire order. The doc line names the
// struct as `kafka-protocol` 0.18 calls it and the versions the crate decodes it at; field
// ranges follow the crate, so that they can be compared with the schema directly. Tagged fields
// are listed after the regular ones; their position in the table does not matter.
// ---------------------------------------------------------------------------------------------

use Ty::{
    Array, Bool, Bytes, Float64, Int8, Int16, Int32, Int64, NullableArray, NullableBytes, NullableStr, NullableStruct, Str, Struct, Uuid,
};

/// Every request the guard can walk: api key, name, versions (the whole range `kafka-protocol`
/// decodes), first flexible version, body. Which of these versions corral serves in broker mode
/// is `SUPPORTED` in `protocol/mod.rs`, a subset. The apis marked "forwarded only" are not
/// served at all in broker mode (it refuses them at the version check, as it advertises no
/// version of them); their shapes are walked only in proxy mode, before they are forwarded.
/// Those marked "refused in both modes" corral neither serves nor forwards (SASL); "broker mode
/// only" ones (transactional offset commits, the KIP-848 group apis) a proxy refuses.
pub(crate) const SHAPES: &[Shape] = &[
    api(0, "Produce", 3, 13, 9, PRODUCE),
    api(1, "Fetch", 4, 18, 12, FETCH),
    api(2, "ListOffsets", 1, 10, 6, LIST_OFFSETS),
    api(3, "Metadata", 0, 13, 9, METADATA),
    api(8, "OffsetCommit", 2, 9, 8, OFFSET_COMMIT), // the crate's request stops at 9 (response: 10)
    api(9, "OffsetFetch", 1, 9, 6, OFFSET_FETCH),   // the crate's request stops at 9 (response: 10)
    api(10, "FindCoordinator", 0, 6, 3, FIND_COORDINATOR),
    api(11, "JoinGroup", 0, 9, 6, JOIN_GROUP),
    api(12, "Heartbeat", 0, 4, 4, HEARTBEAT),
    api(13, "LeaveGroup", 0, 5, 4, LEAVE_GROUP),
    api(14, "SyncGroup", 0, 5, 4, SYNC_GROUP),
    api(15, "DescribeGroups", 0, 6, 5, DESCRIBE_GROUPS),
    api(16, "ListGroups", 0, 5, 3, LIST_GROUPS),
    api(17, "SaslHandshake", 0, 1, NEVER, SASL_HANDSHAKE), // refused in both modes
    api(18, "ApiVersions", 0, 4, 3, API_VERSIONS),
    api(19, "CreateTopics", 2, 7, 5, CREATE_TOPICS),
    api(20, "DeleteTopics", 1, 6, 4, DELETE_TOPICS),
    api(21, "DeleteRecords", 0, 2, 2, DELETE_RECORDS),
    api(22, "InitProducerId", 0, 5, 2, INIT_PRODUCER_ID), // request stops at 5 (response: 6)
    api(23, "OffsetForLeaderEpoch", 2, 4, 4, OFFSET_FOR_LEADER_EPOCH),
    api(24, "AddPartitionsToTxn", 0, 5, 3, ADD_PARTITIONS_TO_TXN),
    api(25, "AddOffsetsToTxn", 0, 4, 3, ADD_OFFSETS_TO_TXN), // broker mode only
    api(26, "EndTxn", 0, 5, 3, END_TXN),
    api(28, "TxnOffsetCommit", 0, 5, 3, TXN_OFFSET_COMMIT), // broker mode only
    api(29, "DescribeAcls", 1, 3, 2, DESCRIBE_ACLS),
    api(30, "CreateAcls", 1, 3, 2, CREATE_ACLS), // forwarded only
    api(31, "DeleteAcls", 1, 3, 2, DELETE_ACLS), // forwarded only
    api(32, "DescribeConfigs", 1, 4, 4, DESCRIBE_CONFIGS),
    api(33, "AlterConfigs", 0, 2, 2, ALTER_CONFIGS),
    api(34, "AlterReplicaLogDirs", 1, 2, 2, ALTER_REPLICA_LOG_DIRS), // forwarded only
    api(35, "DescribeLogDirs", 1, 4, 2, DESCRIBE_LOG_DIRS),
    api(36, "SaslAuthenticate", 0, 2, 2, SASL_AUTHENTICATE), // refused in both modes
    api(37, "CreatePartitions", 0, 3, 2, CREATE_PARTITIONS),
    api(42, "DeleteGroups", 0, 2, 2, DELETE_GROUPS),
    api(43, "ElectLeaders", 0, 2, 2, ELECT_LEADERS), // forwarded only
    api(44, "IncrementalAlterConfigs", 0, 1, 1, INCREMENTAL_ALTER_CONFIGS),
    api(
        45,
        "AlterPartitionReassignments", // forwarded only
        0,
        1,
        0,
        ALTER_PARTITION_REASSIGNMENTS,
    ),
    api(
        46,
        "ListPartitionReassignments", // forwarded only
        0,
        0,
        0,
        LIST_PARTITION_REASSIGNMENTS,
    ),
    api(47, "OffsetDelete", 0, 0, NEVER, OFFSET_DELETE),
    api(48, "DescribeClientQuotas", 0, 1, 1, DESCRIBE_CLIENT_QUOTAS), // forwarded only
    api(49, "AlterClientQuotas", 0, 1, 1, ALTER_CLIENT_QUOTAS),       // forwarded only
    api(
        50,
        "DescribeUserScramCredentials", // forwarded only
        0,
        0,
        0,
        DESCRIBE_USER_SCRAM_CREDENTIALS,
    ),
    api(
        51,
        "AlterUserScramCredentials", // forwarded only
        0,
        0,
        0,
        ALTER_USER_SCRAM_CREDENTIALS,
    ),
    api(57, "UpdateFeatures", 0, 2, 0, UPDATE_FEATURES), // forwarded only
    api(60, "DescribeCluster", 0, 2, 0, DESCRIBE_CLUSTER),
    api(61, "DescribeProducers", 0, 0, 0, DESCRIBE_PRODUCERS),
    api(65, "DescribeTransactions", 0, 0, 0, DESCRIBE_TRANSACTIONS),
    api(66, "ListTransactions", 0, 2, 0, LIST_TRANSACTIONS),
    api(
        68,
        "ConsumerGroupHeartbeat", // broker mode only
        0,
        1,
        0,
        CONSUMER_GROUP_HEARTBEAT,
    ),
    api(
        69,
        "ConsumerGroupDescribe", // broker mode only
        0,
        1,
        0,
        CONSUMER_GROUP_DESCRIBE,
    ),
    api(
        71,
        "GetTelemetrySubscriptions", // forwarded only
        0,
        0,
        0,
        GET_TELEMETRY_SUBSCRIPTIONS,
    ),
    api(72, "PushTelemetry", 0, 0, 0, PUSH_TELEMETRY),              // forwarded only
    api(74, "ListConfigResources", 0, 1, 0, LIST_CONFIG_RESOURCES), // forwarded only
    api(
        75,
        "DescribeTopicPartitions", // forwarded only
        0,
        0,
        0,
        DESCRIBE_TOPIC_PARTITIONS,
    ),
];

/// `ProduceRequest` (crate versions 3-13).
const PRODUCE: &[Field] = &[
    field("transactional_id", NullableStr, 3, MAX),
    field("acks", Int16, 3, MAX),
    field("timeout_ms", Int32, 3, MAX),
    field("topic_data", Array(&Struct(PRODUCE_TOPIC)), 3, MAX),
];

/// `TopicProduceData` (crate versions 3-13).
const PRODUCE_TOPIC: &[Field] =
    &[field("name", Str, 3, 12), field("topic_id", Uuid, 13, MAX), field("partition_data", Array(&Struct(PRODUCE_PARTITION)), 3, MAX)];

/// `PartitionProduceData` (crate versions 3-13).
const PRODUCE_PARTITION: &[Field] = &[field("index", Int32, 3, MAX), field("records", NullableBytes, 3, MAX)];

/// `FetchRequest` (crate versions 4-18).
const FETCH: &[Field] = &[
    field("replica_id", Int32, 4, 14),
    field("max_wait_ms", Int32, 4, MAX),
    field("min_bytes", Int32, 4, MAX),
    field("max_bytes", Int32, 4, MAX),
    field("isolation_level", Int8, 4, MAX),
    field("session_id", Int32, 7, MAX),
    field("session_epoch", Int32, 7, MAX),
    field("topics", Array(&Struct(FETCH_TOPIC)), 4, MAX),
    field("forgotten_topics_data", Array(&Struct(FETCH_FORGOTTEN_TOPIC)), 7, MAX),
    field("rack_id", Str, 11, MAX),
    tagged(0, "cluster_id", NullableStr, 12, MAX),
    tagged(1, "replica_state", Struct(FETCH_REPLICA_STATE), 15, MAX),
];

/// `ReplicaState` (crate versions 4-18).
const FETCH_REPLICA_STATE: &[Field] = &[field("replica_id", Int32, 15, MAX), field("replica_epoch", Int64, 15, MAX)];

/// `FetchTopic` (crate versions 4-18).
const FETCH_TOPIC: &[Field] =
    &[field("topic", Str, 4, 12), field("topic_id", Uuid, 13, MAX), field("partitions", Array(&Struct(FETCH_PARTITION)), 4, MAX)];

/// `ForgottenTopic` (crate versions 4-18).
const FETCH_FORGOTTEN_TOPIC: &[Field] =
    &[field("topic", Str, 7, 12), field("topic_id", Uuid, 13, MAX), field("partitions", Array(&Int32), 7, MAX)];

/// `FetchPartition` (crate versions 4-18).
const FETCH_PARTITION: &[Field] = &[
    field("partition", Int32, 4, MAX),
    field("current_leader_epoch", Int32, 9, MAX),
    field("fetch_offset", Int64, 4, MAX),
    field("last_fetched_epoch", Int32, 12, MAX),
    field("log_start_offset", Int64, 5, MAX),
    field("partition_max_bytes", Int32, 4, MAX),
    tagged(0, "replica_directory_id", Uuid, 17, MAX),
    tagged(1, "high_watermark", Int64, 18, MAX),
];

/// `ListOffsetsRequest` (crate versions 1-10).
const LIST_OFFSETS: &[Field] = &[
    field("replica_id", Int32, 1, MAX),
    field("isolation_level", Int8, 2, MAX),
    field("topics", Array(&Struct(LIST_OFFSETS_TOPIC)), 1, MAX),
    field("timeout_ms", Int32, 10, MAX),
];

/// `ListOffsetsTopic` (crate versions 1-10).
const LIST_OFFSETS_TOPIC: &[Field] = &[field("name", Str, 1, MAX), field("partitions", Array(&Struct(LIST_OFFSETS_PARTITION)), 1, MAX)];

/// `ListOffsetsPartition` (crate versions 1-10).
const LIST_OFFSETS_PARTITION: &[Field] =
    &[field("partition_index", Int32, 1, MAX), field("current_leader_epoch", Int32, 4, MAX), field("timestamp", Int64, 1, MAX)];

/// `MetadataRequest` (crate versions 0-13).
const METADATA: &[Field] = &[
    field("topics", NullableArray(&Struct(METADATA_TOPIC)), 0, MAX),
    field("allow_auto_topic_creation", Bool, 4, MAX),
    field("include_cluster_authorized_operations", Bool, 8, 10),
    field("include_topic_authorized_operations", Bool, 8, MAX),
];

/// `MetadataRequestTopic` (crate versions 0-13).
const METADATA_TOPIC: &[Field] = &[field("topic_id", Uuid, 10, MAX), field("name", NullableStr, 0, MAX)];

/// `OffsetCommitRequest` (crate versions 2-9).
const OFFSET_COMMIT: &[Field] = &[
    field("group_id", Str, 2, MAX),
    field("generation_id_or_member_epoch", Int32, 2, MAX),
    field("member_id", Str, 2, MAX),
    field("group_instance_id", NullableStr, 7, MAX),
    field("retention_time_ms", Int64, 2, 4),
    field("topics", Array(&Struct(OFFSET_COMMIT_TOPIC)), 2, MAX),
];

/// `OffsetCommitRequestTopic` (crate versions 2-9).
const OFFSET_COMMIT_TOPIC: &[Field] = &[field("name", Str, 2, MAX), field("partitions", Array(&Struct(OFFSET_COMMIT_PARTITION)), 2, MAX)];

/// `OffsetCommitRequestPartition` (crate versions 2-9).
const OFFSET_COMMIT_PARTITION: &[Field] = &[
    field("partition_index", Int32, 2, MAX),
    field("committed_offset", Int64, 2, MAX),
    field("committed_leader_epoch", Int32, 6, MAX),
    field("committed_metadata", NullableStr, 2, MAX),
];

/// `OffsetFetchRequest` (crate versions 1-9).
const OFFSET_FETCH: &[Field] = &[
    field("group_id", Str, 1, 7),
    field("topics", NullableArray(&Struct(OFFSET_FETCH_TOPIC)), 1, 7),
    field("groups", Array(&Struct(OFFSET_FETCH_GROUP)), 8, MAX),
    field("require_stable", Bool, 7, MAX),
];

/// `OffsetFetchRequestTopic` (crate versions 1-9).
const OFFSET_FETCH_TOPIC: &[Field] = &[field("name", Str, 1, 7), field("partition_indexes", Array(&Int32), 1, 7)];

/// `OffsetFetchRequestGroup` (crate versions 1-9).
const OFFSET_FETCH_GROUP: &[Field] = &[
    field("group_id", Str, 8, MAX),
    field("member_id", NullableStr, 9, MAX),
    field("member_epoch", Int32, 9, MAX),
    field("topics", NullableArray(&Struct(OFFSET_FETCH_TOPICS)), 8, MAX),
];

/// `OffsetFetchRequestTopics` (crate versions 1-9).
const OFFSET_FETCH_TOPICS: &[Field] = &[field("name", Str, 8, MAX), field("partition_indexes", Array(&Int32), 8, MAX)];

/// `FindCoordinatorRequest` (crate versions 0-6).
const FIND_COORDINATOR: &[Field] =
    &[field("key", Str, 0, 3), field("key_type", Int8, 1, MAX), field("coordinator_keys", Array(&Str), 4, MAX)];

/// `JoinGroupRequest` (crate versions 0-9).
const JOIN_GROUP: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("session_timeout_ms", Int32, 0, MAX),
    field("rebalance_timeout_ms", Int32, 1, MAX),
    field("member_id", Str, 0, MAX),
    field("group_instance_id", NullableStr, 5, MAX),
    field("protocol_type", Str, 0, MAX),
    field("protocols", Array(&Struct(JOIN_GROUP_PROTOCOL)), 0, MAX),
    field("reason", NullableStr, 8, MAX),
];

/// `JoinGroupRequestProtocol` (crate versions 0-9).
const JOIN_GROUP_PROTOCOL: &[Field] = &[field("name", Str, 0, MAX), field("metadata", Bytes, 0, MAX)];

/// `HeartbeatRequest` (crate versions 0-4).
const HEARTBEAT: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("generation_id", Int32, 0, MAX),
    field("member_id", Str, 0, MAX),
    field("group_instance_id", NullableStr, 3, MAX),
];

/// `LeaveGroupRequest` (crate versions 0-5).
const LEAVE_GROUP: &[Field] =
    &[field("group_id", Str, 0, MAX), field("member_id", Str, 0, 2), field("members", Array(&Struct(LEAVE_GROUP_MEMBER_IDENTITY)), 3, MAX)];

/// `MemberIdentity` (crate versions 0-5).
const LEAVE_GROUP_MEMBER_IDENTITY: &[Field] =
    &[field("member_id", Str, 3, MAX), field("group_instance_id", NullableStr, 3, MAX), field("reason", NullableStr, 5, MAX)];

/// `SyncGroupRequest` (crate versions 0-5).
const SYNC_GROUP: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("generation_id", Int32, 0, MAX),
    field("member_id", Str, 0, MAX),
    field("group_instance_id", NullableStr, 3, MAX),
    field("protocol_type", NullableStr, 5, MAX),
    field("protocol_name", NullableStr, 5, MAX),
    field("assignments", Array(&Struct(SYNC_GROUP_ASSIGNMENT)), 0, MAX),
];

/// `SyncGroupRequestAssignment` (crate versions 0-5).
const SYNC_GROUP_ASSIGNMENT: &[Field] = &[field("member_id", Str, 0, MAX), field("assignment", Bytes, 0, MAX)];

/// `DescribeGroupsRequest` (crate versions 0-6).
const DESCRIBE_GROUPS: &[Field] = &[field("groups", Array(&Str), 0, MAX), field("include_authorized_operations", Bool, 3, MAX)];

/// `ListGroupsRequest` (crate versions 0-5).
const LIST_GROUPS: &[Field] = &[field("states_filter", Array(&Str), 4, MAX), field("types_filter", Array(&Str), 5, MAX)];

/// `SaslHandshakeRequest` (crate versions 0-1).
const SASL_HANDSHAKE: &[Field] = &[field("mechanism", Str, 0, MAX)];

/// `ApiVersionsRequest` (crate versions 0-4).
const API_VERSIONS: &[Field] = &[field("client_software_name", Str, 3, MAX), field("client_software_version", Str, 3, MAX)];

/// `CreateTopicsRequest` (crate versions 2-7).
const CREATE_TOPICS: &[Field] = &[
    field("topics", Array(&Struct(CREATE_TOPICS_TOPIC)), 2, MAX),
    field("timeout_ms", Int32, 2, MAX),
    field("validate_only", Bool, 2, MAX),
];

/// `CreatableTopic` (crate versions 2-7).
const CREATE_TOPICS_TOPIC: &[Field] = &[
    field("name", Str, 2, MAX),
    field("num_partitions", Int32, 2, MAX),
    field("replication_factor", Int16, 2, MAX),
    field("assignments", Array(&Struct(CREATE_TOPICS_ASSIGNMENT)), 2, MAX),
    field("configs", Array(&Struct(CREATE_TOPICS_CONFIG)), 2, MAX),
];

/// `CreatableReplicaAssignment` (crate versions 2-7).
const CREATE_TOPICS_ASSIGNMENT: &[Field] = &[field("partition_index", Int32, 2, MAX), field("broker_ids", Array(&Int32), 2, MAX)];

/// `CreatableTopicConfig` (crate versions 2-7).
const CREATE_TOPICS_CONFIG: &[Field] = &[field("name", Str, 2, MAX), field("value", NullableStr, 2, MAX)];

/// `DeleteTopicsRequest` (crate versions 1-6).
const DELETE_TOPICS: &[Field] = &[
    field("topics", Array(&Struct(DELETE_TOPICS_TOPIC_STATE)), 6, MAX),
    field("topic_names", Array(&Str), 1, 5),
    field("timeout_ms", Int32, 1, MAX),
];

/// `DeleteTopicState` (crate versions 1-6).
const DELETE_TOPICS_TOPIC_STATE: &[Field] = &[field("name", NullableStr, 6, MAX), field("topic_id", Uuid, 6, MAX)];

/// `DeleteRecordsRequest` (crate versions 0-2).
const DELETE_RECORDS: &[Field] = &[field("topics", Array(&Struct(DELETE_RECORDS_TOPIC)), 0, MAX), field("timeout_ms", Int32, 0, MAX)];

/// `DeleteRecordsTopic` (crate versions 0-2).
const DELETE_RECORDS_TOPIC: &[Field] = &[field("name", Str, 0, MAX), field("partitions", Array(&Struct(DELETE_RECORDS_PARTITION)), 0, MAX)];

/// `DeleteRecordsPartition` (crate versions 0-2).
const DELETE_RECORDS_PARTITION: &[Field] = &[field("partition_index", Int32, 0, MAX), field("offset", Int64, 0, MAX)];

/// `InitProducerIdRequest` (crate versions 0-5).
const INIT_PRODUCER_ID: &[Field] = &[
    field("transactional_id", NullableStr, 0, MAX),
    field("transaction_timeout_ms", Int32, 0, MAX),
    field("producer_id", Int64, 3, MAX),
    field("producer_epoch", Int16, 3, MAX),
];

/// `OffsetForLeaderEpochRequest` (crate versions 2-4).
const OFFSET_FOR_LEADER_EPOCH: &[Field] =
    &[field("replica_id", Int32, 3, MAX), field("topics", Array(&Struct(OFFSET_FOR_LEADER_EPOCH_TOPIC)), 2, MAX)];

/// `OffsetForLeaderTopic` (crate versions 2-4).
const OFFSET_FOR_LEADER_EPOCH_TOPIC: &[Field] =
    &[field("topic", Str, 2, MAX), field("partitions", Array(&Struct(OFFSET_FOR_LEADER_EPOCH_PARTITION)), 2, MAX)];

/// `OffsetForLeaderPartition` (crate versions 2-4).
const OFFSET_FOR_LEADER_EPOCH_PARTITION: &[Field] =
    &[field("partition", Int32, 2, MAX), field("current_leader_epoch", Int32, 2, MAX), field("leader_epoch", Int32, 2, MAX)];

/// `AddPartitionsToTxnRequest` (crate versions 0-5).
const ADD_PARTITIONS_TO_TXN: &[Field] = &[
    field("transactions", Array(&Struct(ADD_PARTITIONS_TO_TXN_TRANSACTION)), 4, MAX),
    field("v3_and_below_transactional_id", Str, 0, 3),
    field("v3_and_below_producer_id", Int64, 0, 3),
    field("v3_and_below_producer_epoch", Int16, 0, 3),
    field("v3_and_below_topics", Array(&Struct(ADD_PARTITIONS_TO_TXN_TOPIC)), 0, 3),
];

/// `AddPartitionsToTxnTransaction` (crate versions 0-5).
const ADD_PARTITIONS_TO_TXN_TRANSACTION: &[Field] = &[
    field("transactional_id", Str, 4, MAX),
    field("producer_id", Int64, 4, MAX),
    field("producer_epoch", Int16, 4, MAX),
    field("verify_only", Bool, 4, MAX),
    field("topics", Array(&Struct(ADD_PARTITIONS_TO_TXN_TOPIC)), 4, MAX),
];

/// `AddPartitionsToTxnTopic` (crate versions 0-5).
const ADD_PARTITIONS_TO_TXN_TOPIC: &[Field] = &[field("name", Str, 0, MAX), field("partitions", Array(&Int32), 0, MAX)];

/// `AddOffsetsToTxnRequest` (crate versions 0-4).
const ADD_OFFSETS_TO_TXN: &[Field] = &[
    field("transactional_id", Str, 0, MAX),
    field("producer_id", Int64, 0, MAX),
    field("producer_epoch", Int16, 0, MAX),
    field("group_id", Str, 0, MAX),
];

/// `EndTxnRequest` (crate versions 0-5).
const END_TXN: &[Field] = &[
    field("transactional_id", Str, 0, MAX),
    field("producer_id", Int64, 0, MAX),
    field("producer_epoch", Int16, 0, MAX),
    field("committed", Bool, 0, MAX),
];

/// `TxnOffsetCommitRequest` (crate versions 0-5).
const TXN_OFFSET_COMMIT: &[Field] = &[
    field("transactional_id", Str, 0, MAX),
    field("group_id", Str, 0, MAX),
    field("producer_id", Int64, 0, MAX),
    field("producer_epoch", Int16, 0, MAX),
    field("generation_id", Int32, 3, MAX),
    field("member_id", Str, 3, MAX),
    field("group_instance_id", NullableStr, 3, MAX),
    field("topics", Array(&Struct(TXN_OFFSET_COMMIT_TOPIC)), 0, MAX),
];

/// `TxnOffsetCommitRequestTopic` (crate versions 0-5).
const TXN_OFFSET_COMMIT_TOPIC: &[Field] =
    &[field("name", Str, 0, MAX), field("partitions", Array(&Struct(TXN_OFFSET_COMMIT_PARTITION)), 0, MAX)];

/// `TxnOffsetCommitRequestPartition` (crate versions 0-5).
const TXN_OFFSET_COMMIT_PARTITION: &[Field] = &[
    field("partition_index", Int32, 0, MAX),
    field("committed_offset", Int64, 0, MAX),
    field("committed_leader_epoch", Int32, 2, MAX),
    field("committed_metadata", NullableStr, 0, MAX),
];

/// `DescribeAclsRequest` (crate versions 1-3).
const DESCRIBE_ACLS: &[Field] = &[
    field("resource_type_filter", Int8, 1, MAX),
    field("resource_name_filter", NullableStr, 1, MAX),
    field("pattern_type_filter", Int8, 1, MAX),
    field("principal_filter", NullableStr, 1, MAX),
    field("host_filter", NullableStr, 1, MAX),
    field("operation", Int8, 1, MAX),
    field("permission_type", Int8, 1, MAX),
];

/// `DescribeConfigsRequest` (crate versions 1-4).
const DESCRIBE_CONFIGS: &[Field] = &[
    field("resources", Array(&Struct(DESCRIBE_CONFIGS_RESOURCE)), 1, MAX),
    field("include_synonyms", Bool, 1, MAX),
    field("include_documentation", Bool, 3, MAX),
];

/// `DescribeConfigsResource` (crate versions 1-4).
const DESCRIBE_CONFIGS_RESOURCE: &[Field] =
    &[field("resource_type", Int8, 1, MAX), field("resource_name", Str, 1, MAX), field("configuration_keys", NullableArray(&Str), 1, MAX)];

/// `AlterConfigsRequest` (crate versions 0-2).
const ALTER_CONFIGS: &[Field] = &[field("resources", Array(&Struct(ALTER_CONFIGS_RESOURCE)), 0, MAX), field("validate_only", Bool, 0, MAX)];

/// `AlterConfigsResource` (crate versions 0-2).
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    field("resource_type", Int8, 0, MAX),
    field("resource_name", Str, 0, MAX),
    field("configs", Array(&Struct(ALTER_CONFIGS_ALTERABLE_CONFIG)), 0, MAX),
];

/// `AlterableConfig` (crate versions 0-2).
const ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] = &[field("name", Str, 0, MAX), field("value", NullableStr, 0, MAX)];

/// `DescribeLogDirsRequest` (crate versions 1-4).
const DESCRIBE_LOG_DIRS: &[Field] = &[field("topics", NullableArray(&Struct(DESCRIBE_LOG_DIRS_TOPIC)), 1, MAX)];

/// `DescribableLogDirTopic` (crate versions 1-4).
const DESCRIBE_LOG_DIRS_TOPIC: &[Field] = &[field("topic", Str, 1, MAX), field("partitions", Array(&Int32), 1, MAX)];

/// `CreatePartitionsRequest` (crate versions 0-3).
const CREATE_PARTITIONS: &[Field] = &[
    field("topics", Array(&Struct(CREATE_PARTITIONS_TOPIC)), 0, MAX),
    field("timeout_ms", Int32, 0, MAX),
    field("validate_only", Bool, 0, MAX),
];

/// `CreatePartitionsTopic` (crate versions 0-3).
const CREATE_PARTITIONS_TOPIC: &[Field] = &[
    field("name", Str, 0, MAX),
    field("count", Int32, 0, MAX),
    field("assignments", NullableArray(&Struct(CREATE_PARTITIONS_ASSIGNMENT)), 0, MAX),
];

/// `CreatePartitionsAssignment` (crate versions 0-3).
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[field("broker_ids", Array(&Int32), 0, MAX)];

/// `DeleteGroupsRequest` (crate versions 0-2).
const DELETE_GROUPS: &[Field] = &[field("groups_names", Array(&Str), 0, MAX)];

/// `IncrementalAlterConfigsRequest` (crate versions 0-1).
const INCREMENTAL_ALTER_CONFIGS: &[Field] =
    &[field("resources", Array(&Struct(INCREMENTAL_ALTER_CONFIGS_RESOURCE)), 0, MAX), field("validate_only", Bool, 0, MAX)];

/// `AlterConfigsResource` (crate versions 0-1).
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: &[Field] = &[
    field("resource_type", Int8, 0, MAX),
    field("resource_name", Str, 0, MAX),
    field("configs", Array(&Struct(INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG)), 0, MAX),
];

/// `AlterableConfig` (crate versions 0-1).
const INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] =
    &[field("name", Str, 0, MAX), field("config_operation", Int8, 0, MAX), field("value", NullableStr, 0, MAX)];

/// `OffsetDeleteRequest` (crate versions 0-0).
const OFFSET_DELETE: &[Field] = &[field("group_id", Str, 0, MAX), field("topics", Array(&Struct(OFFSET_DELETE_TOPIC)), 0, MAX)];

/// `OffsetDeleteRequestTopic` (crate versions 0-0).
const OFFSET_DELETE_TOPIC: &[Field] = &[field("name", Str, 0, MAX), field("partitions", Array(&Struct(OFFSET_DELETE_PARTITION)), 0, MAX)];

/// `OffsetDeleteRequestPartition` (crate versions 0-0).
const OFFSET_DELETE_PARTITION: &[Field] = &[field("partition_index", Int32, 0, MAX)];

/// `DescribeClusterRequest` (crate versions 0-2).
const DESCRIBE_CLUSTER: &[Field] = &[
    field("include_cluster_authorized_operations", Bool, 0, MAX),
    field("endpoint_type", Int8, 1, MAX),
    field("include_fenced_brokers", Bool, 2, MAX),
];

/// `DescribeProducersRequest` (crate versions 0-0).
const DESCRIBE_PRODUCERS: &[Field] = &[field("topics", Array(&Struct(DESCRIBE_PRODUCERS_TOPIC)), 0, MAX)];

/// `TopicRequest` (crate versions 0-0).
const DESCRIBE_PRODUCERS_TOPIC: &[Field] = &[field("name", Str, 0, MAX), field("partition_indexes", Array(&Int32), 0, MAX)];

/// `DescribeTransactionsRequest` (crate versions 0-0).
const DESCRIBE_TRANSACTIONS: &[Field] = &[field("transactional_ids", Array(&Str), 0, MAX)];

/// `ListTransactionsRequest` (crate versions 0-2).
const LIST_TRANSACTIONS: &[Field] = &[
    field("state_filters", Array(&Str), 0, MAX),
    field("producer_id_filters", Array(&Int64), 0, MAX),
    field("duration_filter", Int64, 1, MAX),
    field("transactional_id_pattern", NullableStr, 2, MAX),
];

/// `ConsumerGroupHeartbeatRequest` (crate versions 0-1).
const CONSUMER_GROUP_HEARTBEAT: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("member_id", Str, 0, MAX),
    field("member_epoch", Int32, 0, MAX),
    field("instance_id", NullableStr, 0, MAX),
    field("rack_id", NullableStr, 0, MAX),
    field("rebalance_timeout_ms", Int32, 0, MAX),
    field("subscribed_topic_names", NullableArray(&Str), 0, MAX),
    field("subscribed_topic_regex", NullableStr, 1, MAX),
    field("server_assignor", NullableStr, 0, MAX),
    field("topic_partitions", NullableArray(&Struct(CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS)), 0, MAX),
];

/// `TopicPartitions` (crate versions 0-1).
const CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS: &[Field] = &[field("topic_id", Uuid, 0, MAX), field("partitions", Array(&Int32), 0, MAX)];

/// `ConsumerGroupDescribeRequest` (crate versions 0-1).
const CONSUMER_GROUP_DESCRIBE: &[Field] = &[field("group_ids", Array(&Str), 0, MAX), field("include_authorized_operations", Bool, 0, MAX)];

/// `CreateAclsRequest` (crate versions 1-3).
const CREATE_ACLS: &[Field] = &[field("creations", Array(&Struct(CREATE_ACLS_CREATION)), 1, MAX)];

/// `AclCreation` (crate versions 1-3).
const CREATE_ACLS_CREATION: &[Field] = &[
    field("resource_type", Int8, 1, MAX),
    field("resource_name", Str, 1, MAX),
    field("resource_pattern_type", Int8, 1, MAX),
    field("principal", Str, 1, MAX),
    field("host", Str, 1, MAX),
    field("operation", Int8, 1, MAX),
    field("permission_type", Int8, 1, MAX),
];

/// `DeleteAclsRequest` (crate versions 1-3).
const DELETE_ACLS: &[Field] = &[field("filters", Array(&Struct(DELETE_ACLS_FILTER)), 1, MAX)];

/// `DeleteAclsFilter` (crate versions 1-3).
const DELETE_ACLS_FILTER: &[Field] = &[
    field("resource_type_filter", Int8, 1, MAX),
    field("resource_name_filter", NullableStr, 1, MAX),
    field("pattern_type_filter", Int8, 1, MAX),
    field("principal_filter", NullableStr, 1, MAX),
    field("host_filter", NullableStr, 1, MAX),
    field("operation", Int8, 1, MAX),
    field("permission_type", Int8, 1, MAX),
];

/// `AlterReplicaLogDirsRequest` (crate versions 1-2).
const ALTER_REPLICA_LOG_DIRS: &[Field] = &[field("dirs", Array(&Struct(ALTER_REPLICA_LOG_DIRS_DIR)), 1, MAX)];

/// `AlterReplicaLogDir` (crate versions 1-2).
const ALTER_REPLICA_LOG_DIRS_DIR: &[Field] =
    &[field("path", Str, 1, MAX), field("topics", Array(&Struct(ALTER_REPLICA_LOG_DIRS_TOPIC)), 1, MAX)];

/// `AlterReplicaLogDirTopic` (crate versions 1-2).
const ALTER_REPLICA_LOG_DIRS_TOPIC: &[Field] = &[field("name", Str, 1, MAX), field("partitions", Array(&Int32), 1, MAX)];

/// `SaslAuthenticateRequest` (crate versions 0-2).
const SASL_AUTHENTICATE: &[Field] = &[field("auth_bytes", Bytes, 0, MAX)];

/// `ElectLeadersRequest` (crate versions 0-2).
const ELECT_LEADERS: &[Field] = &[
    field("election_type", Int8, 1, MAX),
    field("topic_partitions", NullableArray(&Struct(ELECT_LEADERS_TOPIC_PARTITIONS)), 0, MAX),
    field("timeout_ms", Int32, 0, MAX),
];

/// `TopicPartitions` (crate versions 0-2).
const ELECT_LEADERS_TOPIC_PARTITIONS: &[Field] = &[field("topic", Str, 0, MAX), field("partitions", Array(&Int32), 0, MAX)];

/// `AlterPartitionReassignmentsRequest` (crate versions 0-1).
const ALTER_PARTITION_REASSIGNMENTS: &[Field] = &[
    field("timeout_ms", Int32, 0, MAX),
    field("allow_replication_factor_change", Bool, 1, MAX),
    field("topics", Array(&Struct(ALTER_PARTITION_REASSIGNMENTS_TOPIC)), 0, MAX),
];

/// `ReassignableTopic` (crate versions 0-1).
const ALTER_PARTITION_REASSIGNMENTS_TOPIC: &[Field] =
    &[field("name", Str, 0, MAX), field("partitions", Array(&Struct(ALTER_PARTITION_REASSIGNMENTS_PARTITION)), 0, MAX)];

/// `ReassignablePartition` (crate versions 0-1).
const ALTER_PARTITION_REASSIGNMENTS_PARTITION: &[Field] =
    &[field("partition_index", Int32, 0, MAX), field("replicas", NullableArray(&Int32), 0, MAX)];

/// `ListPartitionReassignmentsRequest` (crate versions 0-0).
const LIST_PARTITION_REASSIGNMENTS: &[Field] =
    &[field("timeout_ms", Int32, 0, MAX), field("topics", NullableArray(&Struct(LIST_PARTITION_REASSIGNMENTS_TOPIC)), 0, MAX)];

/// `ListPartitionReassignmentsTopics` (crate versions 0-0).
const LIST_PARTITION_REASSIGNMENTS_TOPIC: &[Field] = &[field("name", Str, 0, MAX), field("partition_indexes", Array(&Int32), 0, MAX)];

/// `DescribeClientQuotasRequest` (crate versions 0-1).
const DESCRIBE_CLIENT_QUOTAS: &[Field] =
    &[field("components", Array(&Struct(DESCRIBE_CLIENT_QUOTAS_COMPONENT)), 0, MAX), field("strict", Bool, 0, MAX)];

/// `ComponentData` (crate versions 0-1).
const DESCRIBE_CLIENT_QUOTAS_COMPONENT: &[Field] =
    &[field("entity_type", Str, 0, MAX), field("match_type", Int8, 0, MAX), field("match", NullableStr, 0, MAX)];

/// `AlterClientQuotasRequest` (crate versions 0-1).
const ALTER_CLIENT_QUOTAS: &[Field] =
    &[field("entries", Array(&Struct(ALTER_CLIENT_QUOTAS_ENTRY)), 0, MAX), field("validate_only", Bool, 0, MAX)];

/// `EntryData` (crate versions 0-1).
const ALTER_CLIENT_QUOTAS_ENTRY: &[Field] =
    &[field("entity", Array(&Struct(ALTER_CLIENT_QUOTAS_ENTITY)), 0, MAX), field("ops", Array(&Struct(ALTER_CLIENT_QUOTAS_OP)), 0, MAX)];

/// `EntityData` (crate versions 0-1).
const ALTER_CLIENT_QUOTAS_ENTITY: &[Field] = &[field("entity_type", Str, 0, MAX), field("entity_name", NullableStr, 0, MAX)];

/// `OpData` (crate versions 0-1).
const ALTER_CLIENT_QUOTAS_OP: &[Field] = &[field("key", Str, 0, MAX), field("value", Float64, 0, MAX), field("remove", Bool, 0, MAX)];

/// `DescribeUserScramCredentialsRequest` (crate versions 0-0).
const DESCRIBE_USER_SCRAM_CREDENTIALS: &[Field] = &[field("users", NullableArray(&Struct(DESCRIBE_USER_SCRAM_CREDENTIALS_USER)), 0, MAX)];

/// `UserName` (crate versions 0-0).
const DESCRIBE_USER_SCRAM_CREDENTIALS_USER: &[Field] = &[field("name", Str, 0, MAX)];

/// `AlterUserScramCredentialsRequest` (crate versions 0-0).
const ALTER_USER_SCRAM_CREDENTIALS: &[Field] = &[
    field("deletions", Array(&Struct(ALTER_USER_SCRAM_CREDENTIALS_DELETION)), 0, MAX),
    field("upsertions", Array(&Struct(ALTER_USER_SCRAM_CREDENTIALS_UPSERTION)), 0, MAX),
];

/// `ScramCredentialDeletion` (crate versions 0-0).
const ALTER_USER_SCRAM_CREDENTIALS_DELETION: &[Field] = &[field("name", Str, 0, MAX), field("mechanism", Int8, 0, MAX)];

/// `ScramCredentialUpsertion` (crate versions 0-0).
const ALTER_USER_SCRAM_CREDENTIALS_UPSERTION: &[Field] = &[
    field("name", Str, 0, MAX),
    field("mechanism", Int8, 0, MAX),
    field("iterations", Int32, 0, MAX),
    field("salt", Bytes, 0, MAX),
    field("salted_password", Bytes, 0, MAX),
];

/// `UpdateFeaturesRequest` (crate versions 0-2).
const UPDATE_FEATURES: &[Field] = &[
    field("timeout_ms", Int32, 0, MAX),
    field("feature_updates", Array(&Struct(UPDATE_FEATURES_UPDATE)), 0, MAX),
    field("validate_only", Bool, 1, MAX),
];

/// `FeatureUpdateKey` (crate versions 0-2).
const UPDATE_FEATURES_UPDATE: &[Field] = &[
    field("feature", Str, 0, MAX),
    field("max_version_level", Int16, 0, MAX),
    field("allow_downgrade", Bool, 0, 0),
    field("upgrade_type", Int8, 1, MAX),
];

/// `GetTelemetrySubscriptionsRequest` (crate versions 0-0).
const GET_TELEMETRY_SUBSCRIPTIONS: &[Field] = &[field("client_instance_id", Uuid, 0, MAX)];

/// `PushTelemetryRequest` (crate versions 0-0).
const PUSH_TELEMETRY: &[Field] = &[
    field("client_instance_id", Uuid, 0, MAX),
    field("subscription_id", Int32, 0, MAX),
    field("terminating", Bool, 0, MAX),
    field("compression_type", Int8, 0, MAX),
    field("metrics", Bytes, 0, MAX),
];

/// `ListConfigResourcesRequest` (crate versions 0-1).
const LIST_CONFIG_RESOURCES: &[Field] = &[field("resource_types", Array(&Int8), 1, MAX)];

/// `DescribeTopicPartitionsRequest` (crate versions 0-0).
const DESCRIBE_TOPIC_PARTITIONS: &[Field] = &[
    field("topics", Array(&Struct(DESCRIBE_TOPIC_PARTITIONS_TOPIC)), 0, MAX),
    field("response_partition_limit", Int32, 0, MAX),
    field("cursor", NullableStruct(DESCRIBE_TOPIC_PARTITIONS_CURSOR), 0, MAX),
];

/// `TopicRequest` (crate versions 0-0).
const DESCRIBE_TOPIC_PARTITIONS_TOPIC: &[Field] = &[field("name", Str, 0, MAX)];

/// `Cursor` (crate versions 0-0).
const DESCRIBE_TOPIC_PARTITIONS_CURSOR: &[Field] = &[field("topic_name", Str, 0, MAX), field("partition_index", Int32, 0, MAX)];
