//! The coordinator's records, in the exact key and value schemas of Kafka's
//! `__consumer_offsets` topic, so the same bytes can be written to a real Kafka compacted topic.
//!
//! A record is a key and a nullable value, each starting with an int16 version. The key version
//! is the record type: 0 and 1 are OffsetCommit keys `{group, topic, partition}`, 2 is a
//! GroupMetadata key `{group}`; a null value is a tombstone. Types 3 to 8 are the consumer groups
//! of KIP-848 ([`ConsumerRecord`]); other types (share and streams groups) are skipped when
//! read, as Kafka's loader skips unknown types.
//!
//! Writers use key version 1 for offsets, value version 3 (or 1 when the commit carries an
//! explicit expire timestamp), and GroupMetadata value version 3, as Kafka does. Readers accept
//! OffsetCommit values 0-4 and GroupMetadata values 0-4.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::consumer::assignor::Assignment;

/// A record as stored: key bytes and value bytes (`None` = tombstone).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// A committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetValue {
    pub offset: i64,
    /// -1 when the client sent none.
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only from OffsetCommit v2-4 with an explicit retention time.
    pub expire_timestamp: Option<i64>,
}

/// One member as a GroupMetadata record stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the selected protocol only.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

/// A classic group's durable snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupValue {
    /// "" when the group has no protocol type.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// When the group entered its current state; -1 if unknown.
    pub current_state_timestamp: i64,
    pub members: Vec<MemberValue>,
}

/// A decoded coordinator record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    Group {
        group: String,
        value: Option<GroupValue>,
    },
    /// A transactional offset (TxnOffsetCommit) waiting for its producer's transaction to
    /// end: made a committed offset by the COMMIT, dropped by the ABORT (both write this key's
    /// tombstone). corral's own record type ([`PENDING_OFFSET_KEY_VERSION`]): Kafka keeps
    /// these as OffsetCommit records inside a transactional batch, which a keyed log has no
    /// place for. The value is an OffsetCommit value.
    PendingOffset {
        producer_id: i64,
        group: String,
        topic: String,
        partition: i32,
        value: Option<OffsetValue>,
    },
    /// A record of a consumer group (KIP-848), types 3 to 8.
    Consumer(ConsumerRecord),
    /// A record type corral does not handle; skipped.
    Unknown {
        key_version: i16,
    },
}

/// A subscribed topic as a consumer group's subscription metadata (type 4) records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
}

/// A consumer-group member's metadata (type 5): who it is and what it subscribes to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerMemberValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Set for a member of the classic protocol in a consumer group (tagged field 0).
    pub classic: Option<ClassicMemberMeta>,
}

/// What a consumer group keeps of a member that joined with JoinGroup: its session timeout and
/// the protocols it offered (ClassicMemberMetadata).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMeta {
    pub session_timeout_ms: i32,
    pub protocols: Vec<(String, Bytes)>,
}

/// A consumer-group member's current assignment (type 8): the epoch it reconciled to and the
/// partitions it owns or must revoke.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// Kafka's MemberState: 0 stable, 1 unrevoked partitions, 2 unreleased partitions.
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// The records of a consumer group (KIP-848), each with its key; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerRecord {
    /// Type 3: the group epoch.
    GroupEpoch { group: String, epoch: Option<i32> },
    /// Type 4: the subscribed topics' metadata.
    SubscriptionMetadata { group: String, topics: Option<Vec<TopicMetadata>> },
    /// Type 5: a member's metadata.
    Member { group: String, member: String, value: Option<ConsumerMemberValue> },
    /// Type 6: the target assignment's epoch.
    TargetEpoch { group: String, epoch: Option<i32> },
    /// Type 7: a member's target assignment.
    TargetMember { group: String, member: String, value: Option<Assignment> },
    /// Type 8: a member's current assignment.
    CurrentAssignment { group: String, member: String, value: Option<CurrentAssignmentValue> },
}

