//! corral-bench: a load generator that speaks the Kafka protocol (through the kafka-protocol
//! crate, as corral itself does), and the scenarios of `bench/run.sh`. Every scenario prints
//! one JSON line with its figures, so the report can be assembled by a script.
//!
//!     corral-bench startup --bin PATH [--runs N] [--tansu]
//!     corral-bench echo-server --listen HOST:PORT
//!     corral-bench coordinator --target HOST:PORT [--groups G] [--members M] [--seconds S] [--raw]
//!     corral-bench join-storm --target HOST:PORT [--groups G] [--members M]
//!     corral-bench produce --target HOST:PORT [--acks 1|-1] [--records-per-batch N] [--connections C] [--seconds S] [--raw]
//!         [--pid PID] [--upstream-pid PID] [--leader-addr HOST:PORT]
//!     corral-bench fetch --target HOST:PORT [--messages N] [--pid PID] [--upstream-pid PID] [--leader-addr HOST:PORT]
//!     corral-bench relay-server --listen HOST:PORT --upstream HOST:PORT
//!     corral-bench commits --target HOST:PORT [--committers C] [--seconds S]
//!     corral-bench offsets-replay --bin PATH [--records N]
//!     corral-bench compaction [--commits N] [--keys K]
//!     corral-bench restart --bin PATH [--megabytes M]
//!
//! `produce` and `fetch` send each partition's requests to the address of its leader in a
//! Metadata response from `--target`, so they run unchanged through `corral proxy` (whose
//! Metadata lists every upstream broker at a listener of the proxy's). `--pid` names the
//! process whose CPU is counted per request (the server, or the proxy); `--upstream-pid`, a
//! second one (the broker behind a proxy). `--leader-addr` sends every request there instead of
//! following Metadata (through `relay-server`, whose Metadata is the upstream's, unrewritten).

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// ------------------------------------------------------------------------------ options

struct Args {
    scenario: String,
    opts: HashMap<String, String>,
    flags: Vec<String>,
}

impl Args {
    fn parse() -> Args {
        let mut it = std::env::args().skip(1);
        let scenario = it.next().unwrap_or_else(|| {
            eprintln!("usage: corral-bench <scenario> [--option value]...; see the source's first lines");
            std::process::exit(2);
        });
        let rest: Vec<String> = it.collect();
        let mut opts = HashMap::new();
        let mut flags = Vec::new();
        let mut i = 0;
        while i < rest.len() {
            let k = rest[i].trim_start_matches("--").to_string();
            if i + 1 < rest.len() && !rest[i + 1].starts_with("--") {
                opts.insert(k, rest[i + 1].clone());
                i += 2;
            } else {
                flags.push(k);
                i += 1;
            }
        }
        Args { scenario, opts, flags }
    }
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.opts.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
    fn str(&self, k: &str) -> String {
        self.opts.get(k).cloned().unwrap_or_else(|| {
            eprintln!("--{k} is required");
            std::process::exit(2);
        })
    }
    fn flag(&self, k: &str) -> bool {
        self.flags.iter().any(|f| f == k)
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

// ------------------------------------------------------------------------------ the client

/// One connection; requests are encoded with the crate's client encoders.
struct Conn {
    stream: TcpStream,
    corr: i32,
    buf: BytesMut,
}

impl Conn {
    async fn connect(addr: &str) -> std::io::Result<Conn> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn { stream, corr: 0, buf: BytesMut::with_capacity(64 * 1024) })
    }

    fn frame<R: Request + Encodable + HeaderVersion>(&mut self, version: i16, req: &R) -> Bytes {
        self.corr += 1;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.corr)
            .with_client_id(Some(s("corral-bench")))
            .encode(&mut body, R::header_version(version))
            .expect("header encodes");
        req.encode(&mut body, version).expect("request encodes");
        let mut out = BytesMut::with_capacity(body.len() + 4);
        out.put_i32(body.len() as i32);
        out.extend_from_slice(&body);
        out.freeze()
    }

    async fn raw(&mut self, frame: &[u8]) -> std::io::Result<Bytes> {
        self.stream.write_all(frame).await?;
        self.read_frame().await
    }

    async fn read_frame(&mut self) -> std::io::Result<Bytes> {
        loop {
            if self.buf.len() >= 4 {
                let n = i32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
                if self.buf.len() >= 4 + n {
                    self.buf.advance(4);
                    return Ok(self.buf.split_to(n).freeze());
                }
            }
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "closed"));
            }
        }
    }

    async fn call<R>(&mut self, version: i16, req: &R) -> std::io::Result<R::Response>
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let f = self.frame(version, req);
        let mut resp = self.raw(&f).await?;
        ResponseHeader::decode(&mut resp, <R::Response as HeaderVersion>::header_version(version)).map_err(std::io::Error::other)?;
        R::Response::decode(&mut resp, version).map_err(std::io::Error::other)
    }
}

/// The end of a closed-loop run: lets it go for `seconds`, stops its tasks and gathers their
/// latencies (µs). Returns the elapsed seconds, the server's CPU seconds since `cpu0` (-1
/// without a server pid), those of a second process (`also`: the upstream behind a proxy; -1
/// without one) and the latencies, sorted.
async fn finish_run(
    seconds: f64,
    stop: &AtomicBool,
    started: Instant,
    server: Option<(u32, f64)>,
    also: Option<(u32, f64)>,
    tasks: Vec<tokio::task::JoinHandle<Vec<u64>>>,
) -> (f64, f64, f64, Vec<u64>) {
    tokio::time::sleep(Duration::from_secs_f64(seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = server.map_or(-1.0, |(pid, cpu0)| cpu_seconds(pid) - cpu0);
    let cpu_also = also.map_or(-1.0, |(pid, cpu0)| cpu_seconds(pid) - cpu0);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("load task"));
    }
    lat.sort_unstable();
    (elapsed, cpu, cpu_also, lat)
}

