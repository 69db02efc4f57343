//! The proxy's view of the upstream cluster: its brokers (upstream address ↔ corral's
//! client-facing listener for each), its controller and cluster id, and the partition counts
//! of the topics it has seen. Every Metadata response that passes through — a client's or
//! corral's own — refreshes it.
//!
//! # Ports
//!
//! Upstream broker `N` is reached through corral at `listen port + 1 + N` on the `--listen`
//! address (so 9092 → node 1 at 9094, node 2 at 9095), stable across restarts for the same
//! node ids. `proxy.node.ports` fixes a port per node instead (for large node ids or port
//! plans). When `--listen` asks for port 0, every node listener takes a free port too (tests).
//! A broker that joins later gets its listener when a Metadata response first lists it; one that
//! leaves is dropped (its listener closes; open connections end when their upstream does).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::HostPort;
use crate::router::{Context, Listener};

/// One upstream broker as corral presents it.
#[derive(Debug)]
struct Node {
    /// Where corral connects to reach it.
    upstream: HostPort,
    /// The port clients are given for it.
    port: u16,
    /// Stops its listener; `None` while no listener is bound (binding failed: retried when
    /// metadata next lists the node).
    listening: Option<CancellationToken>,
}

#[derive(Debug, Default)]
struct View {
    cluster_id: Option<String>,
    controller: i32,
    nodes: BTreeMap<i32, Node>,
    /// Topic → partition count, from the last Metadata that named it.
    topics: HashMap<String, i32>,
}

/// A broker as a Metadata or DescribeCluster response lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub host: String,
    pub port: i32,
}

/// The cluster view.
#[derive(Debug)]
pub struct Cluster {
    view: RwLock<View>,
    /// The IP the node listeners bind (the `--listen` address's).
    bind_ip: IpAddr,
    /// `--listen`'s port as asked for (0: every node listener takes a free port).
    base_port: u16,
    /// The host clients are given for every listener.
    pub advertised_host: String,
    fixed_ports: BTreeMap<i32, u16>,
    /// corral's own node id, which no upstream broker may have.
    own_id: i32,
    /// Runs the node listeners' accept loops (the server waits for them at shutdown).
    tasks: TaskTracker,
    /// Set by [`Cluster::start`]: what accept loops serve with.
    ctx: OnceLock<Context>,
    /// Listeners bound before [`Cluster::start`], waiting for their accept loops.
    unstarted: Mutex<Vec<(i32, std::net::TcpListener, CancellationToken)>>,
}

impl Cluster {
    pub fn new(bind_ip: IpAddr, base_port: u16, advertised_host: String, fixed_ports: BTreeMap<i32, u16>, own_id: i32) -> Self {
        Cluster {
            view: RwLock::new(View { controller: -1, ..View::default() }),
            bind_ip,
            base_port,
            advertised_host,
            fixed_ports,
            own_id,
            tasks: TaskTracker::new(),
            ctx: OnceLock::new(),
            unstarted: Mutex::new(Vec::new()),
        }
    }

    /// The accept loops of the node listeners.
    pub fn tasks(&self) -> TaskTracker {
        self.tasks.clone()
    }

    /// Starts the accept loops of the listeners bound so far, and of every later one.
    pub fn start(&self, ctx: &Context) {
        let _ = self.ctx.set(ctx.clone());
        for (node, listener, stop) in self.unstarted.lock().expect("unstarted lock").drain(..) {
            self.spawn_accept(node, listener, stop);
        }
    }

