//! The one clock of the server: wall-clock milliseconds since the Unix epoch, as Kafka's
//! `Time.milliseconds()`, read by the coordinator, the broker and the logs alike.
//!
//! It is derived from a monotonic anchor: the wall clock is read once, and from then on the
//! time is that reading plus the elapsed [`tokio::time::Instant`]. So the server's notion of
//! time never steps backwards when the system clock is set, and a test that pauses tokio's
//! time (`tokio::time::pause`, `#[tokio::test(start_paused = true)]`) moves this clock with
//! it: session timeouts, rebalance timeouts and the initial rebalance delay then run in
//! virtual milliseconds, with the coordinator's timers and its timestamps agreeing.
//!
//! The price: a wall clock set while the server runs is not seen until it restarts (record
//! timestamps, offset commit timestamps and retention follow the clock it started with).

use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// The anchor: a monotonic instant and the wall-clock milliseconds at that instant.
static ANCHOR: OnceLock<(std::time::Instant, i64)> = OnceLock::new();

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    let &(at, wall) = ANCHOR.get_or_init(|| {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0);
        (std::time::Instant::now(), wall)
    });
    let elapsed = tokio::time::Instant::now().into_std().saturating_duration_since(at);
    wall + elapsed.as_millis() as i64
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn it_starts_at_the_wall_clock() {
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
        assert!((now_ms() - wall).abs() < 1_000, "{} vs {wall}", now_ms());
    }

    /// Paused tokio time moves the clock: an hour passes in no real time.
    #[tokio::test(start_paused = true)]
    async fn paused_time_moves_it() {
        let real = std::time::Instant::now();
        let before = now_ms();
        tokio::time::sleep(Duration::from_secs(3600)).await;
        let moved = now_ms() - before;
        assert!((3_600_000..3_601_000).contains(&moved), "moved {moved} ms");
        assert!(real.elapsed() < Duration::from_secs(5));
    }
}