/// Server CPU µs per operation, or -1 when it was not measured.
fn cpu_per_op(cpu_seconds: f64, ops: u64) -> f64 {
    if cpu_seconds >= 0.0 { cpu_seconds / ops.max(1) as f64 * 1e6 } else { -1.0 }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0) + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A process's CPU time in seconds to the nanosecond: the sum of its threads' run times
/// (/proc/PID/task/*/schedstat), for phases too short for utime+stime's 10 ms ticks. Threads
/// that exited are not counted (a server's long-lived workers do not exit mid-run); falls back
/// to [`cpu_seconds`] without schedstat.
fn cpu_seconds_fine(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return cpu_seconds(pid);
    };
    let mut ns = 0u64;
    let mut any = false;
    for t in tasks.flatten() {
        if let Some(run) = std::fs::read_to_string(t.path().join("schedstat")).ok().and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok()) {
            ns += run;
            any = true;
        }
    }
    if any { ns as f64 / 1e9 } else { cpu_seconds(pid) }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Starts a broker process; returns it once it accepts connections.
async fn spawn_broker(bin: &str, tansu: bool, port: u16, data: Option<&PathBuf>) -> (tokio::process::Child, Duration) {
    let started = Instant::now();
    let mut cmd = tokio::process::Command::new(bin);
    if tansu {
        let url = format!("tcp://127.0.0.1:{port}");
        cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"]);
    } else {
        cmd.args(["--listen", &format!("127.0.0.1:{port}")]);
        match data {
            Some(d) => {
                cmd.arg("--data-dir").arg(d);
            }
            None => {
                cmd.arg("--ephemeral");
            }
        }
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null()).kill_on_drop(true);
    let child = cmd.spawn().expect("spawn broker");
    (child, started.elapsed())
}

/// Waits for the first answered Metadata; returns the time since `since`.
async fn first_metadata(addr: &str, since: Instant) -> Duration {
    loop {
        if let Ok(mut c) = Conn::connect(addr).await
            && c.call(1, &MetadataRequest::default().with_topics(None)).await.is_ok()
        {
            return since.elapsed();
        }
        tokio::time::sleep(Duration::from_micros(300)).await;
    }
}

// ------------------------------------------------------------------------------ scenarios

/// Spawn → first answered Metadata, measured without a runtime in the way: a blocking
/// connect loop (50 µs apart) from the moment `spawn` returns.
fn startup_once(bin: &str, tansu: bool) -> (f64, u64) {
    use std::io::{Read, Write};
    let port = free_port();
    let mut cmd = std::process::Command::new(bin);
    if tansu {
        let url = format!("tcp://127.0.0.1:{port}");
        cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"]);
    } else {
        cmd.args(["--ephemeral", "--listen", &format!("127.0.0.1:{port}")]);
    }
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    // Metadata v1, all topics: a frame built once
    let mut req = BytesMut::new();
    req.put_i16(3);
    req.put_i16(1);
    req.put_i32(1);
    req.put_i16(-1);
    req.put_i32(-1);
    let mut frame = (req.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&req);
    let started = Instant::now();
    let mut child = cmd.spawn().expect("spawn broker");
    let took = loop {
        if let Ok(mut sock) = std::net::TcpStream::connect(("127.0.0.1", port)) {
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
    let rss = rss_kib(child.id());
    let _ = child.kill();
    let _ = child.wait();
    (took.as_secs_f64() * 1000.0, rss)
}

async fn startup(a: &Args) {
    let bin = a.str("bin");
    let runs: usize = a.get("runs", 9);
    let tansu = a.flag("tansu");
    let (mut times, mut rss) = tokio::task::spawn_blocking(move || {
        let mut times = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..runs {
            let (t, r) = startup_once(&bin, tansu);
            times.push(t);
            rss.push(r as f64);
        }
        (times, rss)
    })
    .await
    .expect("startup runs");
    println!(
        "{{\"scenario\":\"startup\",\"broker\":\"{}\",\"first_metadata_ms_median\":{:.2},\"idle_rss_kib_median\":{:.0},\"runs\":{runs}}}",
        if tansu { "tansu" } else { "corral" },
        median(&mut times),
        median(&mut rss)
    );
}

/// The limit: answers every frame with a frame of the same size (the request's bytes).
async fn echo_server(listen: &str) {
    let l = TcpListener::bind(listen).await.expect("bind echo");
    eprintln!("echo listening on {}", l.local_addr().expect("addr"));
    loop {
        let (mut sock, _) = l.accept().await.expect("accept");
        let _ = sock.set_nodelay(true);
        tokio::spawn(async move {
            let mut buf = BytesMut::with_capacity(64 * 1024);
            loop {
                while buf.len() >= 4 {
                    let n = i32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if buf.len() < 4 + n {
                        break;
                    }
                    let frame = buf.split_to(4 + n);
                    if sock.write_all(&frame).await.is_err() {
                        return;
                    }
                }
                match sock.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        });
    }
}

/// The proxy's limit: a TCP relay that joins every accepted connection, byte for byte, to a
/// new connection of its own to `upstream` (one task per connection copying both ways, no
/// framing, nothing decoded, 256 KiB buffers), on a runtime built as corral's (multi-thread,
/// a worker per core). What forwarding costs on this machine with nothing else done, as the
/// echo server is the broker's limit.
fn relay_server(listen: &str, upstream: &str) {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async move {
        let l = TcpListener::bind(listen).await.expect("bind relay");
        eprintln!("relay listening on {}, to {upstream}", l.local_addr().expect("addr"));
        loop {
            let (mut client, _) = l.accept().await.expect("accept");
            let upstream = upstream.to_string();
            tokio::spawn(async move {
                let Ok(mut up) = TcpStream::connect(&upstream).await else {
                    return;
                };
                let _ = client.set_nodelay(true);
                let _ = up.set_nodelay(true);
                let _ = tokio::io::copy_bidirectional_with_sizes(&mut client, &mut up, 256 << 10, 256 << 10).await;
            });
        }
    });
}

/// A member of a benchmark group, as a real client would be after joining.
struct Member {
    conn: Conn,
    member_id: String,
    generation: i32,
    group: String,
}

const TOPIC: &str = "bench";

/// Joins one member (the v4+ two-step join) and, when leader, assigns round-robin.
async fn join_member(conn: &mut Conn, group: &str, member_id: &mut String) -> std::io::Result<(i32, bool)> {
    loop {
        let r = conn
            .call(
                5,
                &JoinGroupRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_member_id(s(member_id))
                    .with_session_timeout_ms(60_000)
                    // short, so a broker that waits out the rebalance timeout finishes in time
                    .with_rebalance_timeout_ms(10_000)
                    .with_protocol_type(s("consumer"))
                    .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
                        .with_name(s("range"))
                        .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 1, 0, 5, b'b', b'e', b'n', b'c', b'h', 0xff, 0xff, 0xff, 0xff]))]),
            )
            .await?;
        match r.error_code {
            0 => {
                *member_id = r.member_id.to_string();
                let leader = r.leader == r.member_id;
                let assignments = if leader {
                    r.members
                        .iter()
                        .map(|m| sync_group_request::SyncGroupRequestAssignment::default().with_member_id(m.member_id.clone()).with_assignment(Bytes::from_static(b"a")))
                        .collect()
                } else {
                    Vec::new()
                };
                let sr = conn
                    .call(
                        3,
                        &SyncGroupRequest::default()
                            .with_group_id(GroupId(s(group)))
                            .with_member_id(s(member_id))
                            .with_generation_id(r.generation_id)
                            .with_assignments(assignments),
                    )
                    .await?;
                if sr.error_code == 0 {
                    return Ok((r.generation_id, leader));
                }
                if sr.error_code != 27 {
                    return Err(std::io::Error::other(format!("SyncGroup error {}", sr.error_code)));
                }
            }
            79 => *member_id = r.member_id.to_string(),
            25 => member_id.clear(),
            code => return Err(std::io::Error::other(format!("JoinGroup error {code}"))),
        }
    }
}

