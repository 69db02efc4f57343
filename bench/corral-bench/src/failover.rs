//! `failover`: how long until every group is served again after a proxy sharing the
//! coordinator died. Run right after the SIGKILL with the proxies still alive as `--targets`:
//! a group counts as served once every live proxy names the same live proxy as its coordinator
//! (FindCoordinator) and that proxy describes the group without a coordinator error
//! (DescribeGroups: no NOT_COORDINATOR, no COORDINATOR_LOAD_IN_PROGRESS).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use corral_testkit::{Client, s};
use kafka_protocol::messages::*;

use crate::args::Args;
use crate::kafka::connect;

pub async fn run(a: &Args) {
    let targets: Vec<String> = a.str("targets").split(',').map(str::to_string).collect();
    let groups: usize = a.get("groups", 1000);
    let limit = Duration::from_secs_f64(a.get("limit-seconds", 60.0));
    let started = Instant::now();
    let names: Vec<String> = (0..groups).map(|g| format!("failover-{g}")).collect();
    let mut pending: Vec<&String> = names.iter().collect();
    let mut conns: HashMap<String, Client> = HashMap::new();
    while !pending.is_empty() && started.elapsed() < limit {
        let mut still = Vec::new();
        for g in pending {
            if !served(&targets, g, &mut conns).await {
                still.push(g);
            }
        }
        pending = still;
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    if pending.is_empty() {
        println!(
            "{{\"scenario\":\"failover\",\"proxies\":{},\"groups\":{groups},\"seconds_until_all_served\":{:.3}}}",
            targets.len(),
            started.elapsed().as_secs_f64()
        );
    } else {
        println!(
            "{{\"scenario\":\"failover\",\"proxies\":{},\"groups\":{groups},\"error\":\"{} groups still not served after {:.0} s\"}}",
            targets.len(),
            pending.len(),
            limit.as_secs_f64()
        );
    }
}

/// A call over the cached connection to `addr` (connected on first use, dropped on failure).
async fn call<R>(conns: &mut HashMap<String, Client>, addr: &str, version: i16, req: &R) -> Option<R::Response>
where
    R: kafka_protocol::protocol::Request + kafka_protocol::protocol::Encodable + kafka_protocol::protocol::HeaderVersion,
    R::Response: kafka_protocol::protocol::Decodable + kafka_protocol::protocol::HeaderVersion,
{
    if !conns.contains_key(addr) {
        let c = tokio::time::timeout(Duration::from_secs(1), connect(addr)).await.ok()?.ok()?;
        conns.insert(addr.to_string(), c);
    }
    let c = conns.get_mut(addr)?;
    match tokio::time::timeout(Duration::from_secs(2), c.call(version, req)).await {
        Ok(Ok(r)) => Some(r),
        _ => {
            conns.remove(addr);
            None
        }
    }
}

async fn served(targets: &[String], group: &str, conns: &mut HashMap<String, Client>) -> bool {
    let mut named: Option<String> = None;
    for t in targets {
        let find = FindCoordinatorRequest::default().with_key(s(group)).with_key_type(0);
        let Some(r) = call(conns, t, 3, &find).await else { return false };
        let addr = format!("{}:{}", r.host.as_str(), r.port);
        if r.error_code != 0 || !targets.contains(&addr) || named.as_ref().is_some_and(|n| *n != addr) {
            return false;
        }
        named = Some(addr);
    }
    let Some(coordinator) = named else { return false };
    let describe = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
    matches!(call(conns, &coordinator, 0, &describe).await, Some(r) if r.groups.first().is_some_and(|g| g.error_code == 0))
}
