//! The `startup` scenario: spawn to the first answered Metadata, and the idle RSS after.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use corral_testkit::ServerProcess;

use crate::args::Args;
use crate::measure::{median, rss_kib};

/// Metadata v1 for all topics, no client id: the smallest request every broker answers.
fn metadata_v1_frame() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&3i16.to_be_bytes()); // api key
    body.extend_from_slice(&1i16.to_be_bytes()); // version
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // client id: null
    body.extend_from_slice(&(-1i32).to_be_bytes()); // topics: null (all)
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// A port for Tansu, which prints the URL it was given rather than the port it bound and so
/// cannot be started on port 0: one the kernel has just handed out and taken back. (Another
/// process may take it first; that run then fails.)
fn port_for_tansu() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// What `startup` starts: corral; Tansu; or the floor, a server that does nothing at start but
/// listen (`corral-bench echo-server`, this binary: the same toolchain, runtime and release
/// profile as corral), which answers the Metadata frame with its own bytes.
#[derive(Clone, Copy, PartialEq)]
enum System {
    Corral,
    Tansu,
    Floor,
}

/// Spawn → first answered Metadata, measured without a runtime in the way: corral is started
/// on port 0 and its address read from the line it prints once it listens; Tansu, on a port
/// chosen here, found by a blocking connect loop (50 µs apart). The clock starts when `spawn`
/// is called.
fn startup_once(bin: &str, system: System) -> (f64, u64) {
    let frame = metadata_v1_frame();
    let mut cmd = Command::new(bin);
    cmd.stderr(Stdio::null());
    let started;
    let server = if system == System::Tansu {
        let addr = SocketAddr::from(([127, 0, 0, 1], port_for_tansu().expect("a port for tansu")));
        let url = format!("tcp://{addr}");
        cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"]);
        cmd.stdout(Stdio::null());
        started = Instant::now();
        ServerProcess::spawn_at(&mut cmd, addr)
    } else {
        match system {
            System::Floor => cmd.args(["echo-server", "--listen", "127.0.0.1:0"]),
            _ => cmd.args(["--ephemeral", "--listen", "127.0.0.1:0"]),
        };
        started = Instant::now();
        ServerProcess::spawn(&mut cmd)
    };
    let server = server.expect("spawn broker");
    let took = loop {
        if let Ok(mut sock) = std::net::TcpStream::connect(server.addr()) {
            let _ = sock.set_nodelay(true);
            let mut size = [0u8; 4];
            if sock.write_all(&frame).is_ok() && sock.read_exact(&mut size).is_ok() {
                let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
                if sock.read_exact(&mut body).is_ok() {
                    break started.elapsed();
                }
            }
        }
        std::thread::sleep(Duration::from_micros(50));
    };
    std::thread::sleep(Duration::from_millis(500));
    let rss = rss_kib(server.pid());
    drop(server);
    (took.as_secs_f64() * 1000.0, rss)
}

pub async fn run(a: &Args) {
    let bin = a.str("bin");
    let runs: usize = a.get("runs", 9);
    let system = if a.flag("tansu") {
        System::Tansu
    } else if a.flag("floor") {
        System::Floor
    } else {
        System::Corral
    };
    let (mut times, mut rss) = tokio::task::spawn_blocking(move || {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..runs {
            let (t, r) = startup_once(&bin, system);
            times.push(t);
            rss.push(r as f64);
        }
        (times, rss)
    })
    .await
    .expect("startup runs");
    println!(
        "{{\"scenario\":\"startup\",\"broker\":\"{}\",\"first_metadata_ms_median\":{:.2},\"idle_rss_kib_median\":{:.0},\"runs\":{runs}}}",
        match system {
            System::Corral => "corral",
            System::Tansu => "tansu",
            System::Floor => "floor",
        },
        median(&mut times),
        median(&mut rss)
    );
}
