//! One connection to one upstream broker: connect (bounded by a timeout), learn the broker's
//! api versions, then carry requests pipelined and hand each response frame back in order.
//!
//! Correlation ids on an upstream connection are ours: [`UpstreamConn::send`] rewrites the
//! request's id to the connection's next one and remembers it; the reader task checks that
//! every response carries the id it expects next (Kafka answers a connection's requests in
//! order), so a response can never be handed to the wrong request. A response whose id does
//! not match, a frame that is too large or too short, or a closed socket breaks the
//! connection: every request still waiting on it gets an [`UpstreamError`], and the connection
//! is never used again. Nothing here decodes a body; the caller decides what to read.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot};

use crate::error::ErrorCode;

/// Why a request to an upstream broker got no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// The broker could not be reached (refused, timed out, or backing off after a failure).
    #[error("cannot reach upstream node {node} at {addr}: {reason}")]
    Connect { node: i32, addr: String, reason: String },
    /// The connection closed or failed while the request was outstanding.
    #[error("upstream connection to node {node} failed: {reason}")]
    Broken { node: i32, reason: String },
    /// The broker answered with something that is not a valid response to the request.
    #[error("upstream node {node} sent a bad response: {reason}")]
    BadResponse { node: i32, reason: String },
    /// The broker does not serve an api (or version) corral needs.
    #[error("upstream node {node} does not serve {what}")]
    Unsupported { node: i32, what: String },
    /// The broker answered with a Kafka error code.
    #[error("upstream node {node} answered {what} with error {code}")]
    Kafka { node: i32, what: &'static str, code: ErrorCode },
}

impl UpstreamError {
    /// Whether trying again (after a metadata refresh or a pause) may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            UpstreamError::Connect { .. } | UpstreamError::Broken { .. } => true,
            UpstreamError::BadResponse { .. } | UpstreamError::Unsupported { .. } => false,
            UpstreamError::Kafka { code, .. } => kafka_retriable(*code),
        }
    }
}

/// Kafka's retriable error codes, for the ones corral's own upstream requests meet.
pub fn kafka_retriable(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::CORRUPT_MESSAGE
            | ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            | ErrorCode::LEADER_NOT_AVAILABLE
            | ErrorCode::NOT_LEADER_OR_FOLLOWER
            | ErrorCode::REQUEST_TIMED_OUT
            | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
            | ErrorCode::COORDINATOR_NOT_AVAILABLE
            | ErrorCode::NOT_COORDINATOR
            | ErrorCode::NOT_ENOUGH_REPLICAS
            | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
            | ErrorCode::NOT_CONTROLLER
            | ErrorCode::KAFKA_STORAGE_ERROR
            | ErrorCode::FENCED_LEADER_EPOCH
            | ErrorCode::UNKNOWN_LEADER_EPOCH
            | ErrorCode::NETWORK_EXCEPTION
            | ErrorCode::THROTTLING_QUOTA_EXCEEDED
    )
}

/// The api versions a broker advertised: `(api key, min, max)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiRanges(pub Vec<(i16, i16, i16)>);

impl ApiRanges {
    /// The broker's range for `api_key`.
    pub fn get(&self, api_key: i16) -> Option<(i16, i16)> {
        self.0.iter().find(|(k, _, _)| *k == api_key).map(|(_, min, max)| (*min, *max))
    }

    /// The highest version of `api_key` in both the broker's range and `ours`.
    pub fn best(&self, api_key: i16, ours: (i16, i16)) -> Option<i16> {
        let (min, max) = self.get(api_key)?;
        let (lo, hi) = (min.max(ours.0), max.min(ours.1));
        (lo <= hi).then_some(hi)
    }
}

/// What an upstream connection needs to know from the configuration.
#[derive(Debug, Clone)]
pub struct ConnSettings {
    pub connect_timeout: Duration,
    /// The largest response frame accepted; a larger one breaks the connection.
    pub max_response_bytes: usize,
    /// The client id corral's own requests carry.
    pub client_id: String,
}

/// A response frame: the 4-byte size prefix, then the response header and body, exactly as
/// the broker sent them (the correlation id is still the connection's own).
pub type ResponseFrame = BytesMut;

type Waiter = oneshot::Sender<Result<ResponseFrame, UpstreamError>>;

/// A response that is expected, in order.
struct Expect {
    correlation_id: i32,
    tx: Waiter,
}

/// State shared between the connection and its reader task.
#[derive(Debug, Default)]
struct Shared {
    broken: AtomicBool,
    /// Requests sent whose responses have not arrived.
    in_flight: AtomicUsize,
    /// Why the connection broke, for requests that arrive afterwards.
    reason: Mutex<Option<String>>,
}

impl Shared {
    fn break_with(&self, reason: String) {
        let mut r = self.reason.lock().expect("reason lock");
        if r.is_none() {
            *r = Some(reason);
        }
        self.broken.store(true, Ordering::SeqCst);
    }

