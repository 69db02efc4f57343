//! `RUST_LOG=corral=debug` logs one line per request (README "Flags"): api, version,
//! correlation id, client id, peer, duration and error code.

mod common;

use std::process::Command;
use std::time::Duration;

use common::RawClient;
use corral_testkit::ServerProcess;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

#[tokio::test]
async fn debug_logging_shows_every_request_with_its_error_code() {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_corral"));
    cmd.args(["--ephemeral", "--listen", "127.0.0.1:0"]).env("RUST_LOG", "corral=debug").env("NO_COLOR", "1");
    let server =
        tokio::task::spawn_blocking(move || ServerProcess::spawn_logged(&mut cmd, Duration::from_secs(10))).await.unwrap().unwrap();
    let mut c = RawClient::connect(server.addr()).await;
    let hb = c
        .send(
            4,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("nobody")))
                .with_member_id(StrBytes::from_static_str("m")),
        )
        .await;
    assert_eq!(hb.error_code, 25);
    c.send(12, &MetadataRequest::default().with_topics(Some(vec![]))).await;
    let peer = c.stream().local_addr().unwrap().to_string();
    let want = ["api=Heartbeat v=4 corr=1", "api=Metadata v=12 corr=2"];
    let stderr = server.stderr();
    let seen = tokio::task::spawn_blocking(move || {
        stderr.wait_for(Duration::from_secs(10), |text, _| want.iter().all(|w| text.lines().any(|line| line.contains(w))))
    })
    .await
    .unwrap()
    .unwrap_or_else(|seen| panic!("no request lines in: {seen}"));
    for w in want {
        let line = seen.lines().find(|line| line.contains(w)).unwrap();
        assert!(line.contains("client=\"corral-test\""), "{line}");
        assert!(line.contains(&format!("peer={peer}")), "{line}");
        assert!(line.contains(" us="), "{line}");
        let error = if w.starts_with("api=Heartbeat") { "error=UNKNOWN_MEMBER_ID (25)" } else { "error=NONE (0)" };
        assert!(line.contains(error), "{line}");
    }
}
