//! Test support: an in-process corral on 127.0.0.1:0, and a raw Kafka client that speaks
//! through the kafka-protocol crate's client encoders (corral-testkit's, shared with the load
//! generator).
#![allow(dead_code)]

use std::net::SocketAddr;

use bytes::Bytes;
use corral::Config;
use corral_testkit::Client;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request};
use tokio::net::{TcpListener, TcpStream};

/// A corral run in this process on a listener bound to 127.0.0.1:0, until stopped or dropped.
struct InProcess {
    addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<Result<(), corral::server::ServerError>>>,
}

impl InProcess {
    async fn start(config: Config) -> InProcess {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(corral::run(listener, config, async move {
            let _ = rx.await;
        }));
        InProcess { addr, stop: Some(tx), handle: Some(handle) }
    }

    /// Stops it and waits until it has stopped; its result.
    async fn stop(mut self) -> Result<(), corral::server::ServerError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// A corral serving on an ephemeral port until dropped (or [`TestServer::stop`]).
pub struct TestServer {
    pub addr: SocketAddr,
    running: InProcess,
}

impl TestServer {
    /// Starts an ephemeral (in-memory) corral with `tweak` applied to the default config.
    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config { ephemeral: true, ..Config::default() };
        tweak(&mut config);
        let running = InProcess::start(config).await;
        TestServer { addr: running.addr, running }
    }

    pub async fn start() -> TestServer {
        Self::start_with(|_| {}).await
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the server and waits until it has stopped.
    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

/// A corral proxy (`corral proxy --upstream ...`) serving on an ephemeral port until dropped.
/// Its node listeners take free ports too (the listen port is 0).
pub struct TestProxy {
    pub addr: SocketAddr,
    running: InProcess,
}

impl TestProxy {
    /// Starts a proxy in front of `upstream` (HOST:PORT[,...]), keeping its offsets in the
    /// upstream topic unless `tweak` says otherwise.
    pub async fn start_with(upstream: &str, tweak: impl FnOnce(&mut Config)) -> TestProxy {
        let mut config = Config {
            mode: corral::config::Mode::Proxy,
            ephemeral: true,
            listen: "127.0.0.1:0".into(),
            upstream: corral::config::parse_upstream(upstream).unwrap(),
            ..Config::default()
        };
        tweak(&mut config);
        let running = InProcess::start(config).await;
        TestProxy { addr: running.addr, running }
    }

    pub async fn start(upstream: &str) -> TestProxy {
        Self::start_with(upstream, |_| {}).await
    }

    pub fn bootstrap(&self) -> String {
        self.addr.to_string()
    }

    /// Stops the proxy and waits until it has stopped; its result.
    pub async fn stop(self) -> Result<(), corral::server::ServerError> {
        self.running.stop().await
    }
}

/// The server's `corral_connections` gauge: how many connection tasks are alive (the accept
/// loop raises it for each connection it takes and lowers it when that connection's task has
/// finished serving). Read from a Prometheus recorder, the one corral's `--metrics` endpoint
/// uses, made this thread's default while the value lives.
///
/// Only for a server on `#[tokio::test]`'s current-thread runtime, created before the server
/// starts: its tasks then all run on the test's thread and report here. (On other threads the
/// gauge would stay at 0, so a test that first waits for its connection to show up fails
/// rather than passes by mistake.)
pub struct Connections {
    handle: metrics_exporter_prometheus::PrometheusHandle,
    _local: metrics::LocalRecorderGuard<'static>,
}

impl Connections {
    pub fn watch() -> Connections {
        // Leaked: the guard borrows it for as long as the test runs; one small recorder a test.
        let recorder: &'static metrics_exporter_prometheus::PrometheusRecorder =
            Box::leak(Box::new(metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()));
        Connections { handle: recorder.handle(), _local: metrics::set_default_local_recorder(recorder) }
    }

    /// The gauge now (0 before the first connection).
    pub fn now(&self) -> f64 {
        let text = self.handle.render();
        text.lines().find_map(|l| l.strip_prefix("corral_connections ")).map(|v| v.trim().parse().expect("a number")).unwrap_or(0.0)
    }

    /// Waits until the gauge reads `n`, up to five seconds.
    pub async fn wait_for(&self, n: u32, what: &str) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while self.now() != f64::from(n) {
            assert!(tokio::time::Instant::now() < deadline, "{what}: {} connections, not {n}, after 5 s", self.now());
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
}

/// A raw connection: testkit's client (requests encoded by the kafka-protocol crate's client
/// side, as a client would), stricter about responses: every one must answer its request's
/// correlation id and end where its body ends. Any failure panics.
pub struct RawClient {
    client: Client,
}

impl RawClient {
    pub async fn connect(addr: SocketAddr) -> RawClient {
        RawClient { client: Client::connect(addr, "corral-test").await.unwrap() }
    }

    /// Encodes a request frame (size prefix included) under the next correlation id.
    pub fn frame<R: Request + Encodable + HeaderVersion>(&mut self, version: i16, req: &R) -> Bytes {
        self.client.frame(version, req)
    }

    /// Sends a request and decodes its response at the same version.
    pub async fn send<R>(&mut self, version: i16, req: &R) -> R::Response
    where
        R: Request + Encodable + HeaderVersion,
        R::Response: Decodable + HeaderVersion,
    {
        let (body, left) = self.client.call_leaving(version, req).await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(left, 0, "{:?} v{version}: {left} bytes left after the response", R::KEY);
        body
    }

    /// Writes raw bytes.
    pub async fn write_raw(&mut self, bytes: &[u8]) {
        self.client.send(bytes).await.unwrap();
    }

    /// Reads one response frame (without its size); `None` if the server closed the connection.
    pub async fn read_frame(&mut self) -> Option<Bytes> {
        self.client.read_frame().await.ok()
    }

    /// Whether the server closes the connection within a second.
    pub async fn closed_by_server(&mut self) -> bool {
        self.client.closed_within(std::time::Duration::from_secs(1)).await
    }

    /// The connection itself.
    pub fn stream(&self) -> &TcpStream {
        self.client.stream()
    }
}

/// Consumes up to `want` messages of `topic` with a consumer made from `config` (a group
/// member, auto commit off), committing the `commit_after`-th message and stopping there;
/// the offsets read, in order. Gives up after 30 s. Blocking: run it off the runtime.
pub fn consume_committing(config: &rdkafka::ClientConfig, topic: &str, want: usize, commit_after: Option<usize>) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
    use rdkafka::message::Message;
    let c: BaseConsumer = config.create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while got.len() < want && std::time::Instant::now() < deadline {
        if let Some(m) = c.poll(std::time::Duration::from_millis(100)) {
            let m = m.unwrap();
            got.push(m.offset());
            if Some(got.len()) == commit_after {
                c.commit_message(&m, CommitMode::Sync).unwrap();
                break;
            }
        }
    }
    got
}

// ---------------------------------------------------------------------- rdkafka tests

/// Waits until `cond` holds, up to `limit`; returns how long it took. Sleeps on tokio's timer
/// between looks, so the server under test keeps the runtime's workers.
pub async fn wait_for(limit: std::time::Duration, what: &str, mut cond: impl FnMut() -> bool) -> std::time::Duration {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    start.elapsed()
}

/// A child process that cannot outlive a failed test.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The example program examples/child_consumer.rs: a member in a process of its own, so that
/// it can be SIGKILLed. Built here (a no-op when it is up to date) because a `cargo test` run
/// filtered to this target builds no examples; it sits in the examples directory beside the
/// `deps` directory holding this test binary.
pub fn child_consumer_exe() -> std::path::PathBuf {
    static EXE: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let me = std::env::current_exe().expect("the test binary's path");
        let profile_dir = me.parent().and_then(|deps| deps.parent()).expect("target/<profile>/deps/<test binary>");
        let exe = profile_dir.join("examples").join(format!("child_consumer{}", std::env::consts::EXE_SUFFIX));
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") => "dev".to_string(),
            Some(other) => other.to_string(),
            None => panic!("no profile directory above {}", me.display()),
        };
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| env!("CARGO").to_string());
        let status = std::process::Command::new(cargo)
            .args(["build", "--quiet", "--example", "child_consumer", "--profile", &profile])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo");
        assert!(status.success(), "cargo build --example child_consumer: {status}");
        assert!(exe.is_file(), "cargo built the example, but not at {}", exe.display());
        exe
    })
    .clone()
}