impl ConsumerRecord {
    /// The group the record belongs to.
    pub fn group(&self) -> &str {
        match self {
            ConsumerRecord::GroupEpoch { group, .. }
            | ConsumerRecord::SubscriptionMetadata { group, .. }
            | ConsumerRecord::Member { group, .. }
            | ConsumerRecord::TargetEpoch { group, .. }
            | ConsumerRecord::TargetMember { group, .. }
            | ConsumerRecord::CurrentAssignment { group, .. } => group,
        }
    }

    fn encode(&self) -> RawRecord {
        let mut k = BytesMut::new();
        let key = |k: &mut BytesMut, version: i16, group: &str, member: Option<&str>| {
            k.put_i16(version);
            put_str(k, group);
            if let Some(m) = member {
                put_str(k, m);
            }
        };
        // every value is version 0 of a flexible schema: compact fields, then tagged fields
        // `f` writes the fields; an empty tagged-field section ends them unless `f` writes its own
        let value_tagged = |f: &dyn Fn(&mut BytesMut), writes_tags: bool| {
            let mut b = BytesMut::new();
            b.put_i16(0);
            f(&mut b);
            if !writes_tags {
                put_uvarint(&mut b, 0);
            }
            b.freeze()
        };
        let value = |f: &dyn Fn(&mut BytesMut)| value_tagged(f, false);
        let value = match self {
            ConsumerRecord::GroupEpoch { group, epoch } => {
                key(&mut k, 3, group, None);
                epoch.map(|e| value(&|b| b.put_i32(e)))
            }
            ConsumerRecord::SubscriptionMetadata { group, topics } => {
                key(&mut k, 4, group, None);
                topics.as_ref().map(|topics| {
                    value(&|b| {
                        put_uvarint(b, topics.len() as u32 + 1);
                        for t in topics {
                            b.put_slice(t.id.as_bytes());
                            put_compact_str(b, Some(&t.name));
                            b.put_i32(t.partitions);
                            put_uvarint(b, 1); // PartitionMetadata (racks): none
                            put_uvarint(b, 0);
                        }
                    })
                })
            }
            ConsumerRecord::Member { group, member, value: v } => {
                key(&mut k, 5, group, Some(member));
                v.as_ref().map(|v| {
                    value_tagged(
                        &|b| {
                            put_compact_str(b, v.instance_id.as_deref());
                            put_compact_str(b, v.rack_id.as_deref());
                            put_compact_str(b, Some(&v.client_id));
                            put_compact_str(b, Some(&v.client_host));
                            put_uvarint(b, v.subscribed_topic_names.len() as u32 + 1);
                            for t in &v.subscribed_topic_names {
                                put_compact_str(b, Some(t));
                            }
                            put_compact_str(b, v.subscribed_topic_regex.as_deref());
                            b.put_i32(v.rebalance_timeout_ms);
                            put_compact_str(b, v.server_assignor.as_deref());
                            if let Some(c) = &v.classic {
                                // tagged field 0: ClassicMemberMetadata (the caller writes no tags of its own)
                                let mut t = BytesMut::new();
                                t.put_i32(c.session_timeout_ms);
                                put_uvarint(&mut t, c.protocols.len() as u32 + 1);
                                for (name, meta) in &c.protocols {
                                    put_compact_str(&mut t, Some(name));
                                    put_uvarint(&mut t, meta.len() as u32 + 1);
                                    t.put_slice(meta);
                                    put_uvarint(&mut t, 0);
                                }
                                put_uvarint(&mut t, 0);
                                put_uvarint(b, 1);
                                put_uvarint(b, 0);
                                put_uvarint(b, t.len() as u32);
                                b.put_slice(&t);
                            } else {
                                put_uvarint(b, 0);
                            }
                        },
                        true,
                    )
                })
            }
            ConsumerRecord::TargetEpoch { group, epoch } => {
                key(&mut k, 6, group, None);
                epoch.map(|e| value(&|b| b.put_i32(e)))
            }
            ConsumerRecord::TargetMember { group, member, value: v } => {
                key(&mut k, 7, group, Some(member));
                v.as_ref().map(|a| value(&|b| put_assignment(b, a)))
            }
            ConsumerRecord::CurrentAssignment { group, member, value: v } => {
                key(&mut k, 8, group, Some(member));
                v.as_ref().map(|v| {
                    value(&|b| {
                        b.put_i32(v.member_epoch);
                        b.put_i32(v.previous_member_epoch);
                        b.put_i8(v.state);
                        put_assignment(b, &v.assigned);
                        put_assignment(b, &v.pending_revocation);
                    })
                })
            }
        };
        RawRecord { key: k.freeze(), value }
    }

