//! Upstream connections: the pool client connections check links out of, the connect backoff
//! per upstream node, and corral's own (control) connections for its requests to the cluster.
//!
//! A client connection checks out one upstream connection per upstream node it forwards to and
//! keeps it for its life, so the upstream sees that client's requests on one connection, in
//! order (Kafka's per-connection ordering; a long-poll Fetch holds only its own connection).
//! When the client connection closes with nothing outstanding, its upstream connections go back
//! to the pool for the next client; broken ones are dropped. A failed connect to a node makes
//! further connects to it fail fast for a backoff that doubles from 100 ms to 10 s, so a
//! reconnecting client cannot hammer a dead broker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::upstream::{ConnSettings, UpstreamConn, UpstreamError};

/// How long a pooled connection may sit idle (the upstream closes idle connections itself after
/// `connections.max.idle.ms`, 10 minutes by default).
const MAX_IDLE: Duration = Duration::from_secs(300);
/// Idle connections kept per node.
const IDLE_PER_NODE: usize = 32;
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Backoff {
    until: Instant,
    delay: Duration,
    error: UpstreamError,
}

/// Idle connections of one node, each with the time it was returned.
type Idle = Vec<(Arc<UpstreamConn>, Instant)>;

/// The pool of upstream connections.
#[derive(Debug)]
pub struct Pool {
    pub settings: ConnSettings,
    idle: Mutex<HashMap<i32, Idle>>,
    backoff: Mutex<HashMap<i32, Backoff>>,
    /// corral's own connection per node (shared by its requests, pipelined).
    control: Mutex<HashMap<i32, Arc<UpstreamConn>>>,
}

impl Pool {
    pub fn new(settings: ConnSettings) -> Self {
        Pool { settings, idle: Mutex::new(HashMap::new()), backoff: Mutex::new(HashMap::new()), control: Mutex::new(HashMap::new()) }
    }

    /// A new connection to `node` at `addr`, unless a recent failure is still backing off.
    pub async fn connect(&self, node: i32, addr: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        if let Some(b) = self.backoff.lock().expect("backoff lock").get(&node)
            && b.until > Instant::now()
        {
            return Err(b.error.clone());
        }
        match UpstreamConn::connect(node, addr, &self.settings).await {
            Ok(c) => {
                if self.backoff.lock().expect("backoff lock").remove(&node).is_some() {
                    tracing::info!(node, addr, "upstream broker reachable again");
                }
                metrics::counter!("corral_proxy_upstream_connects_total", "result" => "ok").increment(1);
                Ok(c)
            }
            Err(e) => {
                metrics::counter!("corral_proxy_upstream_connects_total", "result" => "failed").increment(1);
                let mut all = self.backoff.lock().expect("backoff lock");
                let delay = all.get(&node).map_or(BACKOFF_MIN, |b| (b.delay * 2).min(BACKOFF_MAX));
                if delay == BACKOFF_MIN {
                    tracing::warn!(node, addr, "{e}");
                }
                all.insert(node, Backoff { until: Instant::now() + delay, delay, error: e.clone() });
                Err(e)
            }
        }
    }

    /// An idle healthy connection to `node`, or a new one.
    pub async fn checkout(&self, node: i32, addr: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        {
            let mut idle = self.idle.lock().expect("pool lock");
            if let Some(list) = idle.get_mut(&node) {
                while let Some((conn, since)) = list.pop() {
                    if !conn.is_broken() && since.elapsed() < MAX_IDLE && conn.addr == addr {
                        return Ok(conn);
                    }
                }
            }
        }
        self.connect(node, addr).await
    }

    /// Returns a connection whose client is done with it; kept only if it is healthy and has
    /// nothing outstanding.
    pub fn checkin(&self, conn: Arc<UpstreamConn>) {
        if conn.is_broken() || conn.in_flight() > 0 {
            return;
        }
        let mut idle = self.idle.lock().expect("pool lock");
        let list = idle.entry(conn.node).or_default();
        list.retain(|(c, since)| !c.is_broken() && since.elapsed() < MAX_IDLE);
        if list.len() < IDLE_PER_NODE {
            list.push((conn, Instant::now()));
        }
    }

    /// corral's own connection to `node` (opened on first use, replaced when broken).
    pub async fn control(&self, node: i32, addr: &str) -> Result<Arc<UpstreamConn>, UpstreamError> {
        if let Some(c) = self.control.lock().expect("control lock").get(&node)
            && !c.is_broken()
            && c.addr == addr
        {
            return Ok(c.clone());
        }
        let conn = self.connect(node, addr).await?;
        let mut all = self.control.lock().expect("control lock");
        // another caller may have connected meanwhile: keep one
        match all.get(&node) {
            Some(c) if !c.is_broken() && c.addr == addr => Ok(c.clone()),
            _ => {
                all.insert(node, conn.clone());
                Ok(conn)
            }
        }
    }

    /// Forgets everything about `node` (it left the cluster).
    pub fn forget(&self, node: i32) {
        self.idle.lock().expect("pool lock").remove(&node);
        self.control.lock().expect("control lock").remove(&node);
    }
}
