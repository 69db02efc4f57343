//! Kafka's record batch format, shared by the logs (`log`) and the brokers' request handling
//! (`broker`, `proxy`): record batches (magic 2) as bytes: the 61-byte header, its checks, and the two patches a
//! broker makes (base offset, and LogAppendTime). Records are never decoded on the produce path.
//!
//! Header layout (big-endian), from the start of a batch:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | base offset (assigned by the broker; not covered by the CRC) |
//! | 8 | 4 | batch length (bytes after this field) |
//! | 12 | 4 | partition leader epoch (set by the broker; not covered by the CRC) |
//! | 16 | 1 | magic (2) |
//! | 17 | 4 | CRC-32C of everything from offset 21 to the end |
//! | 21 | 2 | attributes: bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control |
//! | 23 | 4 | last offset delta |
//! | 27 | 8 | base timestamp |
//! | 35 | 8 | max timestamp |
//! | 43 | 8 | producer id |
//! | 51 | 2 | producer epoch |
//! | 53 | 4 | base sequence |
//! | 57 | 4 | record count |
//! | 61 | … | records |

pub mod records;

/// Size of the batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before the batch length field's coverage starts (base offset + length).
pub const LOG_OVERHEAD: usize = 12;

const CRC_START: usize = 21;
const ATTR_TIMESTAMP_TYPE: i16 = 0x08;
const ATTR_TRANSACTIONAL: i16 = 0x10;
const ATTR_CONTROL: i16 = 0x20;

/// The parsed header of one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub records_count: i32,
}

/// Why a produce's records are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// Sizes that do not add up, or a CRC that does not match: CORRUPT_MESSAGE.
    #[error("corrupt record batch: {0}")]
    Corrupt(&'static str),
    /// Valid bytes that this request may not carry (old magic, no batch, ...): INVALID_RECORD.
    #[error("invalid record batch: {0}")]
    Invalid(&'static str),
    /// Timestamps a producer may not send: INVALID_TIMESTAMP.
    #[error("invalid timestamp: {0}")]
    Timestamp(&'static str),
}

impl BatchError {
    /// The Kafka error code for this problem.
    pub fn code(&self) -> crate::error::ErrorCode {
        match self {
            BatchError::Corrupt(_) => crate::error::ErrorCode::CORRUPT_MESSAGE,
            BatchError::Invalid(_) => crate::error::ErrorCode::INVALID_RECORD,
            BatchError::Timestamp(_) => crate::error::ErrorCode::INVALID_TIMESTAMP,
        }
    }
}

fn i16_at(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Reads a header. `None` if fewer than [`HEADER_LEN`] bytes are given.
    pub fn parse(b: &[u8]) -> Option<Self> {
        if b.len() < HEADER_LEN {
            return None;
        }
        Some(BatchHeader {
            base_offset: i64_at(b, 0),
            batch_length: i32_at(b, 8),
            partition_leader_epoch: i32_at(b, 12),
            magic: b[16] as i8,
            crc: u32::from_be_bytes([b[17], b[18], b[19], b[20]]),
            attributes: i16_at(b, 21),
            last_offset_delta: i32_at(b, 23),
            base_timestamp: i64_at(b, 27),
            max_timestamp: i64_at(b, 35),
            producer_id: i64_at(b, 43),
            producer_epoch: i16_at(b, 51),
            base_sequence: i32_at(b, 53),
            records_count: i32_at(b, 57),
        })
    }

    /// Whole size of the batch on the wire.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }
    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }
    pub fn compression(&self) -> i16 {
        self.attributes & 0x07
    }
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE != 0
    }
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }
    /// Whether the batch carries idempotent-producer state.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }
    /// Sequence number of the last record (sequences wrap at i32::MAX to 0).
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence < 0 {
            return self.base_sequence;
        }
        let last = self.base_sequence as i64 + self.last_offset_delta as i64;
        if last > i32::MAX as i64 { (last - i32::MAX as i64 - 1) as i32 } else { last as i32 }
    }
}

