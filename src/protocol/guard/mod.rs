//! The structural check that a request body (and, in proxy mode, a response body from an
//! upstream broker) passes before `kafka-protocol` decodes it.
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
//! * Fixed-width fields (`int8` … `int64`, `float64`, `uuid`, `bool`) need their width in bytes.
//!   A `bool` may hold any byte, as Kafka and the crate read any non-zero byte as true.
//! * A nullable struct (one the crate models as an `Option` of a struct) is an `int8` marker, `1`
//!   followed by the struct or anything else for null (the crate reads it so), in every version.
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
//! `SHAPES` (requests, in `requests.rs`) and `RESPONSE_SHAPES` (responses, in `responses.rs`)
//! list, per api key, the versions the guard can walk, the first flexible version and the
//! body's fields in wire order with the versions each field is present in (inclusive; `MAX`
//! means "to the newest version"). The facts (field order, types, nullability, version ranges,
//! tags) come from the schemas as `kafka-protocol` 0.18 implements them, including where the
//! crate is laxer than Kafka's JSON schemas (it accepts null for every field it models as an
//! `Option`, at every version). `tests/guard_shapes.rs` cross-checks every (api, version) pair,
//! requests and responses, by generating random bodies from these shapes and requiring the crate
//! to decode them completely and re-encode them byte for byte.
//!
//! A shape's range is what the guard can walk, which is the whole range the crate decodes; which
//! versions corral *serves* in broker mode is a separate, narrower table (`SUPPORTED` in
//! `protocol/mod.rs`), checked first. The wider shapes are for proxy mode, which passes what it
//! does not handle itself through to an upstream broker and checks what comes back.
//!
//! Covered requests: Produce 3-13, Fetch 4-18, ListOffsets 1-10, Metadata 0-13,
//! OffsetCommit 2-9, OffsetFetch 1-9, FindCoordinator 0-6, JoinGroup 0-9, Heartbeat 0-4,
//! LeaveGroup 0-5, SyncGroup 0-5, DescribeGroups 0-6, ListGroups 0-5, SaslHandshake 0-1,
//! ApiVersions 0-4, CreateTopics 2-7, DeleteTopics 1-6, DeleteRecords 0-2, InitProducerId 0-5,
//! OffsetForLeaderEpoch 2-4, AddPartitionsToTxn 0-5, AddOffsetsToTxn 0-4, EndTxn 0-5,
//! TxnOffsetCommit 0-5, DescribeAcls 1-3, CreateAcls 1-3, DeleteAcls 1-3, DescribeConfigs 1-4,
//! AlterConfigs 0-2, AlterReplicaLogDirs 1-2, DescribeLogDirs 1-4, SaslAuthenticate 0-2,
//! CreatePartitions 0-3, DeleteGroups 0-2, ElectLeaders 0-2, IncrementalAlterConfigs 0-1,
//! AlterPartitionReassignments 0-1, ListPartitionReassignments 0, OffsetDelete 0,
//! DescribeClientQuotas 0-1, AlterClientQuotas 0-1, DescribeUserScramCredentials 0,
//! AlterUserScramCredentials 0, UpdateFeatures 0-2, DescribeCluster 0-2, DescribeProducers 0,
//! DescribeTransactions 0, ListTransactions 0-2, ConsumerGroupHeartbeat 0-1,
//! ConsumerGroupDescribe 0-1, GetTelemetrySubscriptions 0, PushTelemetry 0,
//! ListConfigResources (formerly ListClientMetricsResources) 0-1, DescribeTopicPartitions 0.
//! (The crate's OffsetCommit and OffsetFetch requests stop at 9 and InitProducerId at 5, though
//! its `ApiKey::valid_versions` and responses go one further.)
//!
//! Covered responses: Produce 3-13, Fetch 4-18, ListOffsets 1-10, Metadata 0-13,
//! OffsetCommit 2-10, OffsetFetch 1-10, FindCoordinator 0-6, ApiVersions 0-4, CreateTopics 2-7,
//! DeleteTopics 1-6, InitProducerId 0-6, DescribeConfigs 1-4, DeleteGroups 0-2, OffsetDelete 0,
//! DescribeCluster 0-2.

use std::fmt;

mod requests;
mod responses;

pub(crate) use requests::SHAPES;
pub(crate) use responses::RESPONSE_SHAPES;

/// Walks a request body (the bytes after the request header) against the shape of
/// `api_key` at `version`. Ok(consumed_bytes) if the body is structurally sound and every
/// claimed length fits in what is left; Err otherwise. Never allocates in proportion to a
/// claimed length, never panics, on any input.
///
/// Bytes after the end of the body's shape are not an error here (the crate ignores them too);
/// compare the returned count with `body.len()` to reject them. The shapes span every version
/// the crate decodes, so whether corral serves `version` is for the caller to check first.
pub fn check_request_body(api_key: i16, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    let shape = shape(api_key, version).ok_or(GuardError::UnknownShape)?;
    walk_body(shape, version, body)
}

