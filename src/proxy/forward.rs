//! The forwarding path of one client connection: requests corral does not answer itself go
//! to an upstream broker as bytes, pipelined, and their responses come back in order.
//!
//! A request that came in on upstream node N's listener goes to node N; one that came in on
//! corral's own listener (the bootstrap address) goes to the upstream controller, or to any
//! broker when the controller is unknown, and stays with that broker for the connection's
//! life. Only the 4-byte correlation id of a request changes on its way (the upstream link has
//! its own); the body — record batches included — is never decoded. Responses are checked
//! against the guard's response shape where there is one (a bad upstream response closes the
//! upstream link and this client connection, with a log line), and decoded only to rewrite
//! addresses (Metadata, DescribeCluster, and Produce/Fetch when they carry KIP-951 endpoints)
//! or to notice deleted topics.
//!
//! When the upstream broker cannot be reached, or its connection fails with requests
//! outstanding, the client connection is closed: to a Kafka client that is what a broker
//! going down looks like, and every client retries it (refreshing metadata, reconnecting with
//! its own backoff), within its request timeout rather than after it.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, DeleteTopicsResponse, DescribeClusterResponse, FetchResponse, MetadataResponse, ProduceResponse, ResponseKind,
};
use tokio::sync::oneshot;

use super::Proxy;
use super::upstream::{ResponseFrame, UpstreamConn, UpstreamError};
use crate::protocol::{Checked, guard};
use crate::router::Listener;

/// Forwarded requests a client connection may have outstanding; past it, corral stops
/// reading the connection until the oldest is answered.
const MAX_PENDING: usize = 128;

type Close = Cow<'static, str>;

/// A forwarded request waiting for its response.
struct Pending {
    client_correlation: i32,
    api_key: ApiKey,
    version: i16,
    started: Instant,
    /// The request's client id, kept only while debug logging is on (for its line).
    client: Option<String>,
    link: Arc<UpstreamConn>,
    rx: oneshot::Receiver<Result<ResponseFrame, UpstreamError>>,
}

/// One client connection's forwarding state.
pub struct Pipeline {
    proxy: Arc<Proxy>,
    listener: Listener,
    peer: std::net::SocketAddr,
    /// The upstream connections this client connection uses, one per node (usually one).
    links: Vec<Arc<UpstreamConn>>,
    pending: VecDeque<Pending>,
    /// The node the pending requests went to.
    pending_node: Option<i32>,
    /// For corral's own listener: the upstream node this connection's requests go to.
    default_node: Option<i32>,
}

impl Pipeline {
    pub fn new(proxy: Arc<Proxy>, listener: Listener, peer: std::net::SocketAddr) -> Self {
        Pipeline { proxy, listener, peer, links: Vec::new(), pending: VecDeque::new(), pending_node: None, default_node: None }
    }

    /// Whether another forwarded request may be taken.
    pub fn has_room(&self) -> bool {
        self.pending.len() < MAX_PENDING
    }

    /// Whether nothing forwarded is outstanding.
    pub fn is_idle(&self) -> bool {
        self.pending.is_empty()
    }

    /// The upstream node the next forwarded request goes to.
    pub fn target(&mut self) -> Result<i32, Close> {
        match self.listener {
            Listener::Node(n) => Ok(n),
            Listener::Own => {
                if let Some(n) = self.default_node
                    && self.proxy.cluster.knows(n)
                {
                    return Ok(n);
                }
                let n = self.proxy.cluster.default_node().ok_or(Cow::Borrowed("no upstream broker is known"))?;
                self.default_node = Some(n);
                Ok(n)
            }
        }
    }

    /// Whether requests to another node are outstanding (they must be answered first, so the
    /// order of execution is the order of the requests).
    pub fn must_drain_before(&self, node: i32) -> bool {
        !self.pending.is_empty() && self.pending_node != Some(node)
    }

    async fn link(&mut self, node: i32) -> Result<Arc<UpstreamConn>, Close> {
        self.links.retain(|l| !l.is_broken());
        if let Some(l) = self.links.iter().find(|l| l.node == node) {
            return Ok(l.clone());
        }
        let addr =
            self.proxy.cluster.upstream_addr(node).ok_or_else(|| Cow::Owned(format!("upstream node {node} is not in the cluster")))?;
        let link = self.proxy.pool.checkout(node, &addr).await.map_err(|e| Cow::Owned(e.to_string()))?;
        self.links.push(link.clone());
        Ok(link)
    }

