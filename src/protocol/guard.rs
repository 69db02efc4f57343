//! The structural check that every request body passes before `kafka-protocol` decodes it.
//!
//! # Why this exists
//!
//! `kafka-protocol` 0.18 decodes an array by calling `Vec::with_capacity(n)` with the element
//! count the client wrote on the wire, before reading a single element. An 11-byte Metadata
//! request claiming `i32::MAX` topics therefore asks the allocator for tens of gigabytes, and an
//! allocation failure aborts the process: it cannot be caught, so one bad client would take the
//! whole broker down. [`check_request_body`] walks the body first, using our own description of
//! each request's shape, and rejects it unless every claimed length fits in the bytes that are
//! actually in the frame. It never allocates, never panics and never recurses deeper than the
//! static nesting of the shapes, whatever the input.
//!
//! Once a body passes, every array the decoder will pre-size has at least
//! `count × (minimum encoded element size)` bytes behind it, so what it reserves is bounded by
//! the frame size. Content rules (UTF-8 of strings, enum values, semantic checks) are left to the
//! decoder, which reports them as ordinary errors.
//!
//! # Encoding rules checked
//!
//! * Fixed-width fields (`int8` … `int64`, `uuid`, `bool`) need their width in bytes. A `bool`
//!   may hold any byte, as Kafka and the crate read any non-zero byte as true.
//! * Before the api's first *flexible* version: a string has an `int16` length, bytes and arrays
//!   an `int32` length/count; `-1` means null and is only allowed for nullable fields; anything
//!   below `-1` is malformed.
//! * From the first flexible version on, strings, bytes and arrays use *compact* lengths: an
//!   unsigned varint holding `length + 1`, where `0` means null.
//! * Unsigned varints are at most 5 bytes and must fit in 32 bits.
//! * In flexible versions every struct (the body itself, and each array element or nested
//!   struct) ends with a tagged-field section: a varint count, then for each field a varint tag,
//!   a varint size and `size` bytes of payload. A tag this shape knows at this version is walked
//!   as its declared type and must fill its declared size exactly (the crate decodes known tags
//!   with its own decoders, ignoring the size); any other tag is skipped by size.
//! * A length may never claim more than what is left: a string or bytes length must not exceed
//!   the remaining bytes, and an array count times the smallest possible encoding of one element
//!   (at least one byte) must not either. The same holds for the tagged-field count (an entry is
//!   at least two bytes) and each tagged field's size.
//!
//! # Shapes
//!
//! `SHAPES` lists, per api key, the versions corral accepts, the first flexible version and the
//! body's fields in wire order with the versions each field is present in (inclusive; `MAX`
//! means "to the newest version"). The facts (field order, types, nullability, version ranges,
//! tags) come from the request schemas as `kafka-protocol` 0.18 implements them, including where
//! the crate is laxer than Kafka's JSON schemas (it accepts null for every field it models as an
//! `Option`, at every version). `tests/guard_shapes.rs` cross-checks every (api, version) pair by
//! generating random bodies from these shapes and requiring the crate to decode them completely
//! and re-encode them byte for byte.
//!
//! Covered: ApiVersions 0-4, Metadata 0-12, Produce 3-11, Fetch 4-17, ListOffsets 1-10,
//! CreateTopics 2-7, DeleteTopics 1-6, CreatePartitions 0-3, InitProducerId 0-5,
//! OffsetForLeaderEpoch 2-4, DescribeCluster 0-2, DescribeConfigs 1-4, AlterConfigs 0-2,
//! IncrementalAlterConfigs 0-1, DeleteRecords 0-2, DescribeLogDirs 1-4, DescribeAcls 1-3,
//! FindCoordinator 0-6, JoinGroup 0-9, SyncGroup 0-5, Heartbeat 0-4, LeaveGroup 0-5,
//! OffsetCommit 2-9, OffsetFetch 1-9, ListGroups 0-5, DescribeGroups 0-6, DeleteGroups 0-2,
//! OffsetDelete 0, SaslHandshake 0-1, ConsumerGroupHeartbeat 0-1, ConsumerGroupDescribe 0-1,
//! DescribeProducers 0, ListTransactions 0-2, DescribeTransactions 0, AddPartitionsToTxn 0-5,
//! AddOffsetsToTxn 0-4, EndTxn 0-5, TxnOffsetCommit 0-5.

use std::fmt;

/// Walks a request body (the bytes after the request header) against the shape of
/// `api_key` at `version`. Ok(consumed_bytes) if the body is structurally sound and every
/// claimed length fits in what is left; Err otherwise. Never allocates in proportion to a
/// claimed length, never panics, on any input.
///
/// Bytes after the end of the body's shape are not an error here (the crate ignores them too);
/// compare the returned count with `body.len()` to reject them.
pub fn check_request_body(api_key: i16, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let shape = shape(api_key, version).ok_or(GuardError::UnknownShape)?;
    walk_body(shape, version, body)
}

