//! Reading the records inside a stored batch: only where a broker must look inside (offset by
//! timestamp, compaction). Our own walker, bounded by the bytes present: no claimed count or
//! length ever sizes an allocation.

use bytes::Bytes;
use kafka_protocol::compression::{Decompressor, Gzip, Lz4, Snappy, Zstd};

use super::{BatchHeader, HEADER_LEN};

/// One record, as much of it as corral needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordView {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    /// `None` for a tombstone.
    pub value: Option<Bytes>,
    /// `false` for a tombstone (null value).
    pub has_value: bool,
    /// The record's bytes as stored (length prefix included), uncompressed.
    pub raw: Bytes,
}

/// Why a batch's records cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("cannot read records: {0}")]
pub struct RecordsError(pub String);

fn varint(b: &[u8], at: &mut usize) -> Result<i64, RecordsError> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*at).ok_or_else(|| RecordsError("truncated varint".into()))?;
        *at += 1;
        raw |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(RecordsError("varint too long".into()))
}

fn take(b: &Bytes, at: &mut usize, len: i64) -> Result<Option<Bytes>, RecordsError> {
    if len < 0 {
        return Ok(None);
    }
    let end = at.checked_add(len as usize).filter(|e| *e <= b.len()).ok_or_else(|| RecordsError("field runs past the record".into()))?;
    let out = b.slice(*at..end);
    *at = end;
    Ok(Some(out))
}

/// Decompresses (if needed) and walks every record of a batch.
pub fn read_records(batch: &Bytes) -> Result<Vec<RecordView>, RecordsError> {
    let h = BatchHeader::parse(batch).ok_or_else(|| RecordsError("short batch".into()))?;
    let end = h.total_len().min(batch.len());
    let mut body = batch.slice(HEADER_LEN.min(end)..end);
    let plain: Bytes = match h.compression() {
        0 => body,
        c => {
            let r = match c {
                1 => Gzip::decompress(&mut body, |b| Ok(b.split_to(b.len()))),
                2 => Snappy::decompress(&mut body, |b| Ok(b.split_to(b.len()))),
                3 => Lz4::decompress(&mut body, |b| Ok(b.split_to(b.len()))),
                4 => Zstd::decompress(&mut body, |b| Ok(b.split_to(b.len()))),
                _ => return Err(RecordsError(format!("unknown compression {c}"))),
            };
            r.map_err(|e| RecordsError(e.to_string()))?
        }
    };
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < plain.len() && out.len() < h.records_count.max(0) as usize {
        let record_start = at;
        let len = varint(&plain, &mut at)?;
        let start = at;
        let end = start
            .checked_add(usize::try_from(len).map_err(|_| RecordsError("negative record length".into()))?)
            .filter(|e| *e <= plain.len())
            .ok_or_else(|| RecordsError("record runs past the batch".into()))?;
        let rec = plain.slice(..end);
        at += 1; // attributes
        let ts_delta = varint(&rec, &mut at)?;
        let off_delta = varint(&rec, &mut at)?;
        let key_len = varint(&rec, &mut at)?;
        let key = take(&rec, &mut at, key_len)?;
        let value_len = varint(&rec, &mut at)?;
        let value = take(&rec, &mut at, value_len)?;
        out.push(RecordView {
            offset: h.base_offset + off_delta,
            timestamp: if h.is_log_append_time() { h.max_timestamp } else { h.base_timestamp + ts_delta },
            key,
            has_value: value.is_some(),
            value,
            raw: plain.slice(record_start..end),
        });
        at = end;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn batch(compression: Compression) -> Bytes {
        let records: Vec<Record> = (0..4)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                // the crate's encoder batches records whose offset - sequence agree
                sequence: i as i32 - 1,
                timestamp: 500 + i * 10,
                key: Some(Bytes::from(format!("k{i}"))),
                value: if i == 3 { None } else { Some(Bytes::from_static(b"v")) },
                headers: Default::default(),
            })
            .collect();
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(&mut buf, &records, &RecordEncodeOptions { version: 2, compression }).unwrap();
        let mut b = buf.to_vec();
        b[0..8].copy_from_slice(&40i64.to_be_bytes());
        Bytes::from(b)
    }

    #[test]
    fn every_codec_reads_back() {
        for c in [Compression::None, Compression::Gzip, Compression::Snappy, Compression::Lz4, Compression::Zstd] {
            let r = read_records(&batch(c)).unwrap();
            assert_eq!(r.len(), 4, "{c:?}");
            assert_eq!(r[2].offset, 42);
            assert_eq!(r[2].timestamp, 520);
            assert_eq!(r[1].key.as_deref(), Some(&b"k1"[..]));
            assert!(!r[3].has_value);
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let b = batch(Compression::None);
        for cut in 0..b.len() {
            let _ = read_records(&b.slice(..cut));
        }
        let mut v = b.to_vec();
        for b in v.iter_mut().skip(61) {
            *b = 0xff;
        }
        assert!(read_records(&Bytes::from(v)).is_err());
    }
}