/// Group names unique to this process, so that a scenario never meets the members an
/// earlier scenario left behind in the same broker (they linger until their session ends).
fn group_name(g: usize) -> String {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let tag = TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
        format!("{}-{nanos}", std::process::id())
    });
    format!("bench-{tag}-{g}")
}

/// One member until it holds an assignment every other member has seen stable: join, sync,
/// heartbeat every 100 ms, rejoin on any group error, reconnect on a broken connection.
/// Connects, retrying until the deadline: thousands of members connecting at once overflow
/// the server's listen backlog, and some connects fail before the server has accepted them.
async fn connect_until(target: &str, deadline: Instant) -> std::io::Result<Conn> {
    loop {
        match Conn::connect(target).await {
            Ok(c) => return Ok(c),
            Err(e) if Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

async fn converge_member(target: &str, group: &str, done: &AtomicU64, everyone: usize, deadline: Instant) -> std::io::Result<Member> {
    let mut conn = connect_until(target, deadline).await?;
    let mut member_id = String::new();
    let mut generation = -1;
    let mut settled = false;
    let mut last = String::from("none");
    let unsettle = |settled: &mut bool| {
        if *settled {
            *settled = false;
            done.fetch_sub(1, Ordering::SeqCst);
        }
    };
    loop {
        if Instant::now() > deadline {
            return Err(std::io::Error::new(std::io::ErrorKind::TimedOut, format!("the group did not settle (last error: {last})")));
        }
        if generation < 0 {
            match join_member(&mut conn, group, &mut member_id).await {
                Ok((g, _)) => generation = g,
                Err(e) => {
                    last = e.to_string();
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    conn = connect_until(target, deadline).await?;
                    continue;
                }
            }
        }
        let hb = HeartbeatRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(&member_id)).with_generation_id(generation);
        match conn.call(3, &hb).await {
            Ok(r) if r.error_code == 0 => {
                if !settled {
                    settled = true;
                    done.fetch_add(1, Ordering::SeqCst);
                }
                if done.load(Ordering::SeqCst) as usize == everyone {
                    // everyone has been stable once: confirm ours still is
                    if matches!(conn.call(3, &hb).await, Ok(r) if r.error_code == 0) {
                        return Ok(Member { conn, member_id, generation, group: group.to_string() });
                    }
                    unsettle(&mut settled);
                    generation = -1;
                    continue;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(r) => {
                last = format!("Heartbeat error {}", r.error_code);
                unsettle(&mut settled);
                generation = -1;
            }
            Err(e) => {
                last = e.to_string();
                unsettle(&mut settled);
                generation = -1;
                tokio::time::sleep(Duration::from_millis(50)).await;
                conn = connect_until(target, deadline).await?;
            }
        }
    }
}

/// Every member joins and syncs, then heartbeats until a whole pass succeeds. Returns the
/// members and the time until all held an assignment of the final generation, or an error
/// when the groups did not settle within `limit`.
async fn converge(target: &str, groups: usize, members: usize, limit: Duration) -> std::io::Result<(Vec<Member>, Duration)> {
    let started = Instant::now();
    let deadline = started + limit;
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for g in 0..groups {
        for _ in 0..members {
            let target = target.to_string();
            let group = group_name(g);
            let done = done.clone();
            tasks.push(tokio::spawn(async move {
                // a broker may hold a JoinGroup without answering: the deadline bounds every call
                match tokio::time::timeout_at(deadline.into(), converge_member(&target, &group, &done, groups * members, deadline)).await {
                    Ok(r) => r,
                    Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the group did not settle (a request went unanswered)")),
                }
            }));
        }
    }
    let mut out = Vec::new();
    let mut first_error = None;
    for t in tasks {
        match t.await.map_err(std::io::Error::other).and_then(|r| r) {
            Ok(m) => out.push(m),
            Err(e) => {
                let settle = e.kind() == std::io::ErrorKind::TimedOut;
                if first_error.as_ref().is_none_or(|(was_settle, _)| *was_settle && !settle) {
                    first_error = Some((settle, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok((out, started.elapsed())),
    }
}

async fn join_storm(a: &Args) {
    let target = a.str("target");
    let groups: usize = a.get("groups", 100);
    let members: usize = a.get("members", 10);
    let limit = Duration::from_secs_f64(a.get("limit-seconds", 120.0));
    match converge(&target, groups, members, limit).await {
        Ok((_, took)) => println!(
            "{{\"scenario\":\"join-storm\",\"groups\":{groups},\"members\":{members},\"seconds_until_all_assigned\":{:.3}}}",
            took.as_secs_f64()
        ),
        Err(e) => println!("{{\"scenario\":\"join-storm\",\"groups\":{groups},\"members\":{members},\"error\":\"{e}\"}}"),
    }
}

/// Closed-loop heartbeat and commit from every member; or, with `--raw` against the echo
/// server, the same frames at the same concurrency.
async fn coordinator(a: &Args) {
    let target = a.str("target");
    let groups: usize = a.get("groups", 1000);
    let members: usize = a.get("members", 10);
    let seconds: f64 = a.get("seconds", 10.0);
    let raw = a.flag("raw");
    let pid: Option<u32> = a.opts.get("pid").and_then(|p| p.parse().ok());
    let mut conns: Vec<(Conn, Bytes, Bytes)> = Vec::new();
    let mut join_time = 0.0;
    if raw {
        for g in 0..groups {
            for m in 0..members {
                let mut c = Conn::connect(&target).await.expect("connect");
                let (hb, cm) = op_frames(&mut c, &group_name(g), &format!("m-{m}"), 1);
                conns.push((c, hb, cm));
            }
        }
    } else {
        // the topic the commits name
        let mut admin = Conn::connect(&target).await.expect("connect");
        admin
            .call(9, &MetadataRequest::default().with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(TOPIC))))])))
            .await
            .expect("metadata");
        let limit = Duration::from_secs_f64(a.get("limit-seconds", 120.0));
        let (ms, took) = match converge(&target, groups, members, limit).await {
            Ok(r) => r,
            Err(e) => {
                println!("{{\"scenario\":\"coordinator\",\"groups\":{groups},\"members\":{members},\"error\":\"{e}\"}}");
                return;
            }
        };
        join_time = took.as_secs_f64();
        for mut m in ms {
            let (hb, cm) = op_frames(&mut m.conn, &m.group, &m.member_id, m.generation);
            conns.push((m.conn, hb, cm));
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let cpu0 = pid.map(cpu_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (mut c, hb, cm) in conns {
        let (stop, ops, errors) = (stop.clone(), ops.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let frame = if i.is_multiple_of(2) { &hb } else { &cm };
                let t = Instant::now();
                match c.raw(frame).await {
                    Ok(resp) => {
                        // an error code shows where a response carries one, non-zero = error
                        if !raw && i.is_multiple_of(2) && resp.len() >= 10 && resp[8..10] != [0, 0] {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    Err(_) => return lat,
                }
                lat.push(t.elapsed().as_micros() as u64);
                ops.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
            lat
        }));
    }
    let (elapsed, cpu, _, lat) = finish_run(seconds, &stop, started, pid.zip(cpu0), None, tasks).await;
    let total = ops.load(Ordering::Relaxed);
    println!(
        "{{\"scenario\":\"coordinator\",\"raw\":{raw},\"groups\":{groups},\"members\":{members},\"join_seconds\":{join_time:.3},\"ops_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"p999_ms\":{:.3},\"errors\":{},\"server_cpu_us_per_op\":{:.2}}}",
        total as f64 / elapsed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 0.999),
        errors.load(Ordering::Relaxed),
        cpu_per_op(cpu, total)
    );
}

/// The prebuilt Heartbeat (v3) and OffsetCommit (v7) frames of one member.
fn op_frames(c: &mut Conn, group: &str, member: &str, generation: i32) -> (Bytes, Bytes) {
    let hb = c.frame(3, &HeartbeatRequest::default().with_group_id(GroupId(s(group))).with_member_id(s(member)).with_generation_id(generation));
    let cm = c.frame(
        7,
        &OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_generation_id_or_member_epoch(generation)
            .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(vec![
                offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(42),
            ])]),
    );
    (hb, cm)
}

fn batch(records: usize, value_len: usize, producer_id: i64, sequence: i32) -> Bytes {
    let value = Bytes::from(vec![b'x'; value_len]);
    let recs: Vec<Record> = (0..records)
        .map(|i| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: if producer_id >= 0 { 0 } else { -1 },
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: if producer_id >= 0 { sequence + i as i32 } else { i as i32 - 1 },
            timestamp: corral::broker::now_ms(),
            key: None,
            value: Some(value.clone()),
            headers: Default::default(),
        })
        .collect();
    let mut b = BytesMut::new();
    RecordBatchEncoder::encode(&mut b, &recs, &RecordEncodeOptions { version: 2, compression: Compression::None }).expect("batch");
    b.freeze()
}

fn produce_frame(c: &mut Conn, topic: &str, partition: i32, acks: i16, records: Bytes) -> Bytes {
    c.frame(
        7,
        &ProduceRequest::default().with_acks(acks).with_timeout_ms(30_000).with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(TopicName(s(topic)))
            .with_partition_data(vec![produce_request::PartitionProduceData::default().with_index(partition).with_records(Some(records))])]),
    )
}