/// [`check_request_body`] against a given shape (the cross-check test also runs it on
/// deliberately broken copies of the shapes).
pub(crate) fn walk_body(shape: &Shape, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let mut walker = Walker {
        buf: body,
        pos: 0,
        end: body.len(),
        version,
        flexible: version >= shape.flexible_from,
    };
    walker.walk_struct(shape.body)?;
    Ok(walker.pos)
}

/// True if a shape exists for that key+version (that is, corral accepts that request version).
pub fn is_known(api_key: i16, version: i16) -> bool {
    shape(api_key, version).is_some()
}

/// Why [`check_request_body`] rejected a body. Offsets are from the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// A length (array count, string or bytes length) claims more than the bytes left.
    LengthExceedsFrame {
        at: usize,
        claimed: u64,
        remaining: usize,
    },
    /// The body ends in the middle of a field.
    Truncated { at: usize },
    /// Something no valid encoding contains (negative non-null length, over-long varint, ...).
    Malformed { at: usize, what: &'static str },
    /// No shape for this api key and version.
    UnknownShape,
}

impl fmt::Display for GuardError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardError::LengthExceedsFrame {
                at,
                claimed,
                remaining,
            } => write!(
                f,
                "length {claimed} at offset {at} claims more than the {remaining} bytes left in the request"
            ),
            GuardError::Truncated { at } => {
                write!(f, "request body ends inside a field at offset {at}")
            }
            GuardError::Malformed { at, what } => {
                write!(f, "malformed request body at offset {at}: {what}")
            }
            GuardError::UnknownShape => {
                f.write_str("no request shape for this api key and version")
            }
        }
    }
}

impl std::error::Error for GuardError {}

/// "Present up to the newest version" as the upper end of a version range.
pub(crate) const MAX: i16 = i16::MAX;
/// `flexible_from` of an api that has no flexible versions.
pub(crate) const NEVER: i16 = i16::MAX;

/// The wire type of one field. Only the types the covered requests use: `uint16`, `uint32`
/// and `float64` (2, 4 and 8 fixed bytes) would join with the first api that needs them.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    /// One byte; any value is read as a boolean.
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    /// 16 bytes.
    Uuid,
    /// A string that may not be null.
    Str,
    NullableStr,
    /// Bytes that may not be null.
    Bytes,
    /// Nullable bytes; also used for record batches (Produce `records`), which the crate keeps as
    /// raw bytes.
    NullableBytes,
    /// An array that may not be null, of the given element type.
    Array(&'static Ty),
    NullableArray(&'static Ty),
    /// A nested struct (as an array element, a single nested field or a tagged field).
    Struct(&'static [Field]),
}

/// One field of a struct: its wire type and the versions it is present in.
#[derive(Clone, Copy)]
pub(crate) struct Field {
    /// The field's name in the schema (snake case), for diagnostics.
    pub(crate) name: &'static str,
    pub(crate) ty: Ty,
    /// First version the field is present in.
    pub(crate) min: i16,
    /// Last version the field is present in ([`MAX`]: all later versions).
    pub(crate) max: i16,
    /// `Some(tag)` for a tagged field, which lives in the struct's tagged-field section (and so
    /// only exists in flexible versions) instead of in the sequence of regular fields.
    pub(crate) tag: Option<u32>,
}

impl Field {
    /// Whether the field exists at `version`.
    pub(crate) fn present_in(&self, version: i16) -> bool {
        self.min <= version && version <= self.max
    }
}

/// The shape of one request api: accepted versions, first flexible version and body fields.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) api_key: i16,
    /// Kafka's name for the api, for diagnostics.
    pub(crate) name: &'static str,
    pub(crate) min_version: i16,
    pub(crate) max_version: i16,
    /// First version using compact lengths and tagged fields ([`NEVER`] if none does).
    pub(crate) flexible_from: i16,
    pub(crate) body: &'static [Field],
}

impl fmt::Debug for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (v{}-", self.name, self.min)?;
        if self.max == MAX {
            f.write_str("+")?;
        } else {
            write!(f, "{}", self.max)?;
        }
        if let Some(tag) = self.tag {
            write!(f, ", tag {tag}")?;
        }
        f.write_str(")")
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (key {}, v{}-{})",
            self.name, self.api_key, self.min_version, self.max_version
        )
    }
}

/// The shape for `api_key` if corral accepts `version` of it.
pub(crate) fn shape(api_key: i16, version: i16) -> Option<&'static Shape> {
    SHAPES
        .iter()
        .find(|s| s.api_key == api_key && s.min_version <= version && version <= s.max_version)
}