/// The same walk for a *response* body (the bytes after the response header), against the
/// response shapes: what the proxy checks before the crate decodes anything an upstream sent.
/// Besides the bytes walked, it reports which tags the body's own (top-level) tagged-field
/// section holds, so a caller can tell whether a response carries, say, Fetch's
/// `node_endpoints` without decoding it.
pub fn check_response_body(api_key: i16, version: i16, body: &[u8]) -> Result<Walked, GuardError> {
    let shape = response_shape(api_key, version).ok_or(GuardError::UnknownShape)?;
    walk(shape, version, body)
}

/// What a successful walk found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Walked {
    /// Bytes of the body the shape covers.
    pub consumed: usize,
    /// Bit `t` is set when tag `t` (below 64) is in the body's top-level tagged fields.
    pub top_level_tags: u64,
}

impl Walked {
    /// Whether the body's top-level tagged fields hold `tag`.
    pub fn has_top_level_tag(&self, tag: u32) -> bool {
        tag < 64 && self.top_level_tags & (1 << tag) != 0
    }
}

/// [`check_request_body`] against a given shape (the cross-check test also runs it on
/// deliberately broken copies of the shapes).
pub(crate) fn walk_body(shape: &Shape, version: i16, body: &[u8]) -> Result<usize, GuardError> {
    walk(shape, version, body).map(|w| w.consumed)
}

/// Walks `body` as `shape` at `version`.
pub(crate) fn walk(shape: &Shape, version: i16, body: &[u8]) -> Result<Walked, GuardError> {
    let mut walker =
        Walker { buf: body, pos: 0, end: body.len(), version, flexible: version >= shape.flexible_from, depth: 0, top_level_tags: 0 };
    walker.walk_struct(shape.body)?;
    Ok(Walked { consumed: walker.pos, top_level_tags: walker.top_level_tags })
}

/// True if a request shape exists for that key+version (the guard can walk that version; not
/// necessarily one corral serves).
pub fn is_known(api_key: i16, version: i16) -> bool {
    shape(api_key, version).is_some()
}

/// The versions of `api_key` the guard can walk as a request, if any.
pub fn request_versions(api_key: i16) -> Option<(i16, i16)> {
    SHAPES.iter().find(|s| s.api_key == api_key).map(|s| (s.min_version, s.max_version))
}

/// The versions of `api_key` the guard can walk as a response, if any.
pub fn response_versions(api_key: i16) -> Option<(i16, i16)> {
    RESPONSE_SHAPES.iter().find(|s| s.api_key == api_key).map(|s| (s.min_version, s.max_version))
}

/// Why [`check_request_body`] or [`check_response_body`] rejected a body. Offsets are from the
/// start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuardError {
    /// A length (array count, string or bytes length) claims more than the bytes left.
    LengthExceedsFrame { at: usize, claimed: u64, remaining: usize },
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
            GuardError::LengthExceedsFrame { at, claimed, remaining } => {
                write!(f, "length {claimed} at offset {at} claims more than the {remaining} bytes left in the body")
            }
            GuardError::Truncated { at } => {
                write!(f, "body ends inside a field at offset {at}")
            }
            GuardError::Malformed { at, what } => {
                write!(f, "malformed body at offset {at}: {what}")
            }
            GuardError::UnknownShape => f.write_str("no shape for this api key and version"),
        }
    }
}

impl std::error::Error for GuardError {}

/// "Present up to the newest version" as the upper end of a version range.
pub(crate) const MAX: i16 = i16::MAX;
/// `flexible_from` of an api that has no flexible versions.
pub(crate) const NEVER: i16 = i16::MAX;

/// The wire type of one field. Only the types the covered apis use: `uint16` and `uint32` (2 and
/// 4 fixed bytes) would join with the first api that needs them.
#[derive(Clone, Copy)]
pub(crate) enum Ty {
    /// One byte; any value is read as a boolean.
    Bool,
    Int8,
    Int16,
    Int32,
    Int64,
    /// 8 bytes (an IEEE 754 double; any bit pattern).
    Float64,
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
    /// A nullable nested struct: an `int8` marker, then the struct if the marker is `1`; any
    /// other marker is null (the crate writes `-1`).
    NullableStruct(&'static [Field]),
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

/// The shape of one api's request or response body: the versions the guard walks, first
/// flexible version and body fields.
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
        write!(f, "{} (key {}, v{}-{})", self.name, self.api_key, self.min_version, self.max_version)
    }
}

/// The request shape for `api_key` if the guard can walk `version` of it.
pub(crate) fn shape(api_key: i16, version: i16) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| s.api_key == api_key && s.min_version <= version && version <= s.max_version)
}

