//! `RUST_LOG=corral=debug` logs one line per request (README "Flags"): api, version,
//! correlation id, client id, peer, duration and error code.

mod common;

use std::process::Stdio;
use std::time::Duration;

use common::RawClient;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

#[tokio::test]
async fn debug_logging_shows_every_request_with_its_error_code() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_corral"))
        .args(["--ephemeral", "--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "corral=debug")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = out.next_line().await.unwrap().expect("a start line");
    let addr: std::net::SocketAddr = first.split("listening on ").nth(1).and_then(|r| r.split(',').next()).unwrap().parse().unwrap();
    let mut c = RawClient::connect(addr).await;
    let hb = c
        .send(4, &HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("nobody"))).with_member_id(StrBytes::from_static_str("m")))
        .await;
    assert_eq!(hb.error_code, 25);
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    let peer = c.stream.local_addr().unwrap().to_string();
    let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        let mut want = vec!["api=Heartbeat v=4 corr=1", "api=Metadata v=12 corr=2"];
        while let Some(line) = err.next_line().await.unwrap() {
            seen.push(line.clone());
            if let Some(i) = want.iter().position(|w| line.contains(w)) {
                assert!(line.contains("client=\"corral-test\""), "{line}");
                assert!(line.contains(&format!("peer={peer}")), "{line}");
                assert!(line.contains(" us="), "{line}");
                let error = if want[i].starts_with("api=Heartbeat") { "error=UNKNOWN_MEMBER_ID (25)" } else { "error=NONE (0)" };
                assert!(line.contains(error), "{line}");
                want.remove(i);
                if want.is_empty() {
                    return;
                }
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no request lines in: {seen:#?}");
}
