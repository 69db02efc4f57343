//! The `restart` scenario: how long corral takes to start again on a data dir holding M
//! megabytes of partition data, after a graceful stop.

use std::time::Instant;

use crate::args::Args;
use crate::kafka::{batch, connect, ensure_topic, produce_frame};
use crate::measure::median;
use crate::server::{dir_size, first_metadata, spawn_corral, tempdir};

/// Restart time of a data dir holding M megabytes of partition data (graceful stop first).
pub async fn run(a: &Args) {
    let bin = a.str("bin");
    let mb: usize = a.get("megabytes", 1024);
    let dir = tempdir();
    let since = Instant::now();
    let mut server = spawn_corral(&bin, &dir).await;
    let addr = server.addr().to_string();
    first_metadata(&addr, since).await;
    ensure_topic(&addr, "bulk", 4).await;
    let mut tasks = Vec::new();
    for p in 0..4 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = connect(&addr).await.expect("connect");
            let frame = produce_frame(&mut c, "bulk", p, 1, batch(100, 1000, -1, 0));
            let mut written = 0usize;
            while written < mb * 1_000_000 / 4 {
                c.round_trip(&frame).await.expect("produce");
                written += frame.len();
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let _ = server.terminate();
    let size = dir_size(&dir);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let since = Instant::now();
        let mut server = spawn_corral(&bin, &dir).await;
        first_metadata(&server.addr().to_string(), since).await;
        runs.push(since.elapsed().as_secs_f64());
        let _ = server.terminate();
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{{\"scenario\":\"restart\",\"data_mb\":{:.0},\"restart_seconds_median\":{:.3}}}", size as f64 / 1e6, median(&mut runs));
}
