//! One client connection: read a frame, route it, write the answer — strictly in order.
//!
//! Kafka mutes a connection while one of its requests is being handled, so clients rely on
//! answers arriving in request order. Requests corral answers itself are handled one at a time,
//! exactly so; the next frames may meanwhile sit in the read buffer. In proxy mode, requests
//! forwarded upstream are pipelined: consecutive forwarded requests go out on the connection's
//! upstream link without waiting for each other (the upstream broker still handles them one at
//! a time, in order), and their responses come back in order. A request corral answers itself
//! first waits until every forwarded request before it has been answered, so nothing is
//! reordered. Only a broken frame closes the connection; every request-level problem is an
//! error code in a response.

use std::time::Instant;

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::Decoder;
use tracing::Instrument;

use crate::frame::{FrameCodec, FrameError, HeaderPeek};
use crate::plane::DataPlane;
use crate::protocol::{self, DecodeError};
use crate::proxy::forward::Pipeline;
use crate::router::{self, ConnInfo, Context, Reply};

/// Size of the first read buffer; it grows for larger frames.
const INITIAL_READ_BUFFER: usize = 16 * 1024;

/// Serves one connection until the peer closes it, a frame is broken, or the server stops.
pub async fn serve<S>(stream: S, ctx: Context, conn: ConnInfo)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut stream = stream;
    let mut codec = FrameCodec::new(ctx.config.socket_request_max_bytes);
    let mut inbuf = BytesMut::with_capacity(INITIAL_READ_BUFFER);
    let mut outbuf = BytesMut::new();
    let mut pipeline = match &ctx.plane {
        DataPlane::Proxy(p) => Some(Pipeline::new(p.clone(), conn.listener, conn.peer)),
        DataPlane::Broker(_) => None,
    };
    // One shutdown future for the connection's life: made afresh for every read, it would
    // register with the server-wide token (one lock shared by every connection) per request.
    let stopping = ctx.shutdown.cancelled();
    tokio::pin!(stopping);
    let mut draining = false;
    loop {
        let room = pipeline.as_ref().is_none_or(|p| p.has_room());
        let frame = if room && !draining {
            match codec.decode(&mut inbuf) {
                Ok(f) => f,
                Err(e) => {
                    let e: FrameError = e;
                    tracing::warn!(peer = %conn.peer, "closing connection: {e}");
                    metrics::counter!("corral_connections_closed_total", "reason" => "bad_frame").increment(1);
                    return;
                }
            }
        } else {
            None
        };
        let Some(frame) = frame else {
            if draining && pipeline.as_ref().is_none_or(|p| p.is_idle()) {
                return;
            }
            // Wait for more bytes, the oldest forwarded response, or shutdown.
            tokio::select! {
                biased;
                _ = &mut stopping, if !draining => draining = true,
                answer = next_forwarded(&mut pipeline) => {
                    match answer {
                        Ok(bytes) => {
                            if let Err(e) = stream.write_all(&bytes).await {
                                tracing::debug!(peer = %conn.peer, "write failed: {e}");
                                return;
                            }
                        }
                        Err(why) => {
                            tracing::info!(peer = %conn.peer, "closing connection: {why}");
                            return;
                        }
                    }
                }
                read = stream.read_buf(&mut inbuf), if room && !draining => match read {
                    Ok(0) => {
                        if !inbuf.is_empty() {
                            tracing::debug!(peer = %conn.peer, "connection closed in the middle of a request");
                        }
                        return;
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::debug!(peer = %conn.peer, "read failed: {e}");
                        return;
                    }
                },
            }
            continue;
        };
        let peek = HeaderPeek::read(&frame);
        let started = Instant::now();
        outbuf.clear();
        let checked = match protocol::check_request(frame, &ctx.versions) {
            Ok(checked) => checked,
            Err(DecodeError::ApiVersionsTooNew { correlation_id, version }) => {
                tracing::debug!(peer = %conn.peer, version, "ApiVersions newer than ours: answering with the v0 fallback");
                protocol::encode_api_versions_fallback(&mut outbuf, correlation_id, &ctx.versions);
                if !flush_forwarded(&mut pipeline, &mut stream, &conn).await {
                    return;
                }
                if let Err(e) = stream.write_all(&outbuf).await {
                    tracing::debug!(peer = %conn.peer, "write failed: {e}");
                    return;
                }
                continue;
            }
            Err(e) => {
                tracing::warn!(peer = %conn.peer, header = ?peek, "closing connection: {e}");
                metrics::counter!("corral_connections_closed_total", "reason" => "bad_request").increment(1);
                return;
            }
        };
        if let Some(p) = pipeline.as_mut()
            && !ctx.plane.answers_locally(checked.api_key)
        {
            // Forwarded: pipelined behind earlier forwarded requests to the same upstream node;
            // a request for another node first waits for those to be answered.
            let node = match p.target() {
                Ok(node) => node,
                Err(why) => {
                    tracing::info!(peer = %conn.peer, "closing connection: {why}");
                    return;
                }
            };
            if p.must_drain_before(node) && !flush_forwarded(&mut pipeline, &mut stream, &conn).await {
                return;
            }
            let p = pipeline.as_mut().expect("a proxy connection has a pipeline");
            if let Err(why) = p.forward(node, checked, started).await {
                tracing::info!(peer = %conn.peer, "closing connection: {why}");
                return;
            }
            continue;
        }
        // Answered here: after every forwarded request before it.
        if !flush_forwarded(&mut pipeline, &mut stream, &conn).await {
            return;
        }
        let req = match protocol::decode_checked(checked) {
            Ok(req) => req,
            Err(e) => {
                tracing::warn!(peer = %conn.peer, header = ?peek, "closing connection: {e}");
                metrics::counter!("corral_connections_closed_total", "reason" => "bad_request").increment(1);
                return;
            }
        };
        let (api_key, version, correlation_id) = (req.api_key, req.version, req.header.correlation_id);
        let client =
            tracing::enabled!(tracing::Level::DEBUG).then(|| req.header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default());
        let span = tracing::debug_span!("request", api = ?api_key, v = version, corr = correlation_id);
        let reply = router::route(&ctx, &conn, req).instrument(span).await;
        if let Some(client) = client {
            // RUST_LOG=corral=debug: one line per request corral answers
            let error = match &reply {
                Reply::Send(body) => protocol::summary::error_of(body),
                Reply::Nothing | Reply::Close(_) => crate::error::ErrorCode::NONE,
            };
            tracing::debug!(
                api = ?api_key,
                v = version,
                corr = correlation_id,
                client = client.as_str(),
                peer = %conn.peer,
                us = started.elapsed().as_micros() as u64,
                error = %error,
                answered = matches!(reply, Reply::Send(_)),
                "request"
            );
        }
        let body = match reply {
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
        metrics::histogram!("corral_request_seconds", "api" => api_name(api_key as i16)).record(started.elapsed().as_secs_f64());
        if let Err(e) = stream.write_all(&outbuf).await {
            tracing::debug!(peer = %conn.peer, "write failed: {e}");
            return;
        }
    }
}

