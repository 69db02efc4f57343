//! The figures: a process's CPU time and RSS (from /proc), the end of a closed-loop run,
//! latency percentiles, medians, the wall clock, and JSON string literals for the printed
//! lines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The end of a closed-loop run: lets it go for `seconds`, stops its tasks and gathers their
/// latencies (µs). Returns the elapsed seconds, the server's CPU seconds since `cpu0` (-1
/// without a server pid), those of a second process (`also`: the upstream behind a proxy; -1
/// without one) and the latencies, sorted.
pub async fn finish_run(
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
pub fn cpu_per_op(cpu_seconds: f64, ops: u64) -> f64 {
    if cpu_seconds >= 0.0 { cpu_seconds / ops.max(1) as f64 * 1e6 } else { -1.0 }
}

/// The `p` quantile (0..=1) of latencies in µs, sorted, in ms.
pub fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("VmRSS:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

/// A process's CPU time (utime + stime) in seconds, to the 10 ms tick.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A process's CPU time in seconds to the nanosecond: the sum of its threads' run times
/// (/proc/PID/task/*/schedstat), for phases too short for utime+stime's 10 ms ticks. Threads
/// that exited are not counted (a server's long-lived workers do not exit mid-run); falls back
/// to [`cpu_seconds`] without schedstat.
pub fn cpu_seconds_fine(pid: u32) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return cpu_seconds(pid);
    };
    let mut ns = 0u64;
    let mut any = false;
    for t in tasks.flatten() {
        if let Some(run) =
            std::fs::read_to_string(t.path().join("schedstat")).ok().and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            ns += run;
            any = true;
        }
    }
    if any { ns as f64 / 1e9 } else { cpu_seconds(pid) }
}

/// Wall-clock time, ms since the epoch (record timestamps, unique directory names).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// A string as a JSON string literal.
pub fn json_str(v: &str) -> String {
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