    fn decode(key_version: i16, k: &mut Reader<'_>, value: Option<&[u8]>) -> Result<ConsumerRecord, RecordError> {
        let group = k.string(false)?.ok_or(RecordError("null group"))?;
        let member = if matches!(key_version, 5 | 7 | 8) { Some(k.string(false)?.ok_or(RecordError("null member id"))?) } else { None };
        let mut v = match value {
            None => None,
            Some(v) => {
                let mut r = Reader { b: v };
                if r.i16()? != 0 {
                    return Err(RecordError("unknown consumer group value version"));
                }
                Some(r)
            }
        };
        let member = member.unwrap_or_default();
        let record = match key_version {
            3 => ConsumerRecord::GroupEpoch { group, epoch: v.as_mut().map(|r| r.i32()).transpose()? },
            4 => ConsumerRecord::SubscriptionMetadata { group, topics: v.as_mut().map(decode_topics).transpose()? },
            5 => ConsumerRecord::Member { group, member, value: v.as_mut().map(decode_member).transpose()? },
            6 => ConsumerRecord::TargetEpoch { group, epoch: v.as_mut().map(|r| r.i32()).transpose()? },
            7 => ConsumerRecord::TargetMember { group, member, value: v.as_mut().map(|r| r.assignment()).transpose()? },
            _ => ConsumerRecord::CurrentAssignment { group, member, value: v.as_mut().map(decode_current).transpose()? },
        };
        // the member value read its own tagged fields (ClassicMemberMetadata)
        if let Some(r) = v.as_mut()
            && key_version != 5
        {
            r.skip_tags()?;
        }
        Ok(record)
    }
}

fn decode_topics(r: &mut Reader<'_>) -> Result<Vec<TopicMetadata>, RecordError> {
    let n = r.compact_count(16 + 1 + 4 + 1 + 1)?;
    let mut topics = Vec::with_capacity(n);
    for _ in 0..n {
        let id = r.uuid()?;
        let name = r.string(true)?.ok_or(RecordError("null topic name"))?;
        let partitions = r.i32()?;
        // the partitions' racks: read past them
        for _ in 0..r.compact_count(4 + 1 + 1)? {
            r.i32()?;
            for _ in 0..r.compact_count(1)? {
                r.string(true)?;
            }
            r.skip_tags()?;
        }
        r.skip_tags()?;
        topics.push(TopicMetadata { id, name, partitions });
    }
    Ok(topics)
}