/// The oldest forwarded response, once it is in (never resolves when nothing is pending).
async fn next_forwarded(pipeline: &mut Option<Pipeline>) -> Result<bytes::Bytes, std::borrow::Cow<'static, str>> {
    match pipeline {
        Some(p) if !p.is_idle() => p.next_response().await,
        _ => std::future::pending().await,
    }
}

/// Writes every pending forwarded response, in order. `false` if the connection must close.
async fn flush_forwarded<S: AsyncWrite + Unpin>(pipeline: &mut Option<Pipeline>, stream: &mut S, conn: &ConnInfo) -> bool {
    let Some(p) = pipeline.as_mut() else { return true };
    while !p.is_idle() {
        match p.next_response().await {
            Ok(bytes) => {
                if let Err(e) = stream.write_all(&bytes).await {
                    tracing::debug!(peer = %conn.peer, "write failed: {e}");
                    return false;
                }
            }
            Err(why) => {
                tracing::info!(peer = %conn.peer, "closing connection: {why}");
                return false;
            }
        }
    }
    true
}

/// A static label for metrics.
pub fn api_name(key: i16) -> &'static str {
    static NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
        (0..128i16)
            .map(|k| match kafka_protocol::messages::ApiKey::try_from(k) {
                Ok(api) => &*format!("{api:?}").leak(),
                Err(()) => "unknown",
            })
            .collect()
    });
    usize::try_from(key).ok().and_then(|i| NAMES.get(i).copied()).unwrap_or("unknown")
}