/// Walks one body. `end` is the end of the current window: the body, or a tagged field's
/// payload while that is being walked.
struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn remaining(&self) -> usize {
        self.end - self.pos
    }

    /// Advances over `n` bytes, returning them.
    fn take(&mut self, n: usize) -> Result<&[u8], GuardError> {
        if self.remaining() < n {
            return Err(GuardError::Truncated { at: self.pos });
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.buf[start..self.pos])
    }

    fn read_i16(&mut self) -> Result<i16, GuardError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn read_i32(&mut self) -> Result<i32, GuardError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// An unsigned varint: 7 bits per byte, low bits first, at most 5 bytes and 32 bits.
    fn read_uvarint(&mut self) -> Result<u32, GuardError> {
        let start = self.pos;
        let mut value: u32 = 0;
        for i in 0..5 {
            let Some(&b) = self.buf[..self.end].get(self.pos) else {
                return Err(GuardError::Truncated { at: start });
            };
            self.pos += 1;
            if i == 4 {
                if b & 0x80 != 0 {
                    return Err(GuardError::Malformed {
                        at: start,
                        what: "varint longer than 5 bytes",
                    });
                }
                if b > 0x0f {
                    return Err(GuardError::Malformed {
                        at: start,
                        what: "varint does not fit in 32 bits",
                    });
                }
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        Ok(value)
    }

    /// Fails unless `claimed` units of at least `unit` bytes each fit in what is left.
    fn fits(&self, at: usize, claimed: u64, unit: usize) -> Result<(), GuardError> {
        let needed = claimed.saturating_mul(unit as u64);
        if needed > self.remaining() as u64 {
            return Err(GuardError::LengthExceedsFrame {
                at,
                claimed,
                remaining: self.remaining(),
            });
        }
        Ok(())
    }

    /// Reads the length or count prefix of a string (`int16` when not flexible), bytes or array
    /// (`int32` when not flexible). `None` is null.
    fn read_length(&mut self, short: bool, nullable: bool) -> Result<Option<u64>, GuardError> {
        let at = self.pos;
        let length = if self.flexible {
            match self.read_uvarint()? {
                0 => None,
                n => Some(u64::from(n - 1)),
            }
        } else {
            let n = if short {
                i32::from(self.read_i16()?)
            } else {
                self.read_i32()?
            };
            match n {
                -1 => None,
                n if n < -1 => {
                    return Err(GuardError::Malformed {
                        at,
                        what: "negative length",
                    });
                }
                n => Some(n as u64),
            }
        };
        if length.is_none() && !nullable {
            return Err(GuardError::Malformed {
                at,
                what: "null in a field that is not nullable",
            });
        }
        Ok(length)
    }

    /// Skips a string or bytes field whose payload length must fit in what is left.
    fn walk_blob(&mut self, short: bool, nullable: bool) -> Result<(), GuardError> {
        let at = self.pos;
        if let Some(len) = self.read_length(short, nullable)? {
            self.fits(at, len, 1)?;
            // `fits` checked that `len` is at most `remaining()`, so it fits in usize.
            self.take(len as usize)?;
        }
        Ok(())
    }

    fn walk_array(&mut self, elem: &Ty, nullable: bool) -> Result<(), GuardError> {
        let at = self.pos;
        if let Some(count) = self.read_length(false, nullable)? {
            self.fits(at, count, self.min_size(elem))?;
            for _ in 0..count {
                self.walk(elem)?;
            }
        }
        Ok(())
    }

    fn walk(&mut self, ty: &Ty) -> Result<(), GuardError> {
        match ty {
            Ty::Bool | Ty::Int8 => self.take(1).map(drop),
            Ty::Int16 => self.take(2).map(drop),
            Ty::Int32 => self.take(4).map(drop),
            Ty::Int64 => self.take(8).map(drop),
            Ty::Uuid => self.take(16).map(drop),
            Ty::Str => self.walk_blob(true, false),
            Ty::NullableStr => self.walk_blob(true, true),
            Ty::Bytes => self.walk_blob(false, false),
            Ty::NullableBytes => self.walk_blob(false, true),
            Ty::Array(elem) => self.walk_array(elem, false),
            Ty::NullableArray(elem) => self.walk_array(elem, true),
            Ty::Struct(fields) => self.walk_struct(fields),
        }
    }

    /// The regular fields present at this version in order, then (flexible versions) the
    /// tagged-field section.
    fn walk_struct(&mut self, fields: &[Field]) -> Result<(), GuardError> {
        for field in fields {
            if field.tag.is_none() && field.present_in(self.version) {
                self.walk(&field.ty)?;
            }
        }
        if self.flexible {
            self.walk_tagged_fields(fields)?;
        }
        Ok(())
    }

    fn walk_tagged_fields(&mut self, fields: &[Field]) -> Result<(), GuardError> {
        let at = self.pos;
        let count = self.read_uvarint()?;
        // Each entry is at least a one-byte tag and a one-byte size.
        self.fits(at, u64::from(count), 2)?;
        for _ in 0..count {
            let tag = self.read_uvarint()?;
            let size_at = self.pos;
            let size = u64::from(self.read_uvarint()?);
            self.fits(size_at, size, 1)?;
            // `fits` checked that `size` is at most `remaining()`, so it fits in usize.
            let payload_end = self.pos + size as usize;
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.present_in(self.version));
            match known {
                Some(field) => {
                    let outer_end = self.end;
                    self.end = payload_end;
                    self.walk(&field.ty)?;
                    if self.pos != payload_end {
                        return Err(GuardError::Malformed {
                            at: size_at,
                            what: "tagged field size does not match its content",
                        });
                    }
                    self.end = outer_end;
                }
                None => self.pos = payload_end,
            }
        }
        Ok(())
    }

    /// The fewest bytes one value of `ty` can take at this version (at least 1), used to bound
    /// array counts before walking the elements.
    fn min_size(&self, ty: &Ty) -> usize {
        let length_prefix = |short: bool| match (self.flexible, short) {
            (true, _) => 1,
            (false, true) => 2,
            (false, false) => 4,
        };
        match ty {
            Ty::Bool | Ty::Int8 => 1,
            Ty::Int16 => 2,
            Ty::Int32 => 4,
            Ty::Int64 => 8,
            Ty::Uuid => 16,
            Ty::Str | Ty::NullableStr => length_prefix(true),
            Ty::Bytes | Ty::NullableBytes | Ty::Array(_) | Ty::NullableArray(_) => {
                length_prefix(false)
            }
            Ty::Struct(fields) => {
                let regular: usize = fields
                    .iter()
                    .filter(|f| f.tag.is_none() && f.present_in(self.version))
                    .map(|f| self.min_size(&f.ty))
                    .sum();
                (regular + usize::from(self.flexible)).max(1)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Shape tables
//
// One table per struct of a request schema, fields in wire order. The doc line names the
// struct as `kafka-protocol` 0.18 calls it and the versions the crate decodes it at; field
// ranges follow the crate even beyond the versions corral accepts (those are set in SHAPES), so
// that they can be compared with the schema directly. Tagged fields are listed after the regular
// ones; their position in the table does not matter.
// ---------------------------------------------------------------------------------------------

use Ty::{
    Array, Bool, Bytes, Int8, Int16, Int32, Int64, NullableArray, NullableBytes, NullableStr, Str,
    Struct, Uuid,
};

/// A regular field present in versions `min..=max`.
const fn field(name: &'static str, ty: Ty, min: i16, max: i16) -> Field {
    Field {
        name,
        ty,
        min,
        max,
        tag: None,
    }
}

/// A tagged field with tag `tag`, present in versions `min..=max` (all flexible).
const fn tagged(tag: u32, name: &'static str, ty: Ty, min: i16, max: i16) -> Field {
    Field {
        name,
        ty,
        min,
        max,
        tag: Some(tag),
    }
}

/// An api accepted in versions `min..=max`, flexible from `flexible_from`.
const fn api(
    api_key: i16,
    name: &'static str,
    min_version: i16,
    max_version: i16,
    flexible_from: i16,
    body: &'static [Field],
) -> Shape {
    Shape {
        api_key,
        name,
        min_version,
        max_version,
        flexible_from,
        body,
    }
}

/// Every request corral accepts: api key, name, accepted versions, first flexible version, body.
pub(crate) const SHAPES: &[Shape] = &[
    api(0, "Produce", 3, 11, 9, PRODUCE),
    api(1, "Fetch", 4, 17, 12, FETCH),
    api(2, "ListOffsets", 1, 10, 6, LIST_OFFSETS),
    api(3, "Metadata", 0, 12, 9, METADATA),
    api(8, "OffsetCommit", 2, 9, 8, OFFSET_COMMIT), // v10 is past the crate (0.18 stops at 9)
    api(9, "OffsetFetch", 1, 9, 6, OFFSET_FETCH),   // v10 is past the crate (0.18 stops at 9)
    api(10, "FindCoordinator", 0, 6, 3, FIND_COORDINATOR),
    api(11, "JoinGroup", 0, 9, 6, JOIN_GROUP),
    api(12, "Heartbeat", 0, 4, 4, HEARTBEAT),
    api(13, "LeaveGroup", 0, 5, 4, LEAVE_GROUP),
    api(14, "SyncGroup", 0, 5, 4, SYNC_GROUP),
    api(15, "DescribeGroups", 0, 6, 5, DESCRIBE_GROUPS),
    api(16, "ListGroups", 0, 5, 3, LIST_GROUPS),
    api(17, "SaslHandshake", 0, 1, NEVER, SASL_HANDSHAKE),
    api(18, "ApiVersions", 0, 4, 3, API_VERSIONS),
    api(19, "CreateTopics", 2, 7, 5, CREATE_TOPICS),
    api(20, "DeleteTopics", 1, 6, 4, DELETE_TOPICS),
    api(21, "DeleteRecords", 0, 2, 2, DELETE_RECORDS),
    api(22, "InitProducerId", 0, 5, 2, INIT_PRODUCER_ID), // v6 is past the crate (stops at 5)
    api(23, "OffsetForLeaderEpoch", 2, 4, 4, OFFSET_FOR_LEADER_EPOCH),
    api(24, "AddPartitionsToTxn", 0, 5, 3, ADD_PARTITIONS_TO_TXN),
    api(25, "AddOffsetsToTxn", 0, 4, 3, ADD_OFFSETS_TO_TXN),
    api(26, "EndTxn", 0, 5, 3, END_TXN),
    api(28, "TxnOffsetCommit", 0, 5, 3, TXN_OFFSET_COMMIT),
    api(29, "DescribeAcls", 1, 3, 2, DESCRIBE_ACLS),
    api(32, "DescribeConfigs", 1, 4, 4, DESCRIBE_CONFIGS),
    api(33, "AlterConfigs", 0, 2, 2, ALTER_CONFIGS),
    api(35, "DescribeLogDirs", 1, 4, 2, DESCRIBE_LOG_DIRS),
    api(37, "CreatePartitions", 0, 3, 2, CREATE_PARTITIONS),
    api(42, "DeleteGroups", 0, 2, 2, DELETE_GROUPS),
    api(
        44,
        "IncrementalAlterConfigs",
        0,
        1,
        1,
        INCREMENTAL_ALTER_CONFIGS,
    ),
    api(47, "OffsetDelete", 0, 0, NEVER, OFFSET_DELETE),
    api(60, "DescribeCluster", 0, 2, 0, DESCRIBE_CLUSTER),
    api(61, "DescribeProducers", 0, 0, 0, DESCRIBE_PRODUCERS),
    api(65, "DescribeTransactions", 0, 0, 0, DESCRIBE_TRANSACTIONS),
    api(66, "ListTransactions", 0, 2, 0, LIST_TRANSACTIONS),
    api(
        68,
        "ConsumerGroupHeartbeat",
        0,
        1,
        0,
        CONSUMER_GROUP_HEARTBEAT,
    ),
    api(
        69,
        "ConsumerGroupDescribe",
        0,
        1,
        0,
        CONSUMER_GROUP_DESCRIBE,
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
const PRODUCE_TOPIC: &[Field] = &[
    field("name", Str, 3, 12),
    field("topic_id", Uuid, 13, MAX),
    field("partition_data", Array(&Struct(PRODUCE_PARTITION)), 3, MAX),
];

/// `PartitionProduceData` (crate versions 3-13).
const PRODUCE_PARTITION: &[Field] = &[
    field("index", Int32, 3, MAX),
    field("records", NullableBytes, 3, MAX),
];

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
    field(
        "forgotten_topics_data",
        Array(&Struct(FETCH_FORGOTTEN_TOPIC)),
        7,
        MAX,
    ),
    field("rack_id", Str, 11, MAX),
    tagged(0, "cluster_id", NullableStr, 12, MAX),
    tagged(1, "replica_state", Struct(FETCH_REPLICA_STATE), 15, MAX),
];

/// `ReplicaState` (crate versions 4-18).
const FETCH_REPLICA_STATE: &[Field] = &[
    field("replica_id", Int32, 15, MAX),
    field("replica_epoch", Int64, 15, MAX),
];

/// `FetchTopic` (crate versions 4-18).
const FETCH_TOPIC: &[Field] = &[
    field("topic", Str, 4, 12),
    field("topic_id", Uuid, 13, MAX),
    field("partitions", Array(&Struct(FETCH_PARTITION)), 4, MAX),
];

/// `ForgottenTopic` (crate versions 4-18).
const FETCH_FORGOTTEN_TOPIC: &[Field] = &[
    field("topic", Str, 7, 12),
    field("topic_id", Uuid, 13, MAX),
    field("partitions", Array(&Int32), 7, MAX),
];

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
const LIST_OFFSETS_TOPIC: &[Field] = &[
    field("name", Str, 1, MAX),
    field("partitions", Array(&Struct(LIST_OFFSETS_PARTITION)), 1, MAX),
];

/// `ListOffsetsPartition` (crate versions 1-10).
const LIST_OFFSETS_PARTITION: &[Field] = &[
    field("partition_index", Int32, 1, MAX),
    field("current_leader_epoch", Int32, 4, MAX),
    field("timestamp", Int64, 1, MAX),
];

/// `MetadataRequest` (crate versions 0-13).
const METADATA: &[Field] = &[
    field("topics", NullableArray(&Struct(METADATA_TOPIC)), 0, MAX),
    field("allow_auto_topic_creation", Bool, 4, MAX),
    field("include_cluster_authorized_operations", Bool, 8, 10),
    field("include_topic_authorized_operations", Bool, 8, MAX),
];

/// `MetadataRequestTopic` (crate versions 0-13).
const METADATA_TOPIC: &[Field] = &[
    field("topic_id", Uuid, 10, MAX),
    field("name", NullableStr, 0, MAX),
];

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
const OFFSET_COMMIT_TOPIC: &[Field] = &[
    field("name", Str, 2, MAX),
    field(
        "partitions",
        Array(&Struct(OFFSET_COMMIT_PARTITION)),
        2,
        MAX,
    ),
];

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
const OFFSET_FETCH_TOPIC: &[Field] = &[
    field("name", Str, 1, 7),
    field("partition_indexes", Array(&Int32), 1, 7),
];

/// `OffsetFetchRequestGroup` (crate versions 1-9).
const OFFSET_FETCH_GROUP: &[Field] = &[
    field("group_id", Str, 8, MAX),
    field("member_id", NullableStr, 9, MAX),
    field("member_epoch", Int32, 9, MAX),
    field(
        "topics",
        NullableArray(&Struct(OFFSET_FETCH_TOPICS)),
        8,
        MAX,
    ),
];

/// `OffsetFetchRequestTopics` (crate versions 1-9).
const OFFSET_FETCH_TOPICS: &[Field] = &[
    field("name", Str, 8, MAX),
    field("partition_indexes", Array(&Int32), 8, MAX),
];

/// `FindCoordinatorRequest` (crate versions 0-6).
const FIND_COORDINATOR: &[Field] = &[
    field("key", Str, 0, 3),
    field("key_type", Int8, 1, MAX),
    field("coordinator_keys", Array(&Str), 4, MAX),
];

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
const JOIN_GROUP_PROTOCOL: &[Field] =
    &[field("name", Str, 0, MAX), field("metadata", Bytes, 0, MAX)];

/// `HeartbeatRequest` (crate versions 0-4).
const HEARTBEAT: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("generation_id", Int32, 0, MAX),
    field("member_id", Str, 0, MAX),
    field("group_instance_id", NullableStr, 3, MAX),
];

/// `LeaveGroupRequest` (crate versions 0-5).
const LEAVE_GROUP: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("member_id", Str, 0, 2),
    field(
        "members",
        Array(&Struct(LEAVE_GROUP_MEMBER_IDENTITY)),
        3,
        MAX,
    ),
];

/// `MemberIdentity` (crate versions 0-5).
const LEAVE_GROUP_MEMBER_IDENTITY: &[Field] = &[
    field("member_id", Str, 3, MAX),
    field("group_instance_id", NullableStr, 3, MAX),
    field("reason", NullableStr, 5, MAX),
];

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
const SYNC_GROUP_ASSIGNMENT: &[Field] = &[
    field("member_id", Str, 0, MAX),
    field("assignment", Bytes, 0, MAX),
];

/// `DescribeGroupsRequest` (crate versions 0-6).
const DESCRIBE_GROUPS: &[Field] = &[
    field("groups", Array(&Str), 0, MAX),
    field("include_authorized_operations", Bool, 3, MAX),
];

/// `ListGroupsRequest` (crate versions 0-5).
const LIST_GROUPS: &[Field] = &[
    field("states_filter", Array(&Str), 4, MAX),
    field("types_filter", Array(&Str), 5, MAX),
];

/// `SaslHandshakeRequest` (crate versions 0-1).
const SASL_HANDSHAKE: &[Field] = &[field("mechanism", Str, 0, MAX)];

/// `ApiVersionsRequest` (crate versions 0-4).
const API_VERSIONS: &[Field] = &[
    field("client_software_name", Str, 3, MAX),
    field("client_software_version", Str, 3, MAX),
];

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
    field(
        "assignments",
        Array(&Struct(CREATE_TOPICS_ASSIGNMENT)),
        2,
        MAX,
    ),
    field("configs", Array(&Struct(CREATE_TOPICS_CONFIG)), 2, MAX),
];

/// `CreatableReplicaAssignment` (crate versions 2-7).
const CREATE_TOPICS_ASSIGNMENT: &[Field] = &[
    field("partition_index", Int32, 2, MAX),
    field("broker_ids", Array(&Int32), 2, MAX),
];

/// `CreatableTopicConfig` (crate versions 2-7).
const CREATE_TOPICS_CONFIG: &[Field] = &[
    field("name", Str, 2, MAX),
    field("value", NullableStr, 2, MAX),
];

/// `DeleteTopicsRequest` (crate versions 1-6).
const DELETE_TOPICS: &[Field] = &[
    field("topics", Array(&Struct(DELETE_TOPICS_TOPIC_STATE)), 6, MAX),
    field("topic_names", Array(&Str), 1, 5),
    field("timeout_ms", Int32, 1, MAX),
];

/// `DeleteTopicState` (crate versions 1-6).
const DELETE_TOPICS_TOPIC_STATE: &[Field] = &[
    field("name", NullableStr, 6, MAX),
    field("topic_id", Uuid, 6, MAX),
];

/// `DeleteRecordsRequest` (crate versions 0-2).
const DELETE_RECORDS: &[Field] = &[
    field("topics", Array(&Struct(DELETE_RECORDS_TOPIC)), 0, MAX),
    field("timeout_ms", Int32, 0, MAX),
];

/// `DeleteRecordsTopic` (crate versions 0-2).
const DELETE_RECORDS_TOPIC: &[Field] = &[
    field("name", Str, 0, MAX),
    field(
        "partitions",
        Array(&Struct(DELETE_RECORDS_PARTITION)),
        0,
        MAX,
    ),
];

/// `DeleteRecordsPartition` (crate versions 0-2).
const DELETE_RECORDS_PARTITION: &[Field] = &[
    field("partition_index", Int32, 0, MAX),
    field("offset", Int64, 0, MAX),
];

/// `InitProducerIdRequest` (crate versions 0-5).
const INIT_PRODUCER_ID: &[Field] = &[
    field("transactional_id", NullableStr, 0, MAX),
    field("transaction_timeout_ms", Int32, 0, MAX),
    field("producer_id", Int64, 3, MAX),
    field("producer_epoch", Int16, 3, MAX),
];

/// `OffsetForLeaderEpochRequest` (crate versions 2-4).
const OFFSET_FOR_LEADER_EPOCH: &[Field] = &[
    field("replica_id", Int32, 3, MAX),
    field(
        "topics",
        Array(&Struct(OFFSET_FOR_LEADER_EPOCH_TOPIC)),
        2,
        MAX,
    ),
];

/// `OffsetForLeaderTopic` (crate versions 2-4).
const OFFSET_FOR_LEADER_EPOCH_TOPIC: &[Field] = &[
    field("topic", Str, 2, MAX),
    field(
        "partitions",
        Array(&Struct(OFFSET_FOR_LEADER_EPOCH_PARTITION)),
        2,
        MAX,
    ),
];

/// `OffsetForLeaderPartition` (crate versions 2-4).
const OFFSET_FOR_LEADER_EPOCH_PARTITION: &[Field] = &[
    field("partition", Int32, 2, MAX),
    field("current_leader_epoch", Int32, 2, MAX),
    field("leader_epoch", Int32, 2, MAX),
];

/// `AddPartitionsToTxnRequest` (crate versions 0-5).
const ADD_PARTITIONS_TO_TXN: &[Field] = &[
    field(
        "transactions",
        Array(&Struct(ADD_PARTITIONS_TO_TXN_TRANSACTION)),
        4,
        MAX,
    ),
    field("v3_and_below_transactional_id", Str, 0, 3),
    field("v3_and_below_producer_id", Int64, 0, 3),
    field("v3_and_below_producer_epoch", Int16, 0, 3),
    field(
        "v3_and_below_topics",
        Array(&Struct(ADD_PARTITIONS_TO_TXN_TOPIC)),
        0,
        3,
    ),
];

/// `AddPartitionsToTxnTransaction` (crate versions 0-5).
const ADD_PARTITIONS_TO_TXN_TRANSACTION: &[Field] = &[
    field("transactional_id", Str, 4, MAX),
    field("producer_id", Int64, 4, MAX),
    field("producer_epoch", Int16, 4, MAX),
    field("verify_only", Bool, 4, MAX),
    field(
        "topics",
        Array(&Struct(ADD_PARTITIONS_TO_TXN_TOPIC)),
        4,
        MAX,
    ),
];

/// `AddPartitionsToTxnTopic` (crate versions 0-5).
const ADD_PARTITIONS_TO_TXN_TOPIC: &[Field] = &[
    field("name", Str, 0, MAX),
    field("partitions", Array(&Int32), 0, MAX),
];

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
const TXN_OFFSET_COMMIT_TOPIC: &[Field] = &[
    field("name", Str, 0, MAX),
    field(
        "partitions",
        Array(&Struct(TXN_OFFSET_COMMIT_PARTITION)),
        0,
        MAX,
    ),
];

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
    field(
        "resources",
        Array(&Struct(DESCRIBE_CONFIGS_RESOURCE)),
        1,
        MAX,
    ),
    field("include_synonyms", Bool, 1, MAX),
    field("include_documentation", Bool, 3, MAX),
];

/// `DescribeConfigsResource` (crate versions 1-4).
const DESCRIBE_CONFIGS_RESOURCE: &[Field] = &[
    field("resource_type", Int8, 1, MAX),
    field("resource_name", Str, 1, MAX),
    field("configuration_keys", NullableArray(&Str), 1, MAX),
];

/// `AlterConfigsRequest` (crate versions 0-2).
const ALTER_CONFIGS: &[Field] = &[
    field("resources", Array(&Struct(ALTER_CONFIGS_RESOURCE)), 0, MAX),
    field("validate_only", Bool, 0, MAX),
];

/// `AlterConfigsResource` (crate versions 0-2).
const ALTER_CONFIGS_RESOURCE: &[Field] = &[
    field("resource_type", Int8, 0, MAX),
    field("resource_name", Str, 0, MAX),
    field(
        "configs",
        Array(&Struct(ALTER_CONFIGS_ALTERABLE_CONFIG)),
        0,
        MAX,
    ),
];

/// `AlterableConfig` (crate versions 0-2).
const ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] = &[
    field("name", Str, 0, MAX),
    field("value", NullableStr, 0, MAX),
];