fn decode_member(r: &mut Reader<'_>) -> Result<ConsumerMemberValue, RecordError> {
    let instance_id = r.string(true)?;
    let rack_id = r.string(true)?;
    let client_id = r.string(true)?.unwrap_or_default();
    let client_host = r.string(true)?.unwrap_or_default();
    let n = r.compact_count(1)?;
    let mut subscribed_topic_names = Vec::with_capacity(n);
    for _ in 0..n {
        subscribed_topic_names.push(r.string(true)?.ok_or(RecordError("null topic name"))?);
    }
    let subscribed_topic_regex = r.string(true)?;
    let rebalance_timeout_ms = r.i32()?;
    let server_assignor = r.string(true)?;
    let mut classic = None;
    for _ in 0..r.uvarint()? {
        let tag = r.uvarint()?;
        let size = r.uvarint()? as usize;
        let mut t = Reader { b: r.take(size)? };
        if tag != 0 {
            continue;
        }
        let session_timeout_ms = t.i32()?;
        let mut protocols = Vec::new();
        for _ in 0..t.compact_count(2)? {
            let name = t.string(true)?.ok_or(RecordError("null protocol name"))?;
            let meta = t.bytes(true)?;
            t.skip_tags()?;
            protocols.push((name, meta));
        }
        classic = Some(ClassicMemberMeta { session_timeout_ms, protocols });
    }
    Ok(ConsumerMemberValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
        classic,
    })
}

fn decode_current(r: &mut Reader<'_>) -> Result<CurrentAssignmentValue, RecordError> {
    Ok(CurrentAssignmentValue {
        member_epoch: r.i32()?,
        previous_member_epoch: r.i32()?,
        state: r.i8()?,
        assigned: r.assignment()?,
        pending_revocation: r.assignment()?,
    })
}

fn put_uvarint(b: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        b.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_compact_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            put_uvarint(b, s.len() as u32 + 1);
            b.put_slice(s.as_bytes());
        }
        None => put_uvarint(b, 0),
    }
}