async fn ensure_topic(target: &str, topic: &str, partitions: i32) {
    let mut c = Conn::connect(target).await.expect("connect");
    c.call(
        5,
        &CreateTopicsRequest::default().with_timeout_ms(10_000).with_topics(vec![create_topics_request::CreatableTopic::default()
            .with_name(TopicName(s(topic)))
            .with_num_partitions(partitions)
            .with_replication_factor(1)]),
    )
    .await
    .expect("create topic");
}

/// A string as a JSON string literal.
fn json_str(v: &str) -> String {
    let mut out = String::with_capacity(v.len() + 2);
    out.push('"');
    for ch in v.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The address of the broker leading `partition` of `topic`, as a Metadata response (v9, asked
/// of `target`) names it: a proxy lists each upstream broker at a listener of its own, and a
/// partition's requests must go there. Asks again while the leader is not known yet (10 s).
async fn leader_addr(target: &str, topic: &str, partition: i32) -> Result<String, String> {
    let mut c = Conn::connect(target).await.map_err(|e| format!("connect {target}: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let req = MetadataRequest::default()
            .with_topics(Some(vec![metadata_request::MetadataRequestTopic::default().with_name(Some(TopicName(s(topic))))]))
            .with_allow_auto_topic_creation(false);
        let r = c.call(9, &req).await.map_err(|e| format!("Metadata from {target}: {e}"))?;
        let part = r
            .topics
            .iter()
            .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == topic))
            .and_then(|t| t.partitions.iter().find(|p| p.partition_index == partition));
        let leader = part.map(|p| p.leader_id.0).unwrap_or(-1);
        if let Some(b) = r.brokers.iter().find(|b| leader >= 0 && b.node_id.0 == leader) {
            return Ok(format!("{}:{}", b.host.as_str(), b.port));
        }
        if Instant::now() > deadline {
            let why = match part {
                None => "the topic or partition is not in Metadata".to_string(),
                Some(p) if p.leader_id.0 < 0 => format!("no leader (error code {})", p.error_code),
                Some(p) => format!("leader {} is not among the brokers listed", p.leader_id.0),
            };
            return Err(format!("{topic}-{partition} at {target}: {why}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the error code of the first partition of a Produce v7 response to one topic and one
/// partition sits: correlation id, topics count, topic name, partitions count, partition index.
fn produce_error_at(topic: &str) -> usize {
    4 + 4 + 2 + topic.len() + 4 + 4
}

/// Closed-loop produce over C connections; each request carries one batch of N records.
/// Connection `p` writes partition `p`, at the address of its leader in Metadata (through a
/// proxy, the listener of the upstream broker leading it), except with `--raw` (the echo
/// server answers no Metadata). `--pid` is the server's process, whose CPU is counted per
/// request; `--upstream-pid`, behind a proxy, the upstream broker's.
async fn produce(a: &Args) {
    let target = a.str("target");
    let acks: i16 = a.get("acks", 1);
    let per_batch: usize = a.get("records-per-batch", 1);
    let value_len: usize = a.get("value-bytes", 100);
    let connections: usize = a.get("connections", 4);
    let seconds: f64 = a.get("seconds", 5.0);
    let pid: Option<u32> = a.opts.get("pid").and_then(|p| p.parse().ok());
    let upstream_pid: Option<u32> = a.opts.get("upstream-pid").and_then(|p| p.parse().ok());
    let raw = a.flag("raw");
    let topic = format!("produce-{per_batch}-{acks}");
    let leader_override = a.opts.get("leader-addr").cloned();
    let mut addrs = vec![leader_override.clone().unwrap_or_else(|| target.clone()); connections];
    if !raw {
        ensure_topic(&target, &topic, connections as i32).await;
        for (p, addr) in addrs.iter_mut().enumerate().filter(|_| leader_override.is_none()) {
            match leader_addr(&target, &topic, p as i32).await {
                Ok(a) => *addr = a,
                Err(e) => {
                    println!(
                        "{{\"scenario\":\"produce\",\"raw\":{raw},\"acks\":{acks},\"records_per_batch\":{per_batch},\"connections\":{connections},\"error\":{}}}",
                        json_str(&format!("finding the partition leader: {e}"))
                    );
                    return;
                }
            }
        }
    }
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    // responses with a non-zero error code, and the last such code
    let errors = Arc::new(AtomicU64::new(0));
    let error_code = Arc::new(AtomicU64::new(0));
    let error_at = produce_error_at(&topic);
    let mut tasks = Vec::new();
    let cpu0 = pid.map(cpu_seconds);
    let upstream_cpu0 = upstream_pid.map(cpu_seconds);
    let started = Instant::now();
    for (p, addr) in addrs.iter().enumerate() {
        let (addr, topic, stop, requests, errors, error_code) =
            (addr.clone(), topic.clone(), stop.clone(), requests.clone(), errors.clone(), error_code.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::connect(&addr).await.expect("connect");
            let frame = produce_frame(&mut c, &topic, p as i32, acks, batch(per_batch, value_len, -1, 0));
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let Ok(resp) = c.raw(&frame).await else {
                    break;
                };
                lat.push(t.elapsed().as_micros() as u64);
                requests.fetch_add(1, Ordering::Relaxed);
                if !raw {
                    let code = resp.get(error_at..error_at + 2).map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]));
                    if code != 0 {
                        errors.fetch_add(1, Ordering::Relaxed);
                        error_code.store(code as u16 as u64, Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let (elapsed, cpu, upstream_cpu, lat) = finish_run(seconds, &stop, started, pid.zip(cpu0), upstream_pid.zip(upstream_cpu0), tasks).await;
    let total = requests.load(Ordering::Relaxed);
    let cpu = cpu_per_op(cpu, total);
    let upstream_cpu = cpu_per_op(upstream_cpu, total);
    let errors = errors.load(Ordering::Relaxed);
    let mut distinct: Vec<&String> = addrs.iter().collect();
    distinct.sort();
    distinct.dedup();
    let addrs_json = distinct.iter().map(|a| json_str(a)).collect::<Vec<_>>().join(",");
    let failed = if errors > 0 {
        format!(
            ",\"error\":{}",
            json_str(&format!("{errors} of {total} responses carried an error code (last: {})", error_code.load(Ordering::Relaxed) as u16 as i16))
        )
    } else {
        String::new()
    };
    println!(
        "{{\"scenario\":\"produce\",\"raw\":{raw},\"acks\":{acks},\"records_per_batch\":{per_batch},\"connections\":{connections},\"addresses\":[{addrs_json}],\"requests_per_sec\":{:.0},\"records_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3},\"server_cpu_us_per_request\":{cpu:.2},\"upstream_cpu_us_per_request\":{upstream_cpu:.2},\"errors\":{errors}{failed}}}",
        total as f64 / elapsed,
        (total * per_batch as u64) as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// Fetch throughput (reading back N messages) and end-to-end latency (a produce, answered
/// by a parked fetch). Every connection goes to the partition leader's address in Metadata
/// (through a proxy: the listener of the upstream broker leading it). `--pid` (and, behind a
/// proxy, `--upstream-pid`): CPU per Fetch request while reading back.
async fn fetch(a: &Args) {
    let target = a.str("target");
    let messages: usize = a.get("messages", 200_000);
    let pid: Option<u32> = a.opts.get("pid").and_then(|p| p.parse().ok());
    let upstream_pid: Option<u32> = a.opts.get("upstream-pid").and_then(|p| p.parse().ok());
    let topic = "fetch-bench";
    ensure_topic(&target, topic, 1).await;
    let leader = match a.opts.get("leader-addr") {
        Some(addr) => Ok(addr.clone()),
        None => leader_addr(&target, topic, 0).await,
    };
    let target = match leader {
        Ok(a) => a,
        Err(e) => {
            println!("{{\"scenario\":\"fetch\",\"messages\":{messages},\"error\":{}}}", json_str(&format!("finding the partition leader: {e}")));
            return;
        }
    };
    let mut p = Conn::connect(&target).await.expect("connect");
    let mut sent = 0;
    while sent < messages {
        let n = (messages - sent).min(500);
        let f = produce_frame(&mut p, topic, 0, 1, batch(n, 100, -1, 0));
        p.raw(&f).await.expect("produce");
        sent += n;
    }
    let mut c = Conn::connect(&target).await.expect("connect");
    // a read-back is a few requests of 4 MiB: counted to the nanosecond
    let cpu0 = pid.map(cpu_seconds_fine);
    let upstream_cpu0 = upstream_pid.map(cpu_seconds_fine);
    let mut fetches = 0u64;
    let started = Instant::now();
    let mut offset = 0i64;
    let mut bytes_read = 0usize;
    let mut progress = Instant::now();
    while offset < messages as i64 {
        if progress.elapsed() > Duration::from_secs(30) {
            println!("{{\"scenario\":\"fetch\",\"messages\":{messages},\"error\":\"no progress for 30 s at offset {offset} of {messages}\"}}");
            return;
        }
        let before = offset;
        let r = c
            .call(
                11,
                &FetchRequest::default().with_max_wait_ms(500).with_min_bytes(1).with_max_bytes(4 << 20).with_topics(vec![fetch_request::FetchTopic::default()
                    .with_topic(TopicName(s(topic)))
                    .with_partitions(vec![fetch_request::FetchPartition::default().with_fetch_offset(offset).with_partition_max_bytes(4 << 20)])]),
            )
            .await
            .expect("fetch");
        fetches += 1;
        let recs = r.responses[0].partitions[0].records.clone().unwrap_or_default();
        bytes_read += recs.len();
        // advance past the last whole batch
        let mut at = 0;
        while at + 61 <= recs.len() {
            let base = i64::from_be_bytes(recs[at..at + 8].try_into().expect("8"));
            let len = i32::from_be_bytes(recs[at + 8..at + 12].try_into().expect("4")) as usize;
            let delta = i32::from_be_bytes(recs[at + 23..at + 27].try_into().expect("4")) as i64;
            offset = base + delta + 1;
            at += 12 + len;
        }
        if offset > before {
            progress = Instant::now();
        }
    }
    let read_secs = started.elapsed().as_secs_f64();
    let cpu = cpu_per_op(pid.zip(cpu0).map_or(-1.0, |(pid, c0)| cpu_seconds_fine(pid) - c0), fetches);
    let upstream_cpu = cpu_per_op(upstream_pid.zip(upstream_cpu0).map_or(-1.0, |(pid, c0)| cpu_seconds_fine(pid) - c0), fetches);
    // end to end: a fetch parked at the end, answered by the next produce; 200 rounds, or as
    // many as fit in 20 s (a broker that answers only when max_wait_ms runs out is slow here)
    let mut lats = Vec::new();
    let e2e_started = Instant::now();
    for _ in 0..200 {
        if e2e_started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let mut waiter = Conn::connect(&target).await.expect("connect");
        let req = FetchRequest::default().with_max_wait_ms(5000).with_min_bytes(1).with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(TopicName(s(topic)))
            .with_partitions(vec![fetch_request::FetchPartition::default().with_fetch_offset(offset).with_partition_max_bytes(1 << 20)])]);
        let frame = waiter.frame(11, &req);
        waiter.stream.write_all(&frame).await.expect("send fetch");
        tokio::time::sleep(Duration::from_millis(2)).await;
        let t = Instant::now();
        let f = produce_frame(&mut p, topic, 0, 1, batch(1, 100, -1, 0));
        p.raw(&f).await.expect("produce");
        waiter.read_frame().await.expect("fetch answer");
        lats.push(t.elapsed().as_micros() as u64);
        offset += 1;
    }
    lats.sort_unstable();
    println!(
        "{{\"scenario\":\"fetch\",\"messages\":{messages},\"address\":{},\"messages_per_sec\":{:.0},\"mb_per_sec\":{:.1},\"fetch_requests\":{fetches},\"bytes_read\":{bytes_read},\"server_cpu_us_per_request\":{cpu:.2},\"upstream_cpu_us_per_request\":{upstream_cpu:.2},\"e2e_rounds\":{},\"e2e_p50_ms\":{:.3},\"e2e_p99_ms\":{:.3}}}",
        json_str(&target),
        messages as f64 / read_secs,
        bytes_read as f64 / read_secs / 1e6,
        lats.len(),
        percentile(&lats, 0.5),
        percentile(&lats, 0.99)
    );
}

/// Concurrent committers (simple-group commits, each waits for its fsync-backed reply).
async fn commits(a: &Args) {
    let target = a.str("target");
    let committers: usize = a.get("committers", 100);
    let seconds: f64 = a.get("seconds", 5.0);
    ensure_topic(&target, TOPIC, 1).await;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for i in 0..committers {
        let (target, stop, done) = (target.clone(), stop.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::connect(&target).await.expect("connect");
            let mut lat = Vec::new();
            let mut n = 0i64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let req = OffsetCommitRequest::default().with_group_id(GroupId(s(&format!("committer-{i}")))).with_generation_id_or_member_epoch(-1).with_topics(vec![
                    offset_commit_request::OffsetCommitRequestTopic::default().with_name(TopicName(s(TOPIC))).with_partitions(vec![
                        offset_commit_request::OffsetCommitRequestPartition::default().with_partition_index(0).with_committed_offset(n),
                    ]),
                ]);
                let t = Instant::now();
                let r = c.call(7, &req).await.expect("commit");
                assert_eq!(r.topics[0].partitions[0].error_code, 0);
                lat.push(t.elapsed().as_micros() as u64);
                done.fetch_add(1, Ordering::Relaxed);
            }
            lat
        }));
    }
    let (elapsed, _, _, lat) = finish_run(seconds, &stop, started, None, None, tasks).await;
    println!(
        "{{\"scenario\":\"commits\",\"committers\":{committers},\"commits_per_sec\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        done.load(Ordering::Relaxed) as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}

/// One committed offset of topic "topic" as the offsets log stores it (key, value).
fn offset_record(group: String, partition: i32, offset: i64) -> (Bytes, Option<Bytes>) {
    use corral::coordinator::record::{OffsetValue, Record};
    let value = OffsetValue { offset, leader_epoch: -1, metadata: String::new(), commit_timestamp: 1, expire_timestamp: None };
    let r = Record::Offset { group, topic: "topic".into(), partition, value: Some(value) }.encode();
    (r.key, r.value)
}

/// Writes `records` OffsetCommit records straight into a fresh data dir's offsets logs, then
/// times a corral start until every shard has loaded (ListGroups stops answering
/// COORDINATOR_LOAD_IN_PROGRESS).
async fn offsets_replay(a: &Args) {
    use corral::log::keyed::{KeyedConfig, KeyedLog};
    let bin = a.str("bin");
    let records: usize = a.get("records", 10_000_000);
    // --dir keeps the data dir (and reuses one written before) for profiling runs
    let keep = a.opts.get("dir").map(PathBuf::from);
    let dir = keep.clone().unwrap_or_else(tempdir);
    let reuse = keep.is_some() && dir.join("coordinator").exists();
    let meta = corral::log::datadir::Meta { cluster_id: "bench".into(), node_id: 1, offsets_partitions: 50 };
    let (data, _) = corral::log::datadir::DataDir::open(&dir, meta).expect("data dir");
    let write_started = Instant::now();
    let per_shard = if reuse { 0 } else { records / 50 };
    for shard in (0..50usize).filter(|_| per_shard > 0) {
        let storage = data.storage(&format!("coordinator/{shard:02}")).expect("storage");
        let log = KeyedLog::open("bench", storage, KeyedConfig::default(), |_| {}).expect("log");
        let mut chunk = Vec::with_capacity(10_000);
        for i in 0..per_shard {
            chunk.push(offset_record(format!("group-{shard}-{}", i % 1000), (i % 100) as i32, i as i64));
            if chunk.len() == 10_000 {
                log.append(&chunk, 1).expect("append");
                chunk.clear();
            }
        }
        log.append(&chunk, 1).expect("append");
        log.sync_now().expect("sync");
    }
    drop(data);
    let write_secs = write_started.elapsed().as_secs_f64();
    let size: u64 = dir_size(&dir);
    let mut runs = Vec::new();
    // each run starts from a copy: a loaded server compacts its logs, the next run must
    // replay every record again
    let work = dir.with_extension("run");
    for _ in 0..3 {
        let _ = std::fs::remove_dir_all(&work);
        let copied = std::process::Command::new("cp").arg("-a").arg(&dir).arg(&work).status().expect("cp");
        assert!(copied.success(), "copying the data dir failed");
        let port = free_port();
        let since = Instant::now();
        let (child, _) = spawn_broker(&bin, false, port, Some(&work)).await;
        let addr = format!("127.0.0.1:{port}");
        first_metadata(&addr, since).await;
        let mut c = Conn::connect(&addr).await.expect("connect");
        loop {
            let r = c.call(4, &ListGroupsRequest::default()).await.expect("list groups");
            if r.error_code == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        runs.push(since.elapsed().as_secs_f64());
        drop(child);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let _ = std::fs::remove_dir_all(&work);
    println!(
        "{{\"scenario\":\"offsets-replay\",\"records\":{records},\"log_mb\":{:.0},\"write_seconds\":{write_secs:.1},\"load_seconds_median\":{:.3}}}",
        size as f64 / 1e6,
        median(&mut runs)
    );
}

/// 10M commits over 10k keys into one offsets log, compacted as the server does (whenever
/// more than half of it is superseded); reports disk bytes against the live set.
async fn compaction(a: &Args) {
    use corral::log::keyed::{KeyedConfig, KeyedLog};
    let commits: usize = a.get("commits", 10_000_000);
    let keys: usize = a.get("keys", 10_000);
    let dir = tempdir();
    let storage: Arc<dyn corral::log::storage::Storage> = Arc::new(corral::log::storage::FileStorage::open(&dir).expect("storage"));
    let config = KeyedConfig { segment_bytes: 100 << 20, delete_retention_ms: 86_400_000, min_compaction_bytes: 1 << 20 };
    let log = KeyedLog::open("bench", storage, config, |_| {}).expect("log");
    let started = Instant::now();
    let mut max_disk = 0u64;
    let mut compactions = 0;
    let mut chunk = Vec::with_capacity(10_000);
    for i in 0..commits {
        chunk.push(offset_record(format!("group-{}", (i % keys) / 10), (i % 10) as i32, i as i64));
        if chunk.len() == 10_000 {
            log.append(&chunk, 1).expect("append");
            chunk.clear();
            max_disk = max_disk.max(dir_size(&dir));
            if log.needs_compaction() {
                log.compact(2).expect("compact");
                compactions += 1;
            }
        }
    }
    log.append(&chunk, 1).expect("append");
    log.sync_now().expect("sync");
    if log.needs_compaction() {
        log.compact(2).expect("compact");
        compactions += 1;
    }
    let (_, live) = log.sizes();
    let disk = dir_size(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    println!(
        "{{\"scenario\":\"compaction\",\"commits\":{commits},\"keys\":{keys},\"live_bytes\":{live},\"disk_bytes_after\":{disk},\"disk_bytes_max\":{max_disk},\"ratio_after\":{:.2},\"ratio_max\":{:.2},\"compactions\":{compactions},\"seconds\":{:.1}}}",
        disk as f64 / live as f64,
        max_disk as f64 / live as f64,
        started.elapsed().as_secs_f64()
    );
}

/// Restart time of a data dir holding M megabytes of partition data (graceful stop first).
async fn restart(a: &Args) {
    let bin = a.str("bin");
    let mb: usize = a.get("megabytes", 1024);
    let dir = tempdir();
    let port = free_port();
    let since = Instant::now();
    let (child, _) = spawn_broker(&bin, false, port, Some(&dir)).await;
    let addr = format!("127.0.0.1:{port}");
    first_metadata(&addr, since).await;
    ensure_topic(&addr, "bulk", 4).await;
    let mut tasks = Vec::new();
    for p in 0..4 {
        let addr = addr.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Conn::connect(&addr).await.expect("connect");
            let frame = produce_frame(&mut c, "bulk", p, 1, batch(100, 1000, -1, 0));
            let mut written = 0usize;
            while written < mb * 1_000_000 / 4 {
                c.raw(&frame).await.expect("produce");
                written += frame.len();
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let pid = child.id().expect("pid");
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let mut child = child;
    let _ = child.wait().await;
    let size = dir_size(&dir);
    let mut runs = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let since = Instant::now();
        let (mut child, _) = spawn_broker(&bin, false, port, Some(&dir)).await;
        first_metadata(&format!("127.0.0.1:{port}"), since).await;
        runs.push(since.elapsed().as_secs_f64());
        let _ = std::process::Command::new("kill").args(["-TERM", &child.id().expect("pid").to_string()]).status();
        let _ = child.wait().await;
    }
    let _ = std::fs::remove_dir_all(&dir);
    println!("{{\"scenario\":\"restart\",\"data_mb\":{:.0},\"restart_seconds_median\":{:.3}}}", size as f64 / 1e6, median(&mut runs));
}

fn tempdir() -> PathBuf {
    let d = std::env::temp_dir().join(format!("corral-bench-{}-{}", std::process::id(), corral::broker::now_ms()));
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

fn dir_size(p: &std::path::Path) -> u64 {
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

fn main() {
    let args = Args::parse();
    if args.scenario == "relay-server" {
        // its own runtime, built as corral's, not the load generator's single worker
        relay_server(&args.str("listen"), &args.str("upstream"));
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
    rt.block_on(async move {
        match args.scenario.as_str() {
            "startup" => startup(&args).await,
            "echo-server" => echo_server(&args.str("listen")).await,
            "coordinator" => coordinator(&args).await,
            "join-storm" => join_storm(&args).await,
            "produce" => produce(&args).await,
            "fetch" => fetch(&args).await,
            "commits" => commits(&args).await,
            "offsets-replay" => offsets_replay(&args).await,
            "compaction" => compaction(&args).await,
            "restart" => restart(&args).await,
            other => {
                eprintln!("unknown scenario {other}");
                std::process::exit(2);
            }
        }
    });
}