/// `DescribeLogDirsRequest` (crate versions 1-4).
const DESCRIBE_LOG_DIRS: &[Field] = &[field(
    "topics",
    NullableArray(&Struct(DESCRIBE_LOG_DIRS_TOPIC)),
    1,
    MAX,
)];

/// `DescribableLogDirTopic` (crate versions 1-4).
const DESCRIBE_LOG_DIRS_TOPIC: &[Field] = &[
    field("topic", Str, 1, MAX),
    field("partitions", Array(&Int32), 1, MAX),
];

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
    field(
        "assignments",
        NullableArray(&Struct(CREATE_PARTITIONS_ASSIGNMENT)),
        0,
        MAX,
    ),
];

/// `CreatePartitionsAssignment` (crate versions 0-3).
const CREATE_PARTITIONS_ASSIGNMENT: &[Field] = &[field("broker_ids", Array(&Int32), 0, MAX)];

/// `DeleteGroupsRequest` (crate versions 0-2).
const DELETE_GROUPS: &[Field] = &[field("groups_names", Array(&Str), 0, MAX)];

/// `IncrementalAlterConfigsRequest` (crate versions 0-1).
const INCREMENTAL_ALTER_CONFIGS: &[Field] = &[
    field(
        "resources",
        Array(&Struct(INCREMENTAL_ALTER_CONFIGS_RESOURCE)),
        0,
        MAX,
    ),
    field("validate_only", Bool, 0, MAX),
];