    /// Sends a checked request to `node`.
    pub async fn forward(&mut self, node: i32, checked: Checked, started: Instant) -> Result<(), Close> {
        let link = self.link(node).await?;
        let expect = !(checked.api_key == ApiKey::Produce && produce_acks(checked.version, &checked.body) == Some(0));
        let rx = link.send(&checked.frame, expect).await.map_err(|e| Cow::Owned(e.to_string()))?;
        metrics::counter!("corral_proxy_forwarded_total", "api" => crate::connection::api_name(checked.api_key as i16)).increment(1);
        if let Some(rx) = rx {
            self.pending.push_back(Pending {
                client_correlation: checked.header.correlation_id,
                api_key: checked.api_key,
                version: checked.version,
                started,
                client: tracing::enabled!(tracing::Level::DEBUG)
                    .then(|| checked.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default()),
                link,
                rx,
            });
            self.pending_node = Some(node);
        }
        Ok(())
    }

    /// The oldest outstanding response, as the client is to receive it (size prefix
    /// included). Cancel-safe: if the future is dropped before the response is in, the
    /// request stays outstanding.
    pub async fn next_response(&mut self) -> Result<Bytes, Close> {
        let front = self.pending.front_mut().ok_or(Cow::Borrowed("no forwarded request is outstanding"))?;
        let got = (&mut front.rx).await;
        let p = self.pending.pop_front().expect("the front was there");
        let frame = match got {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Err(Cow::Owned(e.to_string())),
            Err(_) => return Err(Cow::Borrowed("the upstream link went away")),
        };
        let (out, error) = finish(&self.proxy, &p, frame).map_err(|reason| {
            tracing::warn!(node = p.link.node, api = ?p.api_key, version = p.version, "bad upstream response: {reason}");
            metrics::counter!("corral_proxy_bad_upstream_responses_total").increment(1);
            p.link.poison(format!("bad {:?} v{} response: {reason}", p.api_key, p.version));
            Cow::Owned(format!("upstream node {} sent a bad {:?} response: {reason}", p.link.node, p.api_key))
        })?;
        metrics::histogram!("corral_request_seconds", "api" => crate::connection::api_name(p.api_key as i16))
            .record(p.started.elapsed().as_secs_f64());
        if let Some(client) = &p.client {
            // RUST_LOG=corral=debug: one line per forwarded request; its error code when corral
            // decoded the response (it rewrites some), else `None`
            tracing::debug!(
                api = ?p.api_key,
                v = p.version,
                corr = p.client_correlation,
                client = client.as_str(),
                peer = %self.peer,
                us = p.started.elapsed().as_micros() as u64,
                error = ?error,
                node = p.link.node,
                "forwarded request"
            );
        }
        Ok(out)
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        // links with nothing outstanding serve the next client connection
        for link in self.links.drain(..) {
            self.proxy.pool.checkin(link);
        }
    }
}

/// A Produce request's `acks` (the field after `transactional_id`), read without decoding the
/// rest of the body; `None` if the body is too short (the guard has already walked it, so
/// this does not happen).
pub fn produce_acks(version: i16, body: &[u8]) -> Option<i16> {
    let after_id = if version >= 9 {
        // compact nullable string: unsigned varint of length + 1
        let mut at = 0usize;
        let mut len: u64 = 0;
        for shift in (0..35).step_by(7) {
            let b = *body.get(at)?;
            at += 1;
            len |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                break;
            }
        }
        at + len.saturating_sub(1) as usize
    } else {
        let len = i16::from_be_bytes([*body.first()?, *body.get(1)?]);
        2 + len.max(0) as usize
    };
    Some(i16::from_be_bytes([*body.get(after_id)?, *body.get(after_id + 1)?]))
}