/// CRC-32C over the part of a batch the CRC covers.
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START..])
}

/// Checks a Produce partition's records the way Kafka does for Produce v3+: exactly one
/// magic-2 batch, a matching CRC, and a header a client may send (base offset 0, a positive
/// count equal to the offset range, no control or LogAppendTime flags). Returns its header.
pub fn validate_produce_records(records: &[u8]) -> Result<BatchHeader, BatchError> {
    let complete = records.len() >= LOG_OVERHEAD
        && i32::from_be_bytes([records[8], records[9], records[10], records[11]]) as i64 + LOG_OVERHEAD as i64 <= records.len() as i64;
    if records.len() < HEADER_LEN || !complete {
        return Err(BatchError::Invalid("produce requests must have at least one record batch per partition"));
    }
    if records[16] as i8 != 2 {
        return Err(BatchError::Invalid("produce requests are only allowed to contain record batches with magic version 2"));
    }
    let h = BatchHeader::parse(records).ok_or(BatchError::Invalid("truncated batch header"))?;
    if (h.batch_length as usize) < HEADER_LEN - LOG_OVERHEAD {
        return Err(BatchError::Corrupt("batch length smaller than a batch header"));
    }
    if h.total_len() != records.len() {
        return Err(BatchError::Invalid("produce requests are only allowed to contain exactly one record batch per partition"));
    }
    if compute_crc(records) != h.crc {
        return Err(BatchError::Corrupt("record is corrupt (CRC-32C mismatch)"));
    }
    if h.base_offset != 0 {
        return Err(BatchError::Invalid("the base offset of a produced batch must be 0"));
    }
    if h.records_count <= 0 {
        return Err(BatchError::Invalid("invalid reported count of records"));
    }
    if h.last_offset_delta < 0 || h.last_offset_delta != h.records_count - 1 {
        return Err(BatchError::Invalid("inconsistent batch offset range and count of records"));
    }
    if h.compression() > 4 {
        return Err(BatchError::Corrupt("unknown compression codec"));
    }
    if h.is_control() {
        return Err(BatchError::Invalid("clients are not allowed to write control records"));
    }
    if h.is_log_append_time() {
        return Err(BatchError::Timestamp("producers may not set the LogAppendTime attribute"));
    }
    if h.producer_id >= 0 && h.base_sequence < 0 {
        return Err(BatchError::Invalid("invalid sequence number"));
    }
    Ok(h)
}

/// Writes the broker-assigned base offset and partition leader epoch (neither is under the CRC).
pub fn patch_offsets(batch: &mut [u8], base_offset: i64, leader_epoch: i32) {
    batch[0..8].copy_from_slice(&base_offset.to_be_bytes());
    batch[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
}

/// Turns a batch into a LogAppendTime batch stamped `now_ms`, as a topic with
/// `message.timestamp.type=LogAppendTime` requires, and fixes the CRC.
pub fn stamp_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attrs = i16_at(batch, 21) | ATTR_TIMESTAMP_TYPE;
    batch[21..23].copy_from_slice(&attrs.to_be_bytes());
    batch[35..43].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
}

/// The producer identity a batch carries: `(-1, -1, -1)` for a plain producer; an idempotent
/// one's id, epoch and the sequence of its first record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStamp {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
}

