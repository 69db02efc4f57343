//! The shard's vocabulary: its settings, the inputs it takes, and what it hands back (answers,
//! timers, and the records and replies of one step).

use bytes::Bytes;

use crate::coordinator::RequestId;
use crate::coordinator::group::Protocol;
use crate::coordinator::record::Record;
use crate::error::ErrorCode;

/// The settings a shard acts on.
#[derive(Debug, Clone)]
pub struct ShardConfig {
    pub initial_rebalance_delay_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    pub max_size: usize,
    pub offsets_retention_ms: i64,
    pub offsets_retention_check_interval_ms: i64,
    pub offset_metadata_max_bytes: usize,
    /// Consumer-protocol (KIP-848) groups.
    pub consumer_session_timeout_ms: i32,
    pub consumer_heartbeat_interval_ms: i32,
    pub consumer_max_size: usize,
    /// The server-side assignors; the first is the default.
    pub consumer_assignors: Vec<crate::coordinator::consumer::Assignor>,
}

impl ShardConfig {
    pub fn from_config(c: &crate::config::Config) -> Self {
        ShardConfig {
            initial_rebalance_delay_ms: c.group_initial_rebalance_delay_ms,
            min_session_timeout_ms: c.group_min_session_timeout_ms,
            max_session_timeout_ms: c.group_max_session_timeout_ms,
            max_size: c.group_max_size as usize,
            offsets_retention_ms: c.offsets_retention_ms(),
            offsets_retention_check_interval_ms: c.offsets_retention_check_interval_ms,
            offset_metadata_max_bytes: c.offset_metadata_max_bytes as usize,
            consumer_session_timeout_ms: c.group_consumer_session_timeout_ms,
            consumer_heartbeat_interval_ms: c.group_consumer_heartbeat_interval_ms,
            consumer_max_size: c.group_consumer_max_size as usize,
            consumer_assignors: c.group_consumer_assignors.clone(),
        }
    }
}

/// What a timer is for. Setting a key replaces its previous deadline; a cancelled or replaced
/// timer never fires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TimerKey {
    /// A member's session (or a pending member's, or a new member's join timeout).
    Heartbeat { group: String, member: String },
    /// The end of a join phase: the initial delay, or the rebalance timeout.
    Join { group: String },
    /// Members that have not sent SyncGroup for this generation by then are removed.
    Sync { group: String, generation: i32 },
    /// The periodic offset expiry sweep of the shard.
    OffsetExpiry,
    /// A consumer-protocol member's session.
    ConsumerSession { group: String, member: String },
    /// A consumer-protocol member that must revoke partitions by then, at this epoch.
    ConsumerRevoke { group: String, member: String, epoch: i32 },
    /// A classic member of a consumer group told to rejoin must have by then.
    ConsumerClassicJoin { group: String, member: String },
}

/// A timer request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerOp {
    Set(TimerKey, i64),
    Cancel(TimerKey),
}

/// How member ids are made: random UUIDs in production, a counter in tests.
#[derive(Debug, Clone)]
pub enum IdSource {
    Random,
    Counter(u64),
}

/// A JoinGroup, as the shard sees it.
#[derive(Debug, Clone)]
pub struct JoinInput {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    pub protocol_type: String,
    pub protocols: Vec<Protocol>,
    pub version: i16,
}

/// One member in the leader's JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinResult {
    pub error: ErrorCode,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub skip_assignment: bool,
    pub member_id: String,
    pub members: Vec<JoinMember>,
}

impl JoinResult {
    pub fn error(error: ErrorCode, member_id: &str) -> Self {
        JoinResult {
            error,
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup, as the shard sees it.
#[derive(Debug, Clone)]
pub struct SyncInput {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncResult {
    pub error: ErrorCode,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

impl SyncResult {
    pub fn error(error: ErrorCode) -> Self {
        SyncResult { error, protocol_type: None, protocol_name: None, assignment: Bytes::new() }
    }
}

/// A Heartbeat.
#[derive(Debug, Clone)]
pub struct HeartbeatInput {
    pub group_id: String,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub generation_id: i32,
}

/// A LeaveGroup (always in the batch form of v3+).
#[derive(Debug, Clone)]
pub struct LeaveInput {
    pub group_id: String,
    pub members: Vec<(String, Option<String>)>,
}

/// A LeaveGroup answer: a top-level error and one per member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveResult {
    pub error: ErrorCode,
    /// In request order.
    pub members: Vec<MemberError>,
}

/// One member of a LeaveGroup answer: the ids it was named by, and its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberError {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub error: ErrorCode,
}

/// One partition of an OffsetCommit.
#[derive(Debug, Clone)]
pub struct CommitPartition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
}

/// An OffsetCommit (after the API layer removed unknown topics and partitions).
#[derive(Debug, Clone)]
pub struct CommitInput {
    pub group_id: String,
    pub generation_id: i32,
    pub member_id: String,
    pub group_instance_id: Option<String>,
    /// v2-4 `retention_time_ms`; -1 = the broker default.
    pub retention_time_ms: i64,
    pub version: i16,
    pub partitions: Vec<CommitPartition>,
    /// TxnOffsetCommit: the producer whose transaction the offsets belong to (they stay
    /// pending until its transaction ends).
    pub producer_id: Option<i64>,
}

/// An OffsetDelete answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetDeleteResult {
    pub error: ErrorCode,
    /// In request order.
    pub partitions: Vec<PartitionError>,
}

/// One partition of an OffsetDelete answer, and its error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionError {
    pub topic: String,
    pub partition: i32,
    pub error: ErrorCode,
}

/// An answer to a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Join(JoinResult),
    Sync(SyncResult),
    Heartbeat(ErrorCode),
    Leave(LeaveResult),
    /// One error per partition, in request order.
    Commit(Vec<ErrorCode>),
    DeleteGroup(ErrorCode),
    /// A transaction's end applied to this shard's pending offsets.
    TxnEnded,
    OffsetDelete(OffsetDeleteResult),
    /// A ConsumerGroupHeartbeat's answer.
    ConsumerHeartbeat(crate::coordinator::consumer::HeartbeatResult),
}

/// What handling one input produced.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Output {
    pub records: Vec<Record>,
    pub replies: Vec<(RequestId, Reply)>,
    pub timers: Vec<TimerOp>,
}

/// A committed offset as OffsetFetch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
}

impl FetchedOffset {
    /// What a partition without a committed offset reports: offset and epoch -1, metadata "".
    pub fn absent() -> Self {
        FetchedOffset { offset: -1, leader_epoch: -1, metadata: String::new() }
    }
}

/// One partition of an OffsetFetch answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchedPartition {
    pub topic: String,
    pub partition: i32,
    pub committed: FetchedOffset,
    /// UNSTABLE_OFFSET_COMMIT when a RequireStable fetch meets a pending transactional offset.
    pub error: ErrorCode,
}

/// A DescribeGroups answer for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub state: &'static str,
    pub protocol_type: String,
    pub protocol_data: String,
    pub members: Vec<DescribedMember>,
    /// A consumer group (KIP-848): DescribeGroups shows it as Dead (from v6: not found).
    pub not_classic: bool,
}

/// One member of a DescribeGroups answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// Its metadata for the group's protocol; empty unless the group is Stable.
    pub metadata: Bytes,
    pub assignment: Bytes,
}

/// A ListGroups entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    pub group_id: String,
    /// "" for a group that only commits offsets (a simple group).
    pub protocol_type: String,
    pub state: &'static str,
    /// "classic" or "consumer" (KIP-848).
    pub group_type: &'static str,
}
