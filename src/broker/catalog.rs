//! The topic catalog: topic metadata and the producer-id block, as entries of the `meta` keyed
//! log. Every change is synced before the request that made it is answered.
//!
//! Keys and values (all integers big-endian):
//! - `topic/<name>` → `u8 version (1)`, 16-byte topic id, `i32 partitions`, `u16 count` of
//!   overrides, each `u16 length + name`, `u16 length + value`; a tombstone deletes the topic.
//! - `producer-ids` → `i64`: producer ids below it may have been handed out.

use std::collections::BTreeMap;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use uuid::Uuid;

/// A topic as the catalog stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRecord {
    pub name: String,
    pub id: Uuid,
    pub partitions: i32,
    pub overrides: BTreeMap<String, String>,
}

const TOPIC_PREFIX: &[u8] = b"topic/";
/// The key of the producer-id block entry.
pub const PRODUCER_IDS: &[u8] = b"producer-ids";

pub fn topic_key(name: &str) -> Bytes {
    let mut k = BytesMut::with_capacity(TOPIC_PREFIX.len() + name.len());
    k.put_slice(TOPIC_PREFIX);
    k.put_slice(name.as_bytes());
    k.freeze()
}

pub fn encode_topic(t: &TopicRecord) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(1);
    b.put_slice(t.id.as_bytes());
    b.put_i32(t.partitions);
    b.put_u16(t.overrides.len() as u16);
    for (k, v) in &t.overrides {
        b.put_u16(k.len() as u16);
        b.put_slice(k.as_bytes());
        b.put_u16(v.len() as u16);
        b.put_slice(v.as_bytes());
    }
    b.freeze()
}

/// What one catalog entry says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEntry {
    Topic(TopicRecord),
    TopicDeleted(String),
    ProducerIds(i64),
}

fn string(b: &mut &[u8]) -> Option<String> {
    if b.remaining() < 2 {
        return None;
    }
    let n = b.get_u16() as usize;
    if b.remaining() < n {
        return None;
    }
    let s = String::from_utf8(b[..n].to_vec()).ok()?;
    b.advance(n);
    Some(s)
}

/// Reads a catalog entry; `None` if it is not one we know how to read.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<CatalogEntry> {
    if key == PRODUCER_IDS {
        let v = value?;
        return (v.len() == 8).then(|| CatalogEntry::ProducerIds(i64::from_be_bytes(v.try_into().expect("8 bytes"))));
    }
    let name = String::from_utf8(key.strip_prefix(TOPIC_PREFIX)?.to_vec()).ok()?;
    let Some(mut v) = value else {
        return Some(CatalogEntry::TopicDeleted(name));
    };
    if v.remaining() < 1 + 16 + 4 + 2 || v.get_u8() != 1 {
        return None;
    }
    let id = Uuid::from_slice(&v[..16]).ok()?;
    v.advance(16);
    let partitions = v.get_i32();
    let n = v.get_u16();
    let mut overrides = BTreeMap::new();
    for _ in 0..n {
        let k = string(&mut v)?;
        let val = string(&mut v)?;
        overrides.insert(k, val);
    }
    Some(CatalogEntry::Topic(TopicRecord { name, id, partitions, overrides }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        let t = TopicRecord { name: "a.b".into(), id: Uuid::new_v4(), partitions: 3, overrides: o };
        let v = encode_topic(&t);
        assert_eq!(decode(&topic_key("a.b"), Some(&v)), Some(CatalogEntry::Topic(t)));
        assert_eq!(decode(&topic_key("x"), None), Some(CatalogEntry::TopicDeleted("x".into())));
        assert_eq!(decode(PRODUCER_IDS, Some(&7i64.to_be_bytes())), Some(CatalogEntry::ProducerIds(7)));
        for cut in 0..v.len() {
            let _ = decode(&topic_key("a.b"), Some(&v[..cut]));
        }
    }
}