/// Starts the child consumer (examples/child_consumer.rs) with `args` (BOOTSTRAP GROUP TOPIC
/// [consumer]) and follows what it prints: the partitions it owns, as it reports them. Its
/// stdin is held open until it is killed (its end of file ends the child).
pub fn spawn_child_consumer(
    exe: std::path::PathBuf,
    args: &[&str],
) -> (KillOnDrop, std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<i32>>>) {
    use std::io::BufRead;
    use std::process::Stdio;
    let mut child = KillOnDrop(
        std::process::Command::new(exe).args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap(),
    );
    let out = std::io::BufReader::new(child.0.stdout.take().unwrap());
    let owned = std::sync::Arc::new(std::sync::Mutex::new(std::collections::BTreeSet::new()));
    let follow = owned.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("OWNED") {
                *follow.lock().unwrap() = rest.split_whitespace().map(|p| p.parse().unwrap()).collect();
            }
        }
    });
    (child, owned)
}

/// A client's polling thread: runs until told to stop (its loop reads the flag it is given),
/// then ends, closing its client. Dropped, it stops and is joined.
pub struct Poller {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Poller {
    /// Runs `body` on a thread of its own with the stop flag.
    pub fn spawn(body: impl FnOnce(std::sync::Arc<std::sync::atomic::AtomicBool>) + Send + 'static) -> Poller {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        Poller { stop, thread: Some(std::thread::spawn(move || body(flag))) }
    }

    /// Tells the thread to stop, without waiting for it.
    pub fn halt(&self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Stops the thread and waits for it off the runtime's workers: closing a client waits
    /// for the coordinator, which the workers may serve.
    pub async fn stop(mut self) {
        self.halt();
        if let Some(t) = self.thread.take() {
            tokio::task::spawn_blocking(move || t.join().unwrap()).await.unwrap();
        }
    }
}

impl Drop for Poller {
    fn drop(&mut self) {
        self.halt();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