/// `[]TopicPartitions` of the consumer-group records: compact array of {TopicId, Partitions[]}.
fn put_assignment(b: &mut BytesMut, a: &Assignment) {
    put_uvarint(b, a.len() as u32 + 1);
    for (id, partitions) in a {
        b.put_slice(id.as_bytes());
        put_uvarint(b, partitions.len() as u32 + 1);
        for p in partitions {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

/// Key version (record type) of [`Record::PendingOffset`]: far above Kafka's own types, so a
/// Kafka reader skips it as unknown.
pub const PENDING_OFFSET_KEY_VERSION: i16 = 1000;

/// Key version of the fence record a proxy writes to an upstream offsets partition it gains
/// (several proxies sharing the coordinator): its producer's new epoch, which refuses the
/// previous owner's writes from then on. Replay skips it.
pub const FENCE_KEY_VERSION: i16 = 1001;

/// A record that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed coordinator record: {0}")]
pub struct RecordError(pub &'static str);

fn put_str(b: &mut BytesMut, s: &str) {
    b.put_i16(s.len() as i16);
    b.put_slice(s.as_bytes());
}

fn put_nullable_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_str(b, s),
        None => b.put_i16(-1),
    }
}

fn put_bytes(b: &mut BytesMut, v: &[u8]) {
    b.put_i32(v.len() as i32);
    b.put_slice(v);
}

/// A cursor over record bytes that never panics.
struct Reader<'a> {
    b: &'a [u8],
}

impl Reader<'_> {
    fn need(&self, n: usize) -> Result<(), RecordError> {
        if self.b.len() < n { Err(RecordError("truncated")) } else { Ok(()) }
    }
    fn i16(&mut self) -> Result<i16, RecordError> {
        self.need(2)?;
        Ok(self.b.get_i16())
    }
    fn i32(&mut self) -> Result<i32, RecordError> {
        self.need(4)?;
        Ok(self.b.get_i32())
    }
    fn i8(&mut self) -> Result<i8, RecordError> {
        self.need(1)?;
        Ok(self.b.get_i8())
    }
    fn uuid(&mut self) -> Result<Uuid, RecordError> {
        let b: [u8; 16] = self.take(16)?.try_into().map_err(|_| RecordError("truncated"))?;
        Ok(Uuid::from_bytes(b))
    }
    /// A compact array's length (null reads as empty), refused if the rest of the record
    /// cannot hold that many items of at least `min_item` bytes.
    fn compact_count(&mut self, min_item: usize) -> Result<usize, RecordError> {
        let n = (self.uvarint()? as usize).saturating_sub(1);
        if n > self.b.len() / min_item.max(1) {
            return Err(RecordError("array count exceeds the record"));
        }
        Ok(n)
    }
    /// A `[]TopicPartitions` of the consumer-group records.
    fn assignment(&mut self) -> Result<Assignment, RecordError> {
        let mut a = Assignment::new();
        for _ in 0..self.compact_count(16 + 1 + 1)? {
            let id = self.uuid()?;
            let mut partitions = std::collections::BTreeSet::new();
            for _ in 0..self.compact_count(4)? {
                partitions.insert(self.i32()?);
            }
            self.skip_tags()?;
            a.insert(id, partitions);
        }
        Ok(a)
    }
    fn i64(&mut self) -> Result<i64, RecordError> {
        self.need(8)?;
        Ok(self.b.get_i64())
    }
    fn uvarint(&mut self) -> Result<u32, RecordError> {
        let mut v: u32 = 0;
        for i in 0..5 {
            self.need(1)?;
            let byte = self.b.get_u8();
            v |= ((byte & 0x7f) as u32) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(RecordError("varint too long"))
    }
    fn take(&mut self, n: usize) -> Result<&[u8], RecordError> {
        self.need(n)?;
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Ok(head)
    }
    fn string(&mut self, compact: bool) -> Result<Option<String>, RecordError> {
        let len: i64 = if compact { self.uvarint()? as i64 - 1 } else { self.i16()? as i64 };
        if len < 0 {
            return Ok(None);
        }
        let s = self.take(len as usize)?;
        String::from_utf8(s.to_vec()).map(Some).map_err(|_| RecordError("invalid UTF-8"))
    }
    fn bytes(&mut self, compact: bool) -> Result<Bytes, RecordError> {
        let len: i64 = if compact { self.uvarint()? as i64 - 1 } else { self.i32()? as i64 };
        if len < 0 {
            return Ok(Bytes::new());
        }
        Ok(Bytes::copy_from_slice(self.take(len as usize)?))
    }
    fn skip_tags(&mut self) -> Result<(), RecordError> {
        let n = self.uvarint()?;
        for _ in 0..n {
            let _tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            self.take(size)?;
        }
        Ok(())
    }
}

fn encode_offset_value(v: &OffsetValue) -> Bytes {
    let mut b = BytesMut::new();
    match v.expire_timestamp {
        Some(expire) => {
            b.put_i16(1);
            b.put_i64(v.offset);
            put_str(&mut b, &v.metadata);
            b.put_i64(v.commit_timestamp);
            b.put_i64(expire);
        }
        None => {
            b.put_i16(3);
            b.put_i64(v.offset);
            b.put_i32(v.leader_epoch);
            put_str(&mut b, &v.metadata);
            b.put_i64(v.commit_timestamp);
        }
    }
    b.freeze()
}

impl Record {
    /// Encodes the record.
    pub fn encode(&self) -> RawRecord {
        match self {
            Record::Offset { group, topic, partition, value } => {
                let mut k = BytesMut::new();
                k.put_i16(1);
                put_str(&mut k, group);
                put_str(&mut k, topic);
                k.put_i32(*partition);
                RawRecord { key: k.freeze(), value: value.as_ref().map(encode_offset_value) }
            }
            Record::PendingOffset { producer_id, group, topic, partition, value } => {
                let mut k = BytesMut::new();
                k.put_i16(PENDING_OFFSET_KEY_VERSION);
                k.put_i64(*producer_id);
                put_str(&mut k, group);
                put_str(&mut k, topic);
                k.put_i32(*partition);
                RawRecord { key: k.freeze(), value: value.as_ref().map(encode_offset_value) }
            }
            Record::Group { group, value } => {
                let mut k = BytesMut::new();
                k.put_i16(2);
                put_str(&mut k, group);
                let value = value.as_ref().map(|g| {
                    let mut b = BytesMut::new();
                    b.put_i16(3);
                    put_str(&mut b, &g.protocol_type);
                    b.put_i32(g.generation);
                    put_nullable_str(&mut b, g.protocol.as_deref());
                    put_nullable_str(&mut b, g.leader.as_deref());
                    b.put_i64(g.current_state_timestamp);
                    b.put_i32(g.members.len() as i32);
                    for m in &g.members {
                        put_str(&mut b, &m.member_id);
                        put_nullable_str(&mut b, m.group_instance_id.as_deref());
                        put_str(&mut b, &m.client_id);
                        put_str(&mut b, &m.client_host);
                        b.put_i32(m.rebalance_timeout_ms);
                        b.put_i32(m.session_timeout_ms);
                        put_bytes(&mut b, &m.subscription);
                        put_bytes(&mut b, &m.assignment);
                    }
                    b.freeze()
                });
                RawRecord { key: k.freeze(), value }
            }
            Record::Consumer(c) => c.encode(),
            Record::Unknown { .. } => unreachable!("unknown records are never written"),
        }
    }

    /// Decodes a record. Unknown record types decode as [`Record::Unknown`].
    pub fn decode(raw: &RawRecord) -> Result<Record, RecordError> {
        Record::decode_parts(&raw.key, raw.value.as_deref())
    }

    /// Decodes a record from borrowed key and value bytes (as a log replay reads them).
    pub fn decode_parts(key: &[u8], value: Option<&[u8]>) -> Result<Record, RecordError> {
        let mut k = Reader { b: key };
        let key_version = k.i16()?;
        match key_version {
            0 | 1 => {
                let group = k.string(false)?.ok_or(RecordError("null group"))?;
                let topic = k.string(false)?.ok_or(RecordError("null topic"))?;
                let partition = k.i32()?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_offset_value(v)?),
                };
                Ok(Record::Offset { group, topic, partition, value })
            }
            2 => {
                let group = k.string(false)?.ok_or(RecordError("null group"))?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_group_value(v)?),
                };
                Ok(Record::Group { group, value })
            }
            PENDING_OFFSET_KEY_VERSION => {
                let producer_id = k.i64()?;
                let group = k.string(false)?.ok_or(RecordError("null group"))?;
                let topic = k.string(false)?.ok_or(RecordError("null topic"))?;
                let partition = k.i32()?;
                let value = match value {
                    None => None,
                    Some(v) => Some(decode_offset_value(v)?),
                };
                Ok(Record::PendingOffset { producer_id, group, topic, partition, value })
            }
            3..=8 => Ok(Record::Consumer(ConsumerRecord::decode(key_version, &mut k, value)?)),
            v => Ok(Record::Unknown { key_version: v }),
        }
    }

    /// The compaction key: records with equal keys replace each other.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            Record::Offset { group, .. } | Record::Group { group, .. } | Record::PendingOffset { group, .. } => Some(group),
            Record::Consumer(c) => Some(c.group()),
            Record::Unknown { .. } => None,
        }
    }
}