/// The response shape for `api_key` if the guard can walk `version` of it.
pub(crate) fn response_shape(api_key: i16, version: i16) -> Option<&'static Shape> {
    RESPONSE_SHAPES.iter().find(|s| s.api_key == api_key && s.min_version <= version && version <= s.max_version)
}

/// Walks one body. `end` is the end of the current window: the body, or a tagged field's
/// payload while that is being walked.
struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    version: i16,
    flexible: bool,
    /// How many structs deep the walk is: 0 while in the body's own fields.
    depth: u32,
    /// Tags seen in the body's own tagged-field section (bit per tag below 64).
    top_level_tags: u64,
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
                    return Err(GuardError::Malformed { at: start, what: "varint longer than 5 bytes" });
                }
                if b > 0x0f {
                    return Err(GuardError::Malformed { at: start, what: "varint does not fit in 32 bits" });
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
            return Err(GuardError::LengthExceedsFrame { at, claimed, remaining: self.remaining() });
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
            let n = if short { i32::from(self.read_i16()?) } else { self.read_i32()? };
            match n {
                -1 => None,
                n if n < -1 => {
                    return Err(GuardError::Malformed { at, what: "negative length" });
                }
                n => Some(n as u64),
            }
        };
        if length.is_none() && !nullable {
            return Err(GuardError::Malformed { at, what: "null in a field that is not nullable" });
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
            Ty::Int64 | Ty::Float64 => self.take(8).map(drop),
            Ty::Uuid => self.take(16).map(drop),
            Ty::Str => self.walk_blob(true, false),
            Ty::NullableStr => self.walk_blob(true, true),
            Ty::Bytes => self.walk_blob(false, false),
            Ty::NullableBytes => self.walk_blob(false, true),
            Ty::Array(elem) => self.walk_array(elem, false),
            Ty::NullableArray(elem) => self.walk_array(elem, true),
            Ty::Struct(fields) => self.walk_nested(fields),
            Ty::NullableStruct(fields) => {
                if self.take(1)?[0] == 1 {
                    self.walk_nested(fields)
                } else {
                    Ok(())
                }
            }
        }
    }

    /// A struct inside the body (so its tagged fields are not the body's own).
    fn walk_nested(&mut self, fields: &[Field]) -> Result<(), GuardError> {
        self.depth += 1;
        let walked = self.walk_struct(fields);
        self.depth -= 1;
        walked
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
            if self.depth == 0 && tag < 64 {
                self.top_level_tags |= 1 << tag;
            }
            let size_at = self.pos;
            let size = u64::from(self.read_uvarint()?);
            self.fits(size_at, size, 1)?;
            // `fits` checked that `size` is at most `remaining()`, so it fits in usize.
            let payload_end = self.pos + size as usize;
            let known = fields.iter().find(|f| f.tag == Some(tag) && f.present_in(self.version));
            match known {
                Some(field) => {
                    let outer_end = self.end;
                    self.end = payload_end;
                    self.walk(&field.ty)?;
                    if self.pos != payload_end {
                        return Err(GuardError::Malformed { at: size_at, what: "tagged field size does not match its content" });
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
            // A null nullable struct is its one-byte marker.
            Ty::Bool | Ty::Int8 | Ty::NullableStruct(_) => 1,
            Ty::Int16 => 2,
            Ty::Int32 => 4,
            Ty::Int64 | Ty::Float64 => 8,
            Ty::Uuid => 16,
            Ty::Str | Ty::NullableStr => length_prefix(true),
            Ty::Bytes | Ty::NullableBytes | Ty::Array(_) | Ty::NullableArray(_) => length_prefix(false),
            Ty::Struct(fields) => {
                let regular: usize =
                    fields.iter().filter(|f| f.tag.is_none() && f.present_in(self.version)).map(|f| self.min_size(&f.ty)).sum();
                (regular + usize::from(self.flexible)).max(1)
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Building shape tables
// ---------------------------------------------------------------------------------------------

/// A regular field present in versions `min..=max`.
pub(crate) const fn field(name: &'static str, ty: Ty, min: i16, max: i16) -> Field {
    Field { name, ty, min, max, tag: None }
}

/// A tagged field with tag `tag`, present in versions `min..=max` (all flexible).
pub(crate) const fn tagged(tag: u32, name: &'static str, ty: Ty, min: i16, max: i16) -> Field {
    Field { name, ty, min, max, tag: Some(tag) }
}

/// An api walked in versions `min..=max`, flexible from `flexible_from`.
pub(crate) const fn api(
    api_key: i16,
    name: &'static str,
    min_version: i16,
    max_version: i16,
    flexible_from: i16,
    body: &'static [Field],
) -> Shape {
    Shape { api_key, name, min_version, max_version, flexible_from, body }
}
