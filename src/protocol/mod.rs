//! kafka-protocol glue: the one table of supported versions, request decoding, response encoding.
//!
//! Decoding goes: peek api key/version/correlation id → check the version against
//! [`SUPPORTED`] → decode the header at the header version the key and version imply →
//! walk the body with [`guard`] (so no claimed length can make the crate allocate without
//! bound) → decode the body with the crate. Encoding writes the size prefix, the response
//! header at its version (always v0 for ApiVersions) and the body at the request's version.

pub mod guard;
pub mod summary;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, RequestHeader, RequestKind, ResponseHeader, ResponseKind, api_versions_response::ApiVersion,
};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::error::ErrorCode;
use crate::frame::HeaderPeek;

/// Every api key corral serves, with the versions it serves. This table is the single source
/// of truth: ApiVersions advertises exactly it, and the decoder refuses anything outside it.
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 11),
    (ApiKey::Fetch, 4, 17),
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::DescribeLogDirs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::TxnOffsetCommit, 0, 5),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
];

/// The versions of `api_key` broker mode serves, if it serves it at all.
pub fn supported_range(api_key: i16) -> Option<(ApiKey, i16, i16)> {
    SUPPORTED.iter().copied().find(|(k, _, _)| *k as i16 == api_key)
}

/// Broker mode's ApiVersions table, in api key order.
pub fn api_version_entries() -> Vec<ApiVersion> {
    VersionTable::broker().api_version_entries()
}

/// The versions one server serves, per api key: what its ApiVersions advertises and what its
/// decoder lets through. Broker mode serves [`SUPPORTED`]; proxy mode serves its own group
/// apis plus, for everything it forwards, what both the guard and the upstream brokers handle.
#[derive(Debug, Clone)]
pub struct VersionTable {
    /// Indexed by api key.
    ranges: Vec<Option<(ApiKey, i16, i16)>>,
}

impl VersionTable {
    /// A table of exactly these entries.
    pub fn new(entries: impl IntoIterator<Item = (ApiKey, i16, i16)>) -> Self {
        let mut ranges: Vec<Option<(ApiKey, i16, i16)>> = Vec::new();
        for (k, min, max) in entries {
            let i = k as i16 as usize;
            if ranges.len() <= i {
                ranges.resize(i + 1, None);
            }
            ranges[i] = Some((k, min, max));
        }
        VersionTable { ranges }
    }

    /// Broker mode's table: [`SUPPORTED`].
    pub fn broker() -> Self {
        Self::new(SUPPORTED.iter().copied())
    }

    /// The range served for `api_key`, if it is served.
    pub fn range(&self, api_key: i16) -> Option<(ApiKey, i16, i16)> {
        usize::try_from(api_key).ok().and_then(|i| self.ranges.get(i).copied().flatten())
    }

    /// Every entry, in api key order.
    pub fn entries(&self) -> impl Iterator<Item = (ApiKey, i16, i16)> + '_ {
        self.ranges.iter().flatten().copied()
    }

    /// The ApiVersions response's list.
    pub fn api_version_entries(&self) -> Vec<ApiVersion> {
        self.entries()
            .map(|(k, min, max)| ApiVersion::default().with_api_key(k as i16).with_min_version(min).with_max_version(max))
            .collect()
    }
}

/// One decoded request.
#[derive(Debug)]
pub struct Request {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    pub body: RequestKind,
}

/// What to do with a frame that is not a request we can serve.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// An ApiVersions request newer than we know: answer with the v0 fallback (KIP-511).
    #[error("ApiVersions v{version} is newer than we serve")]
    ApiVersionsTooNew { correlation_id: i32, version: i16 },
    /// Not an api key we serve. Kafka closes the connection: no valid response exists.
    #[error("unsupported api key {0}")]
    UnknownApiKey(i16),
    /// A version outside the range we advertise. Kafka closes the connection.
    #[error("unsupported version {version} of {api_key:?} (we serve {min}..={max})")]
    UnsupportedVersion { api_key: ApiKey, version: i16, min: i16, max: i16 },
    /// The header or body does not parse. Kafka closes the connection.
    #[error("malformed {api_key:?} v{version} request: {reason}")]
    Malformed { api_key: ApiKey, version: i16, reason: String },
    /// Not even the fixed header fields are there.
    #[error("frame too short for a request header")]
    TooShort,
}

/// A request whose version is served and whose header and body passed the guard, not yet
/// decoded: what the proxy forwards as bytes, and what [`decode_request`] decodes.
#[derive(Debug)]
pub struct Checked {
    pub api_key: ApiKey,
    pub version: i16,
    pub header: RequestHeader,
    /// The whole frame (header and body), as it arrived.
    pub frame: Bytes,
    /// The body: the bytes after the header.
    pub body: Bytes,
}