fn decode_offset_value(v: &[u8]) -> Result<OffsetValue, RecordError> {
    let mut r = Reader { b: v };
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(RecordError("unknown OffsetCommit value version"));
    }
    let compact = version >= 4;
    let offset = r.i64()?;
    let leader_epoch = if version >= 3 { r.i32()? } else { -1 };
    let metadata = r.string(compact)?.unwrap_or_default();
    let commit_timestamp = r.i64()?;
    let expire_timestamp = if version == 1 { Some(r.i64()?) } else { None };
    if compact {
        r.skip_tags()?;
    }
    Ok(OffsetValue { offset, leader_epoch, metadata, commit_timestamp, expire_timestamp })
}

fn decode_group_value(v: &[u8]) -> Result<GroupValue, RecordError> {
    let mut r = Reader { b: v };
    let version = r.i16()?;
    if !(0..=4).contains(&version) {
        return Err(RecordError("unknown GroupMetadata value version"));
    }
    let compact = version >= 4;
    let protocol_type = r.string(compact)?.unwrap_or_default();
    let generation = r.i32()?;
    let protocol = r.string(compact)?;
    let leader = r.string(compact)?;
    let current_state_timestamp = if version >= 2 { r.i64()? } else { -1 };
    let count = if compact { r.uvarint()? as i64 - 1 } else { r.i32()? as i64 };
    let mut members = Vec::new();
    // every member takes at least 20 bytes: a count beyond that is a lie
    if count > (r.b.len() / 20 + 1) as i64 {
        return Err(RecordError("member count exceeds the record"));
    }
    for _ in 0..count.max(0) {
        let member_id = r.string(compact)?.ok_or(RecordError("null member id"))?;
        let group_instance_id = if version >= 3 { r.string(compact)? } else { None };
        let client_id = r.string(compact)?.unwrap_or_default();
        let client_host = r.string(compact)?.unwrap_or_default();
        let rebalance_timeout_ms = if version >= 1 { r.i32()? } else { -1 };
        let session_timeout_ms = r.i32()?;
        let subscription = r.bytes(compact)?;
        let assignment = r.bytes(compact)?;
        if compact {
            r.skip_tags()?;
        }
        members.push(MemberValue {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms: if rebalance_timeout_ms < 0 { session_timeout_ms } else { rebalance_timeout_ms },
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    if compact {
        r.skip_tags()?;
    }
    Ok(GroupValue { protocol_type, generation, protocol, leader, current_state_timestamp, members })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checklist 105: a commit without expire timestamp is key v1 {group, topic, partition}
    /// and value v3 {offset, leaderEpoch, metadata, commitTimestamp}.
    #[test]
    fn offset_commit_record_bytes_are_kafkas() {
        let r = Record::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 2,
            value: Some(OffsetValue { offset: 7, leader_epoch: 5, metadata: "m".into(), commit_timestamp: 9, expire_timestamp: None }),
        };
        let raw = r.encode();
        assert_eq!(&raw.key[..], &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 2]);
        let v = raw.value.clone().unwrap();
        assert_eq!(&v[..2], &[0, 3]);
        assert_eq!(v.len(), 2 + 8 + 4 + 2 + 1 + 8);
        assert_eq!(Record::decode(&raw).unwrap(), r);
    }

    #[test]
    fn offsets_with_expiry_use_value_v1_and_tombstones_round_trip() {
        let r = Record::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 0,
            value: Some(OffsetValue {
                offset: 1,
                leader_epoch: -1,
                metadata: String::new(),
                commit_timestamp: 3,
                expire_timestamp: Some(4),
            }),
        };
        let raw = r.encode();
        assert_eq!(&raw.value.as_ref().unwrap()[..2], &[0, 1]);
        assert_eq!(Record::decode(&raw).unwrap(), r);
        let t = Record::Group { group: "g".into(), value: None };
        assert_eq!(Record::decode(&t.encode()).unwrap(), t);
    }

    #[test]
    fn group_metadata_round_trips() {
        let r = Record::Group {
            group: "grp".into(),
            value: Some(GroupValue {
                protocol_type: "consumer".into(),
                generation: 4,
                protocol: Some("range".into()),
                leader: Some("m1".into()),
                current_state_timestamp: 123,
                members: vec![MemberValue {
                    member_id: "m1".into(),
                    group_instance_id: Some("i1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    rebalance_timeout_ms: 300000,
                    session_timeout_ms: 45000,
                    subscription: Bytes::from_static(b"sub"),
                    assignment: Bytes::from_static(b"asg"),
                }],
            }),
        };
        let raw = r.encode();
        assert_eq!(&raw.key[..2], &[0, 2]);
        assert_eq!(&raw.value.as_ref().unwrap()[..2], &[0, 3]);
        assert_eq!(Record::decode(&raw).unwrap(), r);
    }

    /// Checklist 108: unknown record types are skipped, not errors.
    #[test]
    fn unknown_types_and_garbage() {
        let raw = RawRecord { key: Bytes::from_static(&[0, 255, 1, 2]), value: None };
        assert_eq!(Record::decode(&raw).unwrap(), Record::Unknown { key_version: 255 });
        let good = Record::Group {
            group: "g".into(),
            value: Some(GroupValue {
                protocol_type: String::new(),
                generation: 0,
                protocol: None,
                leader: None,
                current_state_timestamp: -1,
                members: vec![],
            }),
        }
        .encode();
        let v = good.value.unwrap();
        for cut in 0..v.len() {
            let _ = Record::decode(&RawRecord { key: good.key.clone(), value: Some(v.slice(..cut)) });
        }
        let mut lie = v.to_vec();
        let n = lie.len();
        lie[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert!(Record::decode(&RawRecord { key: good.key.clone(), value: Some(Bytes::from(lie)) }).is_err());
    }

    /// The consumer-group records (types 3 to 8) round-trip, a classic member's metadata
    /// (tagged field 0) included; cut short or lying about a count, they are refused.
    #[test]
    fn consumer_group_records_round_trip() {
        let a: Assignment = [(Uuid::from_u128(9), [0, 2].into_iter().collect())].into_iter().collect();
        let records = vec![
            ConsumerRecord::GroupEpoch { group: "g".into(), epoch: Some(3) },
            ConsumerRecord::SubscriptionMetadata {
                group: "g".into(),
                topics: Some(vec![TopicMetadata { id: Uuid::from_u128(9), name: "t".into(), partitions: 3 }]),
            },
            ConsumerRecord::Member {
                group: "g".into(),
                member: "m".into(),
                value: Some(ConsumerMemberValue {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/h".into(),
                    subscribed_topic_names: vec!["t".into(), "u".into()],
                    subscribed_topic_regex: Some("^x".into()),
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("range".into()),
                    classic: Some(ClassicMemberMeta {
                        session_timeout_ms: 10_000,
                        protocols: vec![("range".into(), Bytes::from_static(b"sub"))],
                    }),
                }),
            },
            ConsumerRecord::Member { group: "g".into(), member: "n".into(), value: Some(ConsumerMemberValue::default()) },
            ConsumerRecord::TargetEpoch { group: "g".into(), epoch: Some(3) },
            ConsumerRecord::TargetMember { group: "g".into(), member: "m".into(), value: Some(a.clone()) },
            ConsumerRecord::CurrentAssignment {
                group: "g".into(),
                member: "m".into(),
                value: Some(CurrentAssignmentValue {
                    member_epoch: 3,
                    previous_member_epoch: 2,
                    state: 1,
                    assigned: a.clone(),
                    pending_revocation: a,
                }),
            },
            ConsumerRecord::CurrentAssignment { group: "g".into(), member: "m".into(), value: None },
        ];
        for r in records {
            let raw = Record::Consumer(r.clone()).encode();
            assert_eq!(Record::decode(&raw).unwrap(), Record::Consumer(r), "{raw:?}");
            if let Some(v) = &raw.value {
                for cut in 2..v.len() {
                    let _ = Record::decode(&RawRecord { key: raw.key.clone(), value: Some(v.slice(..cut)) });
                }
            }
        }
        // a huge array count is refused, not allocated
        let mut lie = BytesMut::new();
        lie.put_i16(0);
        put_uvarint(&mut lie, u32::MAX);
        let key = Record::Consumer(ConsumerRecord::TargetMember { group: "g".into(), member: "m".into(), value: None }).encode().key;
        assert!(Record::decode(&RawRecord { key, value: Some(lie.freeze()) }).is_err());
    }
}