    fn spawn_accept(&self, node: i32, listener: std::net::TcpListener, stop: CancellationToken) {
        let Some(ctx) = self.ctx.get() else {
            self.unstarted.lock().expect("unstarted lock").push((node, listener, stop));
            return;
        };
        match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => {
                self.tasks.spawn(crate::server::accept_until(l, ctx.clone(), Listener::Node(node), stop));
            }
            Err(e) => tracing::error!(node, "cannot serve the listener of upstream node {node}: {e}"),
        }
    }

    /// The port node `id`'s listener is asked to bind: fixed, derived, or 0 (free).
    fn wanted_port(&self, id: i32) -> Result<u16, String> {
        if let Some(p) = self.fixed_ports.get(&id) {
            return Ok(*p);
        }
        if self.base_port == 0 {
            return Ok(0);
        }
        let port = i64::from(self.base_port) + 1 + i64::from(id);
        u16::try_from(port)
            .map_err(|_| format!("node id {id} derives port {port}, past 65535: set proxy.node.ports (e.g. \"{id}=19093\") for it"))
    }

    fn bind(&self, id: i32) -> Result<(std::net::TcpListener, u16), String> {
        let port = self.wanted_port(id)?;
        let l = std::net::TcpListener::bind(SocketAddr::new(self.bind_ip, port))
            .map_err(|e| format!("cannot listen on {}:{port}: {e}", self.bind_ip))?;
        l.set_nonblocking(true).map_err(|e| e.to_string())?;
        let bound = l.local_addr().map_err(|e| e.to_string())?.port();
        Ok((l, bound))
    }

    /// Takes the brokers of a Metadata or DescribeCluster response (plus its controller and
    /// cluster id, when it has them): new brokers get a listener, changed addresses are
    /// followed, brokers no longer listed are dropped.
    pub fn observe_brokers(&self, brokers: &[Broker], controller: Option<i32>, cluster_id: Option<&str>) {
        // (a controller that is not a listed broker is kept as reported; `default_node`
        // then falls back to a listed one)
        {
            let mut v = self.view.write().expect("view lock");
            if let Some(c) = controller {
                v.controller = c;
            }
            if let Some(id) = cluster_id {
                v.cluster_id = Some(id.to_string());
            }
            if brokers.is_empty() {
                return;
            }
            for b in brokers {
                if b.id == self.own_id {
                    tracing::error!(
                        node = b.id,
                        "an upstream broker has corral's own node id: set node.id to an id the upstream cluster does not use"
                    );
                    continue;
                }
                let upstream = HostPort { host: b.host.clone(), port: u16::try_from(b.port).unwrap_or(0) };
                match v.nodes.get_mut(&b.id) {
                    Some(n) => {
                        if n.upstream != upstream {
                            tracing::info!(node = b.id, from = %n.upstream, to = %upstream, "upstream broker moved");
                            n.upstream = upstream;
                        }
                        if n.listening.is_none() {
                            self.listen(b.id, n);
                        }
                    }
                    None => {
                        let mut n = Node { upstream, port: 0, listening: None };
                        self.listen(b.id, &mut n);
                        tracing::info!(node = b.id, upstream = %n.upstream, port = n.port, "upstream broker gets a listener");
                        v.nodes.insert(b.id, n);
                    }
                }
            }
            let listed: std::collections::HashSet<i32> = brokers.iter().map(|b| b.id).collect();
            let gone: Vec<i32> = v.nodes.keys().copied().filter(|id| !listed.contains(id)).collect();
            for id in gone {
                if let Some(n) = v.nodes.remove(&id) {
                    if let Some(stop) = n.listening {
                        stop.cancel();
                    }
                    tracing::info!(node = id, upstream = %n.upstream, "upstream broker left the cluster: its listener is closed");
                }
            }
            metrics::gauge!("corral_proxy_upstream_brokers").set(v.nodes.len() as f64);
        }
    }

    /// Binds node `id`'s listener (or keeps the port it wants, if binding fails).
    fn listen(&self, id: i32, n: &mut Node) {
        match self.bind(id) {
            Ok((l, port)) => {
                n.port = port;
                let stop = CancellationToken::new();
                n.listening = Some(stop.clone());
                self.spawn_accept(id, l, stop);
            }
            Err(e) => {
                n.port = self.wanted_port(id).unwrap_or(0);
                tracing::error!(node = id, "upstream node {id} cannot get a listener: {e}");
            }
        }
    }

    /// Takes a topic's partition count from a Metadata response (`None`: the topic does not
    /// exist).
    pub fn observe_topic(&self, name: &str, partitions: Option<i32>) {
        let mut v = self.view.write().expect("view lock");
        match partitions {
            Some(n) => {
                v.topics.insert(name.to_string(), n);
            }
            None => {
                v.topics.remove(name);
            }
        }
    }

    /// The partition count last seen for `topic`.
    pub fn partitions(&self, topic: &str) -> Option<i32> {
        self.view.read().expect("view lock").topics.get(topic).copied()
    }

    /// Where corral reaches upstream node `id`.
    pub fn upstream_addr(&self, id: i32) -> Option<String> {
        self.view.read().expect("view lock").nodes.get(&id).map(|n| n.upstream.to_string())
    }

    /// The address clients are given for upstream node `id`.
    pub fn advertised(&self, id: i32) -> Option<(String, u16)> {
        self.view.read().expect("view lock").nodes.get(&id).map(|n| (self.advertised_host.clone(), n.port))
    }

    /// Where requests that may go to any broker go: the controller when it is known (Kafka
    /// routes topic administration there), else the lowest node id.
    pub fn default_node(&self) -> Option<i32> {
        let v = self.view.read().expect("view lock");
        if v.nodes.contains_key(&v.controller) {
            return Some(v.controller);
        }
        v.nodes.keys().next().copied()
    }

    /// Every node, with its upstream address and its client-facing port.
    pub fn nodes(&self) -> Vec<(i32, HostPort, u16)> {
        self.view.read().expect("view lock").nodes.iter().map(|(id, n)| (*id, n.upstream.clone(), n.port)).collect()
    }

    /// The upstream cluster id, once known.
    pub fn cluster_id(&self) -> Option<String> {
        self.view.read().expect("view lock").cluster_id.clone()
    }

    /// Whether node `id` is an upstream broker corral knows.
    pub fn knows(&self, id: i32) -> bool {
        self.view.read().expect("view lock").nodes.contains_key(&id)
    }
}

/// Shared handle.
pub type ClusterRef = Arc<Cluster>;