/// `AlterConfigsResource` (crate versions 0-1).
const INCREMENTAL_ALTER_CONFIGS_RESOURCE: &[Field] = &[
    field("resource_type", Int8, 0, MAX),
    field("resource_name", Str, 0, MAX),
    field(
        "configs",
        Array(&Struct(INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG)),
        0,
        MAX,
    ),
];

/// `AlterableConfig` (crate versions 0-1).
const INCREMENTAL_ALTER_CONFIGS_ALTERABLE_CONFIG: &[Field] = &[
    field("name", Str, 0, MAX),
    field("config_operation", Int8, 0, MAX),
    field("value", NullableStr, 0, MAX),
];

/// `OffsetDeleteRequest` (crate versions 0-0).
const OFFSET_DELETE: &[Field] = &[
    field("group_id", Str, 0, MAX),
    field("topics", Array(&Struct(OFFSET_DELETE_TOPIC)), 0, MAX),
];

/// `OffsetDeleteRequestTopic` (crate versions 0-0).
const OFFSET_DELETE_TOPIC: &[Field] = &[
    field("name", Str, 0, MAX),
    field(
        "partitions",
        Array(&Struct(OFFSET_DELETE_PARTITION)),
        0,
        MAX,
    ),
];

/// `OffsetDeleteRequestPartition` (crate versions 0-0).
const OFFSET_DELETE_PARTITION: &[Field] = &[field("partition_index", Int32, 0, MAX)];

