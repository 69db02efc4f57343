//! A corral process on a data dir, for the scenarios that time start-ups (offsets-replay,
//! restart): started on port 0 (its address read from its first line), the first Metadata it
//! answers, and the temporary data dirs those scenarios fill.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corral_testkit::ServerProcess;
use kafka_protocol::messages::MetadataRequest;

use crate::kafka::connect;
use crate::measure::now_ms;

/// Starts `bin --listen 127.0.0.1:0 --data-dir DIR`; returns once it has printed the address
/// it listens on (after opening the data dir's partitions; the coordinator may still be
/// loading).
pub async fn spawn_corral(bin: &str, data: &Path) -> ServerProcess {
    let mut cmd = Command::new(bin);
    cmd.args(["--listen", "127.0.0.1:0", "--data-dir"]).arg(data).stderr(Stdio::null());
    tokio::task::spawn_blocking(move || ServerProcess::spawn(&mut cmd)).await.expect("spawn task").expect("spawn corral")
}

/// Waits for the first answered Metadata; returns the time since `since`.
pub async fn first_metadata(addr: &str, since: Instant) -> Duration {
    loop {
        if let Ok(mut c) = connect(addr).await
            && c.call(1, &MetadataRequest::default().with_topics(None)).await.is_ok()
        {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
}

/// A fresh directory under the system's temporary one.
pub fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("corral-bench-{}-{}", std::process::id(), now_ms()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// The bytes of every file below `p`.
pub fn dir_size(p: &Path) -> u64 {
    let mut total = 0;
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let m = e.metadata();
            if let Ok(m) = m {
                total += if m.is_dir() { dir_size(&e.path()) } else { m.len() };
            }
        }
    }
    total
}
