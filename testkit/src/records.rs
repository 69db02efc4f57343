//! Record batches as a client encodes them (kafka-protocol's encoder, format v2, no
//! compression), and the subscription a consumer sends in JoinGroup.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// One record to put in a batch.
#[derive(Clone, Debug, Default)]
pub struct Rec {
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    /// Creation time, ms since the epoch.
    pub timestamp: i64,
}

/// One v2 batch of `records` at offsets 0, 1, ... . `producer_id` -1 is a plain producer;
/// otherwise an idempotent one (epoch 0) whose sequence numbers start at `base_sequence`.
pub fn record_batch(records: impl IntoIterator<Item = Rec>, producer_id: i64, base_sequence: i32) -> Bytes {
    producer_batch(records, producer_id, if producer_id >= 0 { 0 } else { -1 }, base_sequence, false)
}

/// [`record_batch`] of a producer at `epoch`, in a transaction when `transactional`.
pub fn producer_batch(
    records: impl IntoIterator<Item = Rec>,
    producer_id: i64,
    epoch: i16,
    base_sequence: i32,
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // the encoder puts records in one batch only while offset - sequence agrees
            sequence: if producer_id >= 0 { base_sequence + i as i32 } else { i as i32 - 1 },
            timestamp: r.timestamp,
            key: r.key,
            value: r.value,
            headers: Default::default(),
        })
        .collect();
    let mut b = BytesMut::new();
    RecordBatchEncoder::encode(&mut b, &records, &RecordEncodeOptions { version: 2, compression: Compression::None })
        .expect("an uncompressed batch always encodes");
    b.freeze()
}

/// A consumer's subscription (ConsumerProtocolSubscription v0, no user data), the metadata
/// of its protocol in JoinGroup.
pub fn consumer_subscription(topics: &[&str]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1);
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subscription_is_version_topics_and_null_user_data() {
        assert_eq!(&consumer_subscription(&["bench"])[..], &[0, 0, 0, 0, 0, 1, 0, 5, b'b', b'e', b'n', b'c', b'h', 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn a_batch_holds_its_records() {
        let recs = (0..3).map(|i| Rec { key: None, value: Some(Bytes::from(format!("v{i}"))), timestamp: 7 });
        let b = record_batch(recs, -1, 0);
        // record count, at the end of the 61-byte batch header
        assert_eq!(i32::from_be_bytes(b[57..61].try_into().unwrap()), 3);
        // last offset delta
        assert_eq!(i32::from_be_bytes(b[23..27].try_into().unwrap()), 2);
    }
}
