//! One raw Kafka connection: Kafka's framing (a 4-byte big-endian size, then the frame), request
//! headers and bodies encoded by the kafka-protocol crate's client encoders, one request in
//! flight at a time as a client sends them.

use std::io;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, ToSocketAddrs};

/// The length of the first whole frame at the start of `buf`, its 4-byte size included, or
/// `None` while it has not all arrived.
pub fn whole_frame_len(buf: &[u8]) -> Option<usize> {
    let size: [u8; 4] = buf.get(..4)?.try_into().ok()?;
    let n = 4 + u32::from_be_bytes(size) as usize;
    (buf.len() >= n).then_some(n)
}

/// A request as it goes on the wire: size, header (at the version the api and version call
/// for), body.
pub fn request_frame<R: Request + Encodable + HeaderVersion>(version: i16, correlation_id: i32, client_id: &StrBytes, req: &R) -> Bytes {
    let mut body = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()))
        .encode(&mut body, R::header_version(version))
        .expect("a request header always encodes");
    req.encode(&mut body, version).unwrap_or_else(|e| panic!("{:?} v{version} does not encode (a field the version lacks?): {e}", R::KEY));
    let mut out = BytesMut::with_capacity(body.len() + 4);
    out.put_i32(body.len() as i32);
    out.extend_from_slice(&body);
    out.freeze()
}

/// One connection (TCP_NODELAY, as Kafka clients set it). Correlation ids count up from 1.
pub struct Client {
    stream: TcpStream,
    client_id: StrBytes,
    correlation: i32,
    /// Bytes read but not yet returned as a frame.
    buf: BytesMut,
}

impl Client {
    /// Connects; every request this client frames names `client_id`.
    pub async fn connect(addr: impl ToSocketAddrs, client_id: &'static str) -> io::Result<Client> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Client { stream, client_id: StrBytes::from_static_str(client_id), correlation: 0, buf: BytesMut::with_capacity(64 * 1024) })
    }

    /// Encodes a request frame under the next correlation id, to send now or many times later.
    pub fn frame<R: Request + Encodable + HeaderVersion>(&mut self, version: i16, req: &R) -> Bytes {
        self.correlation += 1;
        request_frame(version, self.correlation, &self.client_id, req)
    }

    /// The correlation id of the last frame encoded.
    pub fn correlation_id(&self) -> i32 {
        self.correlation
    }

    /// Writes bytes as they are (a frame, part of one, or garbage).
    pub async fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// Reads the next frame, without its size; `UnexpectedEof` when the server closes first.
    pub async fn read_frame(&mut self) -> io::Result<Bytes> {
        loop {
            if let Some(n) = whole_frame_len(&self.buf) {
                self.buf.advance(4);
                return Ok(self.buf.split_to(n - 4).freeze());
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the server closed the connection"));
            }
        }
    }

    /// Sends a frame and reads the one that answers it, undecoded.
    pub async fn round_trip(&mut self, frame: &[u8]) -> io::Result<Bytes> {
        self.send(frame).await?;
        self.read_frame().await
    }

    /// Sends a request and decodes its response at the same version. A response whose
    /// correlation id is not the request's is an error; bytes left after the body are not (as
    /// clients tolerate them).
    pub async fn call<R>(&mut self, version: i16, req: &R) -> io::Result<R::Response>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        self.call_leaving(version, req).await.map(|(response, _)| response)
    }

    /// As [`Client::call`], with the number of bytes the response frame held after the body
    /// (which a server that encodes exactly never leaves).
    pub async fn call_leaving<R>(&mut self, version: i16, req: &R) -> io::Result<(R::Response, usize)>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let frame = self.frame(version, req);
        let mut resp = self.round_trip(&frame).await?;
        let header =
            ResponseHeader::decode(&mut resp, <R::Response as HeaderVersion>::header_version(version)).map_err(io::Error::other)?;
        if header.correlation_id != self.correlation {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{:?} v{version}: correlation id {} answered {}", R::KEY, self.correlation, header.correlation_id),
            ));
        }
        let response = R::Response::decode(&mut resp, version)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{:?} v{version} response does not decode: {e}", R::KEY)))?;
        Ok((response, resp.remaining()))
    }

    /// Whether the server closes the connection (or it fails) within `limit`: false once bytes
    /// arrive instead (they are kept for [`Client::read_frame`]), or time runs out.
    pub async fn closed_within(&mut self, limit: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        matches!(tokio::time::timeout(limit, self.stream.read_buf(&mut self.buf)).await, Ok(Ok(0) | Err(_)))
    }

    /// The connection, for what this client does not do itself (its addresses; a
    /// non-blocking write or read that bypasses the client's buffer).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}