fn put_varint(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// A record's key and value as [`encode_batch`] takes them (`None` = null).
pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

/// Encodes one uncompressed magic-2 batch of `records` (key, value; `None` value = tombstone),
/// all stamped `timestamp`, as a producer sends it (base offset 0, no partition leader epoch).
/// `None` for an empty list.
pub fn encode_batch(records: &[KeyValue<'_>], timestamp: i64, stamp: ProducerStamp) -> Option<Vec<u8>> {
    encode_with(records, timestamp, stamp, 0)
}

/// A transaction marker: the end of a producer's transaction in one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Marker {
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// The transaction coordinator's epoch that wrote it.
    pub coordinator_epoch: i32,
}

/// Encodes a control batch holding one transaction marker, as Kafka's brokers write it:
/// attributes transactional + control, the producer's id and epoch, base sequence -1, one
/// record whose key is `{version 0: int16, type: int16 (0 ABORT, 1 COMMIT)}` and whose value
/// is `{version 0: int16, coordinator epoch: int32}`.
pub fn encode_marker(producer_id: i64, producer_epoch: i16, marker: Marker, timestamp: i64) -> Vec<u8> {
    let key = [0u8, 0, 0, u8::from(marker.commit)];
    let mut value = vec![0u8, 0];
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let stamp = ProducerStamp { producer_id, producer_epoch, base_sequence: -1 };
    encode_with(&[(Some(&key), Some(&value))], timestamp, stamp, ATTR_TRANSACTIONAL | ATTR_CONTROL).expect("one record")
}

/// The marker a control batch holds (`None` if `batch` is not a well-formed marker batch).
pub fn parse_marker(batch: &[u8]) -> Option<Marker> {
    let h = BatchHeader::parse(batch)?;
    if !h.is_control() || h.compression() != 0 || h.records_count < 1 {
        return None;
    }
    let mut at = HEADER_LEN;
    let rec = |at: &mut usize| -> Option<i64> {
        let mut raw: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *batch.get(*at)?;
            *at += 1;
            raw |= ((byte & 0x7f) as u64) << shift;
            if byte & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    };
    let _len = rec(&mut at)?;
    at += 1; // attributes
    let _ts = rec(&mut at)?;
    let _delta = rec(&mut at)?;
    let key_len = usize::try_from(rec(&mut at)?).ok()?;
    let key = batch.get(at..at + key_len)?;
    at += key_len;
    if key.len() < 4 {
        return None;
    }
    let kind = i16_at(key, 2);
    let value_len = usize::try_from(rec(&mut at)?).ok()?;
    let value = batch.get(at..at + value_len)?;
    let commit = match kind {
        0 => false,
        1 => true,
        _ => return None,
    };
    let coordinator_epoch = if value.len() >= 6 { i32_at(value, 2) } else { -1 };
    Some(Marker { commit, coordinator_epoch })
}

fn encode_with(records: &[KeyValue<'_>], timestamp: i64, stamp: ProducerStamp, attributes: i16) -> Option<Vec<u8>> {
    if records.is_empty() {
        return None;
    }
    let mut body = Vec::new();
    let mut rec = Vec::new();
    for (delta, (key, value)) in records.iter().enumerate() {
        rec.clear();
        rec.push(0); // attributes
        put_varint(&mut rec, 0); // timestamp delta
        put_varint(&mut rec, delta as i64);
        for field in [key, value] {
            match field {
                Some(b) => {
                    put_varint(&mut rec, b.len() as i64);
                    rec.extend_from_slice(b);
                }
                None => put_varint(&mut rec, -1),
            }
        }
        put_varint(&mut rec, 0); // headers
        put_varint(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let mut b = Vec::with_capacity(HEADER_LEN + body.len());
    b.extend_from_slice(&0i64.to_be_bytes());
    b.extend_from_slice(&((HEADER_LEN - LOG_OVERHEAD + body.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes());
    b.push(2);
    b.extend_from_slice(&[0; 4]); // CRC, below
    b.extend_from_slice(&attributes.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&stamp.producer_id.to_be_bytes());
    b.extend_from_slice(&stamp.producer_epoch.to_be_bytes());
    b.extend_from_slice(&stamp.base_sequence.to_be_bytes());
    b.extend_from_slice(&(records.len() as i32).to_be_bytes());
    b.extend_from_slice(&body);
    let crc = compute_crc(&b);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    Some(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use corral_testkit::records::{Rec, record_batch};

    #[test]
    fn encoded_batches_pass_produce_validation_and_read_back() {
        let stamp = ProducerStamp { producer_id: 7, producer_epoch: 1, base_sequence: 40 };
        let b = encode_batch(&[(Some(b"k1"), Some(b"v1")), (Some(b"k2"), None)], 1234, stamp).unwrap();
        let h = validate_produce_records(&b).unwrap();
        assert_eq!((h.records_count, h.last_offset_delta, h.base_sequence, h.producer_id, h.producer_epoch), (2, 1, 40, 7, 1));
        let recs = crate::batch::records::read_records(&bytes::Bytes::from(b.clone())).unwrap();
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].key.as_deref(), Some(&b"k1"[..]));
        assert_eq!(recs[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(recs[1].value, None);
        assert_eq!(recs[1].timestamp, 1234);
        assert!(encode_batch(&[], 0, stamp).is_none());
        let m = encode_marker(9, 3, Marker { commit: true, coordinator_epoch: 4 }, 55);
        let h = BatchHeader::parse(&m).unwrap();
        assert!(h.is_control() && h.is_transactional());
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence, h.records_count), (9, 3, -1, 1));
        assert_eq!(compute_crc(&m), h.crc);
        assert_eq!(parse_marker(&m), Some(Marker { commit: true, coordinator_epoch: 4 }));
        let a = encode_marker(9, 3, Marker { commit: false, coordinator_epoch: 0 }, 55);
        assert_eq!(parse_marker(&a), Some(Marker { commit: false, coordinator_epoch: 0 }));
        assert_eq!(parse_marker(&b), None);
    }

    /// Encodes `n` records with the kafka-protocol crate, as a client would (testkit's
    /// builder, shared with the integration tests and the load generator).
    pub(crate) fn client_batch(n: i32, producer_id: i64, base_sequence: i32) -> Vec<u8> {
        let records = (0..n).map(|i| Rec {
            key: Some(bytes::Bytes::from(format!("k{i}"))),
            value: Some(bytes::Bytes::from(format!("v{i}"))),
            timestamp: 1_000 + i as i64,
        });
        record_batch(records, producer_id, base_sequence).to_vec()
    }

    #[test]
    fn a_client_batch_validates_and_parses() {
        let b = client_batch(3, 7, 10);
        let h = validate_produce_records(&b).unwrap();
        assert_eq!((h.records_count, h.last_offset_delta, h.producer_id, h.base_sequence), (3, 2, 7, 10));
        assert_eq!(h.last_sequence(), 12);
        assert_eq!(h.max_timestamp, 1_002);
    }

    #[test]
    fn corruption_is_detected() {
        let mut b = client_batch(2, -1, -1);
        let last = b.len() - 1;
        b[last] ^= 1;
        assert_eq!(validate_produce_records(&b).unwrap_err().code(), crate::error::ErrorCode::CORRUPT_MESSAGE);
        let b = client_batch(2, -1, -1);
        let invalid = |b: &[u8]| validate_produce_records(b).unwrap_err().code() == crate::error::ErrorCode::INVALID_RECORD;
        assert!(invalid(&b[..b.len() - 1]), "truncated");
        let mut two = b.clone();
        two.extend_from_slice(&b);
        assert!(invalid(&two), "two batches");
        let mut m = b.clone();
        m[16] = 1;
        assert!(invalid(&m), "magic 1");
        assert!(invalid(&[]), "no batch");
        let mut off = b.clone();
        off[7] = 5;
        assert!(invalid(&off), "base offset not 0");
    }

    #[test]
    fn patches_keep_the_crc_valid() {
        let mut b = client_batch(2, -1, -1);
        patch_offsets(&mut b, 1234, 0);
        stamp_log_append_time(&mut b, 99);
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(compute_crc(&b), h.crc);
        assert_eq!(h.base_offset, 1234);
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 99);
    }

    #[test]
    fn sequences_wrap() {
        let mut b = client_batch(3, 1, 0);
        b[53..57].copy_from_slice(&(i32::MAX - 1).to_be_bytes());
        let h = BatchHeader::parse(&b).unwrap();
        assert_eq!(h.last_sequence(), 0, "MAX-1, MAX, 0");
    }
}
