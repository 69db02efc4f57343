//! One client connection: read a frame, route it, write the answer — strictly in order.
//!
//! Kafka mutes a connection while one of its requests is being handled, so clients rely on
//! answers arriving in request order. We do the same by handling one request at a time; the
//! next frames may meanwhile sit in the read buffer. Only a broken frame closes the
//! connection; every request-level problem is an error code in a response.

use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tracing::Instrument;

use crate::frame::{FrameCodec, FrameError, HeaderPeek};
use crate::protocol::{self, DecodeError};
use crate::router::{self, ConnInfo, Context, Reply};

/// Size of the first read buffer; it grows for larger frames.
const INITIAL_READ_BUFFER: usize = 16 * 1024;

/// Serves one connection until the peer closes it, a frame is broken, or the server stops.
pub async fn serve<S>(stream: S, ctx: Context, conn: ConnInfo)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = stream;
    let mut codec = FrameCodec::new(ctx.broker.config.socket_request_max_bytes);
    let mut inbuf = BytesMut::with_capacity(INITIAL_READ_BUFFER);
    let mut outbuf = BytesMut::new();
    // One shutdown future for the connection's life: made afresh for every read, it would
    // register with the server-wide token (one lock shared by every connection) per request.
    let stopping = ctx.shutdown.cancelled();
    tokio::pin!(stopping);
    loop {
        let frame = match codec.decode(&mut inbuf) {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                let read = tokio::select! {
                    biased;
                    _ = &mut stopping => return,
                    r = stream.read_buf(&mut inbuf) => r,
                };
                match read {
                    Ok(0) => {
                        if !inbuf.is_empty() {
                            tracing::debug!(peer = %conn.peer, "connection closed in the middle of a request");
                        }
                        return;
                    }
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::debug!(peer = %conn.peer, "read failed: {e}");
                        return;
                    }
                }
            }
            Err(e) => {
                let e: FrameError = e;
                tracing::warn!(peer = %conn.peer, "closing connection: {e}");
                metrics::counter!("corral_connections_closed_total", "reason" => "bad_frame").increment(1);
                return;
            }
        };
        let peek = HeaderPeek::read(&frame);
        let started = Instant::now();
        outbuf.clear();
        match protocol::decode_request(frame) {
            Ok(req) => {
                let (api_key, version, correlation_id) = (req.api_key, req.version, req.header.correlation_id);
                let span = tracing::debug_span!("request", api = ?api_key, v = version, corr = correlation_id);
                let body = match router::route(&ctx, &conn, req).instrument(span).await {
                    Reply::Send(body) => *body,
                    Reply::Nothing => continue,
                    Reply::Close(why) => {
                        tracing::info!(peer = %conn.peer, "closing connection: {why}");
                        return;
                    }
                };
                if let Err(e) = protocol::encode_response(&mut outbuf, api_key, version, correlation_id, &body) {
                    tracing::error!(peer = %conn.peer, "{e}");
                    return;
                }
                metrics::histogram!("corral_request_seconds", "api" => api_name(api_key as i16))
                    .record(started.elapsed().as_secs_f64());
            }
            Err(DecodeError::ApiVersionsTooNew { correlation_id, version }) => {
                tracing::debug!(peer = %conn.peer, version, "ApiVersions newer than ours: answering with the v0 fallback");
                protocol::encode_api_versions_fallback(&mut outbuf, correlation_id);
            }
            Err(e) => {
                tracing::warn!(peer = %conn.peer, header = ?peek, "closing connection: {e}");
                metrics::counter!("corral_connections_closed_total", "reason" => "bad_request").increment(1);
                return;
            }
        }
        if let Err(e) = stream.write_all(&outbuf).await {
            tracing::debug!(peer = %conn.peer, "write failed: {e}");
            return;
        }
    }
}

/// A static label for metrics.
fn api_name(key: i16) -> &'static str {
    static NAMES: std::sync::LazyLock<Vec<(i16, &'static str)>> = std::sync::LazyLock::new(|| {
        protocol::SUPPORTED
            .iter()
            .map(|(k, _, _)| (*k as i16, &*format!("{k:?}").leak()))
            .collect()
    });
    NAMES.iter().find(|(k, _)| *k == key).map(|(_, n)| *n).unwrap_or("unknown")
}