/// Turns an upstream response frame into the client's: its correlation id restored, the
/// body checked where a shape exists, addresses rewritten where it carries any.
/// The response as the client is to receive it, and its error code if corral decoded it.
fn finish(proxy: &Proxy, p: &Pending, mut frame: ResponseFrame) -> Result<(Bytes, Option<crate::error::ErrorCode>), String> {
    frame[4..8].copy_from_slice(&p.client_correlation.to_be_bytes());
    let (key, version) = (p.api_key, p.version);
    let header_version = key.response_header_version(version);
    let body_start = 4 + header_len(&frame[4..], header_version).ok_or("a truncated response header")?;
    let walked = match guard::check_response_body(key as i16, version, &frame[body_start..]) {
        Ok(w) => Some(w),
        Err(guard::GuardError::UnknownShape) => None,
        Err(e) => return Err(e.to_string()),
    };
    let rewritten = match key {
        ApiKey::Metadata => {
            let mut r: MetadataResponse = decode(&frame, body_start, version)?;
            super::rewrite::metadata(proxy, version, &mut r);
            Some(ResponseKind::Metadata(r))
        }
        ApiKey::DescribeCluster => {
            let mut r: DescribeClusterResponse = decode(&frame, body_start, version)?;
            super::rewrite::describe_cluster(proxy, version, &mut r);
            Some(ResponseKind::DescribeCluster(r))
        }
        // KIP-951: endpoints ride in tag 0 of the body's own tagged fields
        ApiKey::Produce if version >= 10 && walked.is_some_and(|w| w.has_top_level_tag(0)) => {
            let mut r: ProduceResponse = decode(&frame, body_start, version)?;
            super::rewrite::node_endpoints(proxy, &mut r.node_endpoints, |e| (&mut e.node_id, &mut e.host, &mut e.port));
            Some(ResponseKind::Produce(r))
        }
        ApiKey::Fetch if version >= 16 && walked.is_some_and(|w| w.has_top_level_tag(0)) => {
            let mut r: FetchResponse = decode(&frame, body_start, version)?;
            super::rewrite::node_endpoints(proxy, &mut r.node_endpoints, |e| (&mut e.node_id, &mut e.host, &mut e.port));
            Some(ResponseKind::Fetch(r))
        }
        ApiKey::DeleteTopics => {
            let r: DeleteTopicsResponse = decode(&frame, body_start, version)?;
            proxy.topics_deleted(
                r.responses.iter().filter(|t| t.error_code == 0).filter_map(|t| t.name.as_ref().map(|n| n.to_string())).collect(),
            );
            None
        }
        _ => None,
    };
    match rewritten {
        None => Ok((frame.freeze(), None)),
        Some(body) => {
            let mut out = BytesMut::with_capacity(frame.len() + 64);
            crate::protocol::encode_response(&mut out, key, version, p.client_correlation, &body).map_err(|e| e.to_string())?;
            Ok((out.freeze(), Some(crate::protocol::summary::error_of(&body))))
        }
    }
}

fn decode<T: kafka_protocol::protocol::Decodable>(frame: &ResponseFrame, body_start: usize, version: i16) -> Result<T, String> {
    let mut body = Bytes::copy_from_slice(&frame[body_start..]);
    T::decode(&mut body, version).map_err(|e| e.to_string())
}

/// The length of a response header (correlation id, and tagged fields in header v1).
fn header_len(b: &[u8], header_version: i16) -> Option<usize> {
    if b.len() < 4 {
        return None;
    }
    if header_version < 1 {
        return Some(4);
    }
    let mut at = 4;
    let count = uvarint(b, &mut at)?;
    for _ in 0..count {
        let _tag = uvarint(b, &mut at)?;
        let size = uvarint(b, &mut at)? as usize;
        at = at.checked_add(size).filter(|end| *end <= b.len())?;
    }
    Some(at)
}

fn uvarint(b: &[u8], at: &mut usize) -> Option<u32> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u32::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_read_at_every_produce_version() {
        use kafka_protocol::messages::ProduceRequest;
        use kafka_protocol::protocol::Encodable;
        for version in 3..=11 {
            for txn in [None, Some("a-transactional-id")] {
                let req = ProduceRequest::default()
                    .with_transactional_id(
                        txn.map(|t| kafka_protocol::messages::TransactionalId(kafka_protocol::protocol::StrBytes::from_static_str(t))),
                    )
                    .with_acks(-1)
                    .with_timeout_ms(1000);
                let mut b = BytesMut::new();
                req.encode(&mut b, version).unwrap();
                assert_eq!(produce_acks(version, &b), Some(-1), "v{version} {txn:?}");
            }
        }
        assert_eq!(produce_acks(9, &[]), None);
        assert_eq!(produce_acks(3, &[0, 5, 1]), None);
    }

    #[test]
    fn header_lengths() {
        assert_eq!(header_len(&[0, 0, 0, 1], 0), Some(4));
        assert_eq!(header_len(&[0, 0, 0, 1, 0], 1), Some(5));
        // one tagged field of 2 bytes
        assert_eq!(header_len(&[0, 0, 0, 1, 1, 7, 2, 9, 9], 1), Some(9));
        // a size running past the end
        assert_eq!(header_len(&[0, 0, 0, 1, 1, 7, 9, 9], 1), None);
        assert_eq!(header_len(&[0, 0, 1], 0), None);
    }
}