/// `DescribeClusterRequest` (crate versions 0-2).
const DESCRIBE_CLUSTER: &[Field] = &[
    field("include_cluster_authorized_operations", Bool, 0, MAX),
    field("endpoint_type", Int8, 1, MAX),
    field("include_fenced_brokers", Bool, 2, MAX),
];

/// `DescribeProducersRequest` (crate versions 0-0).
const DESCRIBE_PRODUCERS: &[Field] = &[field(
    "topics",
    Array(&Struct(DESCRIBE_PRODUCERS_TOPIC)),
    0,
    MAX,
)];

/// `TopicRequest` (crate versions 0-0).
const DESCRIBE_PRODUCERS_TOPIC: &[Field] = &[
    field("name", Str, 0, MAX),
    field("partition_indexes", Array(&Int32), 0, MAX),
];

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
    field(
        "topic_partitions",
        NullableArray(&Struct(CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS)),
        0,
        MAX,
    ),
];

/// `TopicPartitions` (crate versions 0-1).
const CONSUMER_GROUP_HEARTBEAT_TOPIC_PARTITIONS: &[Field] = &[
    field("topic_id", Uuid, 0, MAX),
    field("partitions", Array(&Int32), 0, MAX),
];

/// `ConsumerGroupDescribeRequest` (crate versions 0-1).
const CONSUMER_GROUP_DESCRIBE: &[Field] = &[
    field("group_ids", Array(&Str), 0, MAX),
    field("include_authorized_operations", Bool, 0, MAX),
];