/// Checks one request frame (the size prefix already removed) against `table` and the guard.
pub fn check_request(frame: Bytes, table: &VersionTable) -> Result<Checked, DecodeError> {
    let peek = HeaderPeek::read(&frame).ok_or(DecodeError::TooShort)?;
    let Some((api_key, min, max)) = table.range(peek.api_key) else {
        return Err(DecodeError::UnknownApiKey(peek.api_key));
    };
    let version = peek.api_version;
    if version < min || version > max {
        if api_key == ApiKey::ApiVersions && version > max {
            return Err(DecodeError::ApiVersionsTooNew { correlation_id: peek.correlation_id, version });
        }
        return Err(DecodeError::UnsupportedVersion { api_key, version, min, max });
    }
    let malformed = |reason: String| DecodeError::Malformed { api_key, version, reason };
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf, api_key.request_header_version(version)).map_err(|e| malformed(format!("header: {e}")))?;
    guard::check_request_body(api_key as i16, version, &buf).map_err(|e| malformed(e.to_string()))?;
    Ok(Checked { api_key, version, header, frame, body: buf })
}

/// Decodes one request frame (the size prefix already removed), served per `table`.
pub fn decode_request(frame: Bytes, table: &VersionTable) -> Result<Request, DecodeError> {
    decode_checked(check_request(frame, table)?)
}

/// Decodes the body of a checked request.
pub fn decode_checked(checked: Checked) -> Result<Request, DecodeError> {
    let Checked { api_key, version, header, mut body, .. } = checked;
    let body =
        RequestKind::decode(api_key, &mut body, version).map_err(|e| DecodeError::Malformed { api_key, version, reason: e.to_string() })?;
    Ok(Request { api_key, version, header, body })
}

/// Decodes a response that came from an upstream broker (`frame`: header and body, without the
/// size prefix): the header at its version, then the body, which must pass the guard's
/// response shape first.
pub fn decode_response<T: Decodable + kafka_protocol::protocol::HeaderVersion>(
    api_key: i16,
    version: i16,
    frame: Bytes,
) -> Result<T, String> {
    let mut buf = frame;
    ResponseHeader::decode(&mut buf, T::header_version(version)).map_err(|e| format!("header: {e}"))?;
    // Bytes after a whole body are ignored, as Kafka's clients ignore them (librdkafka's mock
    // cluster leaves one after some flexible responses).
    guard::check_response_body(api_key, version, &buf).map_err(|e| e.to_string())?;
    T::decode(&mut buf, version).map_err(|e| e.to_string())
}

/// A response that could not be encoded: a field set that the version lacks. That is a bug
/// in a handler; the connection is closed and the bug logged.
#[derive(Debug, thiserror::Error)]
#[error("cannot encode {api_key:?} v{version} response: {reason}")]
pub struct EncodeError {
    pub api_key: ApiKey,
    pub version: i16,
    pub reason: String,
}

/// Appends one whole response frame (size, header, body) to `out`.
pub fn encode_response(
    out: &mut BytesMut,
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &ResponseKind,
) -> Result<(), EncodeError> {
    let start = out.len();
    out.put_i32(0);
    let fail = |reason: String| EncodeError { api_key, version, reason };
    let header_version = body.header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    if let Err(e) = header.encode(out, header_version) {
        out.truncate(start);
        return Err(fail(e.to_string()));
    }
    if let Err(e) = body.encode(out, version) {
        out.truncate(start);
        return Err(fail(e.to_string()));
    }
    let size = (out.len() - start - 4) as i32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The KIP-511 fallback: a v0 ApiVersions body with UNSUPPORTED_VERSION listing only our
/// ApiVersions range (as Kafka does), after a v0 response header, so a client that asked with
/// a newer version retries with one we serve.
pub fn encode_api_versions_fallback(out: &mut BytesMut, correlation_id: i32, table: &VersionTable) {
    let body = ApiVersionsResponse::default()
        .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
        .with_api_keys(table.api_version_entries().into_iter().filter(|a| a.api_key == ApiKey::ApiVersions as i16).collect());
    encode_response(out, ApiKey::ApiVersions, 0, correlation_id, &ResponseKind::ApiVersions(body))
        .expect("a v0 ApiVersions response always encodes");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_within_what_the_crate_knows_and_sorted_without_duplicates() {
        let mut seen = std::collections::HashSet::new();
        for (k, min, max) in SUPPORTED {
            let r = k.valid_versions();
            assert!(*min >= r.min && *max <= r.max, "{k:?} {min}..{max} vs {r:?}");
            assert!(seen.insert(*k as i16), "{k:?} twice");
        }
    }

    #[test]
    fn fallback_is_v0_with_unsupported_version() {
        let mut out = BytesMut::new();
        encode_api_versions_fallback(&mut out, 42, &VersionTable::broker());
        let mut b = out.freeze();
        let size = i32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
        assert_eq!(size, b.len() - 4);
        let _ = bytes::Buf::get_i32(&mut b);
        assert_eq!(bytes::Buf::get_i32(&mut b), 42);
        let r = ApiVersionsResponse::decode(&mut b, 0).unwrap();
        assert_eq!(ErrorCode::from(r.error_code), ErrorCode::UNSUPPORTED_VERSION);
        assert_eq!(r.api_keys.len(), 1);
        assert_eq!(r.api_keys[0].api_key, 18);
    }
}
