//! Byte-level replay of request frames captured from real clients (`fixtures/<family>/`, see
//! its README): each directory goes to a fresh corral, connection by connection in the order
//! captured; every response must decode at the request's version and carry its correlation id.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bytes::{Buf, Bytes};
use common::{RawClient, TestServer};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Decodable;

struct Captured {
    conn: u32,
    frame: Bytes,
}

fn load(dir: &Path) -> Vec<Captured> {
    let mut files: Vec<PathBuf> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|x| x == "bin")).collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            let conn: u32 = name.split('-').nth(1).unwrap().trim_start_matches('c').parse().unwrap();
            Captured { conn, frame: Bytes::from(std::fs::read(&p).unwrap()) }
        })
        .collect()
}

/// Acks of a Produce frame (header v1/v2 then transactional_id, acks).
fn produce_acks(body: &[u8], header_len: usize, flexible: bool) -> i16 {
    let mut at = header_len;
    if flexible {
        // compact nullable string: varint length+1
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let b = body[at];
            at += 1;
            len |= ((b & 0x7f) as u64) << shift;
            shift += 7;
            if b & 0x80 == 0 {
                break;
            }
        }
        at += len.saturating_sub(1) as usize;
    } else {
        let len = i16::from_be_bytes([body[at], body[at + 1]]);
        at += 2 + len.max(0) as usize;
    }
    i16::from_be_bytes([body[at], body[at + 1]])
}

async fn replay(dir: &Path) -> usize {
    let captured = load(dir);
    assert!(!captured.is_empty(), "{} has no frames", dir.display());
    let last_use: BTreeMap<u32, usize> = captured.iter().enumerate().map(|(i, c)| (c.conn, i)).collect();
    let server = TestServer::start().await;
    let mut conns: BTreeMap<u32, RawClient> = BTreeMap::new();
    let mut answered = 0;
    for (i, c) in captured.iter().enumerate() {
        let body = c.frame.slice(4..);
        let mut hdr_buf = body.clone();
        let key = ApiKey::try_from(i16::from_be_bytes([body[0], body[1]])).unwrap();
        let version = i16::from_be_bytes([body[2], body[3]]);
        let header = RequestHeader::decode(&mut hdr_buf, key.request_header_version(version)).unwrap();
        let header_len = body.len() - hdr_buf.remaining();
        let conn = match conns.entry(c.conn) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(v) => v.insert(RawClient::connect(server.addr).await),
        };
        conn.write_raw(&c.frame).await;
        let expect_reply = !(key == ApiKey::Produce && produce_acks(&body, header_len, key.request_header_version(version) >= 2) == 0);
        if expect_reply {
            let mut resp =
                conn.read_frame().await.unwrap_or_else(|| panic!("{}: no response to frame {} ({key:?} v{version})", dir.display(), i + 1));
            let rh = ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
            assert_eq!(rh.correlation_id, header.correlation_id, "{}: frame {}", dir.display(), i + 1);
            ResponseKind::decode(key, &mut resp, version)
                .unwrap_or_else(|e| panic!("{}: frame {} {key:?} v{version} response: {e}", dir.display(), i + 1));
            assert!(!resp.has_remaining(), "{}: frame {} left {} bytes", dir.display(), i + 1, resp.remaining());
            answered += 1;
        }
        if last_use[&c.conn] == i {
            conns.remove(&c.conn);
        }
    }
    server.stop().await;
    answered
}

#[tokio::test]
async fn every_fixture_family_replays() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    let mut families: Vec<PathBuf> = std::fs::read_dir(&root).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_dir()).collect();
    families.sort();
    assert!(families.len() >= 2, "expected fixture families under {}", root.display());
    for dir in families {
        let n = replay(&dir).await;
        assert!(n > 0, "{} got no responses", dir.display());
    }
}