    fn reason(&self) -> String {
        self.reason.lock().expect("reason lock").clone().unwrap_or_else(|| "connection closed".into())
    }
}

/// The write side: held (briefly) by whoever sends, so that the order of expectations is the
/// order of the bytes on the wire.
struct Writer {
    half: OwnedWriteHalf,
    next_correlation: i32,
    expect: mpsc::UnboundedSender<Expect>,
}

/// One connection to one upstream broker.
pub struct UpstreamConn {
    pub node: i32,
    pub addr: String,
    /// What the broker advertised in ApiVersions when the connection opened.
    pub versions: ApiRanges,
    writer: tokio::sync::Mutex<Writer>,
    shared: Arc<Shared>,
    client_id: StrBytes,
}

impl std::fmt::Debug for UpstreamConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamConn")
            .field("node", &self.node)
            .field("addr", &self.addr)
            .field("broken", &self.is_broken())
            .field("in_flight", &self.in_flight())
            .finish()
    }
}

impl UpstreamConn {
    /// Connects to `addr` (upstream node `node`) and learns its api versions.
    pub async fn connect(node: i32, addr: &str, settings: &ConnSettings) -> Result<Arc<UpstreamConn>, UpstreamError> {
        let fail = |reason: String| UpstreamError::Connect { node, addr: addr.to_string(), reason };
        let stream = match tokio::time::timeout(settings.connect_timeout, TcpStream::connect(addr)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(fail(e.to_string())),
            Err(_) => return Err(fail(format!("no connection within {:?}", settings.connect_timeout))),
        };
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared::default());
        tokio::spawn(read_responses(node, read, rx, shared.clone(), settings.max_response_bytes));
        let mut conn = UpstreamConn {
            node,
            addr: addr.to_string(),
            versions: ApiRanges::default(),
            writer: tokio::sync::Mutex::new(Writer { half: write, next_correlation: 0, expect: tx }),
            shared,
            client_id: StrBytes::from_string(settings.client_id.clone()),
        };
        // ApiVersions v3 first (KIP-511); a broker too old for it answers UNSUPPORTED_VERSION
        // in a v0 body, and we ask again at v0.
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("corral"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let handshake = async {
            let frame = conn.request(3, &req).await?;
            let mut resp: ApiVersionsResponse =
                match crate::protocol::decode_response(ApiKey::ApiVersions as i16, 3, frame.clone().freeze().slice(4..)) {
                    Ok(r) => r,
                    // A broker that does not know v3 answers UNSUPPORTED_VERSION, in a v0 body as
                    // Kafka does, or (librdkafka's mock cluster) in a body of its own making: only
                    // the leading error code is certain.
                    Err(_)
                        if frame.len() >= 10
                            && ErrorCode::from(i16::from_be_bytes([frame[8], frame[9]])) == ErrorCode::UNSUPPORTED_VERSION =>
                    {
                        ApiVersionsResponse::default().with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
                    }
                    Err(reason) => return Err(UpstreamError::BadResponse { node, reason }),
                };
            if ErrorCode::from(resp.error_code) == ErrorCode::UNSUPPORTED_VERSION {
                resp = conn.call(0, &ApiVersionsRequest::default()).await?;
            }
            let code = ErrorCode::from(resp.error_code);
            if code != ErrorCode::NONE {
                return Err(UpstreamError::Kafka { node, what: "ApiVersions", code });
            }
            Ok(resp)
        };
        let resp = match tokio::time::timeout(settings.connect_timeout, handshake).await {
            Ok(r) => r.map_err(|e| fail(format!("ApiVersions: {e}")))?,
            Err(_) => return Err(fail(format!("no ApiVersions answer within {:?}", settings.connect_timeout))),
        };
        conn.versions = ApiRanges(resp.api_keys.iter().map(|a| (a.api_key, a.min_version, a.max_version)).collect());
        Ok(Arc::new(conn))
    }

    /// Whether the connection has failed (it is then never used again).
    pub fn is_broken(&self) -> bool {
        self.shared.broken.load(Ordering::SeqCst)
    }

    /// Requests sent and not yet answered.
    pub fn in_flight(&self) -> usize {
        self.shared.in_flight.load(Ordering::SeqCst)
    }

    /// Marks the connection broken (a caller found its response unusable); it is never used
    /// again, and the socket closes when the last holder lets go.
    pub fn poison(&self, reason: String) {
        self.shared.break_with(reason);
    }

    fn broken_error(&self) -> UpstreamError {
        UpstreamError::Broken { node: self.node, reason: self.shared.reason() }
    }

