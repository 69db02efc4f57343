//! The transaction coordinator's records, in the key and value schemas of Kafka's
//! `__transaction_state` topic (`TransactionLogKey` v0, `TransactionLogValue` v0; v1, the
//! flexible version with tagged fields, is read too). A null value is a tombstone: the
//! transactional id expired.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMeta, TxnState};

/// A record that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad transaction record: {0}")]
pub struct RecordError(pub &'static str);

/// The key of a transactional id's record.
pub fn encode_key(transactional_id: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + transactional_id.len());
    b.put_i16(0);
    b.put_i16(transactional_id.len() as i16);
    b.put_slice(transactional_id.as_bytes());
    b.freeze()
}

/// The transactional id of a key.
pub fn decode_key(mut b: &[u8]) -> Result<String, RecordError> {
    if b.remaining() < 4 {
        return Err(RecordError("short key"));
    }
    let version = b.get_i16();
    if version != 0 {
        return Err(RecordError("unknown key version"));
    }
    string(&mut b)
}

/// The value of a transactional id's record (TransactionLogValue v0).
pub fn encode_value(m: &TxnMeta) -> Bytes {
    let mut b = BytesMut::with_capacity(64);
    b.put_i16(0);
    b.put_i64(m.producer_id);
    b.put_i16(m.producer_epoch);
    b.put_i32(m.timeout_ms);
    b.put_i8(m.state.code());
    // Kafka writes a null partition list for Empty, an empty one for the Complete states
    if m.state == TxnState::Empty {
        b.put_i32(-1);
    } else {
        let topics = m.topics();
        b.put_i32(topics.len() as i32);
        for (topic, parts) in topics {
            b.put_i16(topic.len() as i16);
            b.put_slice(topic.as_bytes());
            b.put_i32(parts.len() as i32);
            for p in parts {
                b.put_i32(p);
            }
        }
    }
    b.put_i64(m.last_update_ms);
    b.put_i64(m.start_ms);
    b.freeze()
}

fn need(b: &[u8], n: usize) -> Result<(), RecordError> {
    if b.remaining() < n { Err(RecordError("short value")) } else { Ok(()) }
}

fn string(b: &mut &[u8]) -> Result<String, RecordError> {
    need(b, 2)?;
    let len = b.get_i16();
    let len = usize::try_from(len).map_err(|_| RecordError("null string"))?;
    need(b, len)?;
    let s = std::str::from_utf8(&b[..len]).map_err(|_| RecordError("string is not UTF-8"))?.to_string();
    b.advance(len);
    Ok(s)
}

fn uvarint(b: &mut &[u8]) -> Result<u64, RecordError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        need(b, 1)?;
        let byte = b.get_u8();
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(RecordError("varint too long"))
}

fn compact_string(b: &mut &[u8]) -> Result<String, RecordError> {
    let n = uvarint(b)?;
    let len = usize::try_from(n.checked_sub(1).ok_or(RecordError("null string"))?).map_err(|_| RecordError("long string"))?;
    need(b, len)?;
    let s = std::str::from_utf8(&b[..len]).map_err(|_| RecordError("string is not UTF-8"))?.to_string();
    b.advance(len);
    Ok(s)
}

/// Tagged fields of a flexible struct: (tag, bytes) pairs.
fn tagged(b: &mut &[u8]) -> Result<Vec<(u64, Vec<u8>)>, RecordError> {
    let n = uvarint(b)?;
    let mut out = Vec::new();
    for _ in 0..n {
        let tag = uvarint(b)?;
        let len = usize::try_from(uvarint(b)?).map_err(|_| RecordError("long tagged field"))?;
        need(b, len)?;
        out.push((tag, b[..len].to_vec()));
        b.advance(len);
    }
    Ok(out)
}

/// A value back into metadata (`transactional_id` from the key).
pub fn decode_value(transactional_id: &str, mut b: &[u8]) -> Result<TxnMeta, RecordError> {
    need(b, 2)?;
    let version = b.get_i16();
    if !(0..=1).contains(&version) {
        return Err(RecordError("unknown value version"));
    }
    let flexible = version >= 1;
    need(b, 8 + 2 + 4 + 1)?;
    let producer_id = b.get_i64();
    let producer_epoch = b.get_i16();
    let timeout_ms = b.get_i32();
    let state = TxnState::from_code(b.get_i8()).ok_or(RecordError("unknown transaction state"))?;
    let mut partitions = std::collections::BTreeSet::new();
    let count: i64 = if flexible {
        uvarint(&mut b)? as i64 - 1
    } else {
        need(b, 4)?;
        b.get_i32() as i64
    };
    for _ in 0..count.max(0) {
        let topic = if flexible { compact_string(&mut b)? } else { string(&mut b)? };
        let n: i64 = if flexible {
            uvarint(&mut b)? as i64 - 1
        } else {
            need(b, 4)?;
            b.get_i32() as i64
        };
        for _ in 0..n.max(0) {
            need(b, 4)?;
            partitions.insert((topic.clone(), b.get_i32()));
        }
        if flexible {
            tagged(&mut b)?;
        }
    }
    need(b, 16)?;
    let last_update_ms = b.get_i64();
    let start_ms = b.get_i64();
    let mut m = TxnMeta::new(transactional_id, producer_id, producer_epoch, timeout_ms, last_update_ms);
    m.state = state;
    m.partitions = partitions;
    m.start_ms = start_ms;
    if flexible {
        for (tag, v) in tagged(&mut b)? {
            // 0: PreviousProducerId; 1: NextProducerId (int64)
            if tag == 0 && v.len() == 8 {
                m.previous_producer_id = i64::from_be_bytes(v.try_into().expect("8 bytes"));
            }
        }
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_with_and_without_partitions() {
        let mut m = TxnMeta::new("t-1", 4000, 3, 60_000, 123);
        m.state = TxnState::Ongoing;
        m.start_ms = 100;
        m.partitions.insert(("a".into(), 2));
        m.partitions.insert(("a".into(), 0));
        m.partitions.insert(("b".into(), 1));
        let v = encode_value(&m);
        let back = decode_value("t-1", &v).unwrap();
        assert_eq!(back.producer_id, 4000);
        assert_eq!(back.producer_epoch, 3);
        assert_eq!(back.timeout_ms, 60_000);
        assert_eq!(back.state, TxnState::Ongoing);
        assert_eq!(back.partitions, m.partitions);
        assert_eq!((back.last_update_ms, back.start_ms), (123, 100));
        assert_eq!(decode_key(&encode_key("t-1")).unwrap(), "t-1");
        // Empty: a null partition list (int32 -1 after the status byte)
        let e = TxnMeta::new("t-2", 1, 0, 1000, 5);
        let v = encode_value(&e);
        assert_eq!(&v[2 + 8 + 2 + 4 + 1..2 + 8 + 2 + 4 + 1 + 4], &(-1i32).to_be_bytes());
        assert_eq!(decode_value("t-2", &v).unwrap().state, TxnState::Empty);
        assert!(decode_value("t-2", &v[..10]).is_err());
    }
}