    /// Sends one request frame (`request` is the whole request without its size prefix: api
    /// key, version, correlation id, the rest of the header, the body). Its correlation id is
    /// replaced by the connection's own on the wire; the bytes after it are written as they
    /// are, without a copy. With `expect_response`, the receiver yields the response frame
    /// (Produce with acks=0 has none).
    pub async fn send(
        &self,
        request: &Bytes,
        expect_response: bool,
    ) -> Result<Option<oneshot::Receiver<Result<ResponseFrame, UpstreamError>>>, UpstreamError> {
        if request.len() < 8 {
            return Err(UpstreamError::Broken { node: self.node, reason: "request frame too short".into() });
        }
        let mut w = self.writer.lock().await;
        if self.is_broken() {
            return Err(self.broken_error());
        }
        let correlation_id = w.next_correlation;
        w.next_correlation = w.next_correlation.wrapping_add(1);
        let rx = if expect_response {
            let (tx, rx) = oneshot::channel();
            self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
            if w.expect.send(Expect { correlation_id, tx }).is_err() {
                self.shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                return Err(self.broken_error());
            }
            Some(rx)
        } else {
            None
        };
        let mut head = BytesMut::with_capacity(12);
        head.put_i32(request.len() as i32);
        head.put_slice(&request[..4]);
        head.put_i32(correlation_id);
        let mut out = head.freeze().chain(request.slice(8..));
        if let Err(e) = w.half.write_all_buf(&mut out).await {
            self.shared.break_with(format!("write failed: {e}"));
            return Err(self.broken_error());
        }
        Ok(rx)
    }

    /// Encodes `req` at `version` with corral's own header, sends it and decodes the response
    /// (guard-checked before the crate decodes it).
    pub async fn call<R>(&self, version: i16, req: &R) -> Result<R::Response, UpstreamError>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let frame = self.request(version, req).await?;
        crate::protocol::decode_response::<R::Response>(R::KEY, version, frame.freeze().slice(4..)).map_err(|reason| {
            self.poison(format!("bad {:?} v{version} response: {reason}", ApiKey::try_from(R::KEY).ok()));
            UpstreamError::BadResponse { node: self.node, reason }
        })
    }

    /// Encodes `req` at `version` with corral's own header, sends it, and returns the response
    /// frame undecoded.
    pub async fn request<R>(&self, version: i16, req: &R) -> Result<ResponseFrame, UpstreamError>
    where
        R: Request + Encodable + HeaderVersion,
    {
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(0)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::new();
        let bad = |e: String| UpstreamError::Unsupported {
            node: self.node,
            what: format!("{:?} v{version}: {e}", ApiKey::try_from(R::KEY).ok()),
        };
        header.encode(&mut buf, R::header_version(version)).map_err(|e| bad(e.to_string()))?;
        req.encode(&mut buf, version).map_err(|e| bad(e.to_string()))?;
        let rx = self.send(&buf.freeze(), true).await?.expect("a response is expected");
        rx.await.map_err(|_| self.broken_error())?
    }
}

/// The reader task of one connection: reads response frames and hands each to the request
/// it answers, in order. Ends when the socket closes or a frame is bad; every request still
/// waiting then gets the reason.
async fn read_responses(
    node: i32,
    mut read: OwnedReadHalf,
    mut expected: mpsc::UnboundedReceiver<Expect>,
    shared: Arc<Shared>,
    max_frame: usize,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut waiting: VecDeque<Expect> = VecDeque::new();
    let failure = loop {
        // a whole frame buffered?
        if buf.len() >= 4 {
            let size = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]);
            if size < 4 || size as usize > max_frame {
                break format!("response frame size {size} is outside 4..={max_frame}");
            }
            let total = 4 + size as usize;
            if buf.len() >= total {
                let frame = buf.split_to(total);
                let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
                while let Ok(e) = expected.try_recv() {
                    waiting.push_back(e);
                }
                let Some(next) = waiting.pop_front() else {
                    break format!("an unsolicited response (correlation id {correlation_id})");
                };
                if next.correlation_id != correlation_id {
                    let reason = format!("response correlation id {correlation_id}, expected {}", next.correlation_id);
                    let _ = next.tx.send(Err(UpstreamError::BadResponse { node, reason: reason.clone() }));
                    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                    break reason;
                }
                shared.in_flight.fetch_sub(1, Ordering::SeqCst);
                let _ = next.tx.send(Ok(frame));
                continue;
            }
            buf.reserve((total - buf.len()).min(1 << 20));
        }
        match read.read_buf(&mut buf).await {
            Ok(0) => break "the upstream broker closed the connection".to_string(),
            Ok(_) => {}
            Err(e) => break format!("read failed: {e}"),
        }
    };
    shared.break_with(failure.clone());
    if !failure.contains("closed the connection") || !waiting.is_empty() {
        tracing::warn!(node, "upstream connection closed: {failure}");
    }
    expected.close();
    while let Ok(e) = expected.try_recv() {
        waiting.push_back(e);
    }
    for e in waiting {
        shared.in_flight.fetch_sub(1, Ordering::SeqCst);
        let _ = e.tx.send(Err(UpstreamError::Broken { node, reason: failure.clone() }));
    }
}
