//! When to poll: every `interval` plus this host's splay, and after a failed fetch sooner,
//! backing off exponentially with jitter up to the interval.
//!
//! The splay is drawn once per host, deterministically: the first 8 bytes of
//! SHA-256(`"gitops-agent splay\0" + /etc/machine-id`) modulo the configured `splay`. The same
//! host always waits the same extra time (its polls do not wander), and a fleet spreads evenly
//! over the splay window; a host without a machine-id uses its hostname instead.

use std::time::Duration;

use sha2::{Digest, Sha256};

/// This host's share of `splay` (zero when `splay` is zero).
pub fn splay_offset(machine_id: &str, hostname: &str, splay: Duration) -> Duration {
    let millis = splay.as_millis() as u64;
    if millis == 0 {
        return Duration::ZERO;
    }
    let seed = if machine_id.trim().is_empty() {
        hostname
    } else {
        machine_id.trim()
    };
    let mut h = Sha256::new();
    h.update(b"gitops-agent splay\0");
    h.update(seed.as_bytes());
    let digest = h.finalize();
    let n = u64::from_be_bytes(digest[..8].try_into().expect("8 bytes"));
    Duration::from_millis(n % millis)
}

/// The first retry after a failed fetch.
pub const BACKOFF_START: Duration = Duration::from_secs(5);

/// The wait before the next poll after `failures` fetches in a row failed (`failures >= 1`):
/// `BACKOFF_START * 2^(failures-1)`, capped at `interval`, then a random point in its upper
/// half ("equal jitter") so that hosts that lost the server together do not return together.
/// `random`: any number (`fastrand::u64(..)`).
pub fn backoff(failures: u32, interval: Duration, random: u64) -> Duration {
    let exp = failures.saturating_sub(1).min(20);
    let base = BACKOFF_START
        .saturating_mul(1u32 << exp)
        .min(interval)
        .max(Duration::from_millis(100));
    let half = base / 2;
    let span = half.as_millis().max(1) as u64;
    half + Duration::from_millis(random % (span + 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splay_is_fixed_per_host_and_spread() {
        let splay = Duration::from_secs(30);
        let a = splay_offset("0123456789abcdef0123456789abcdef", "h", splay);
        assert_eq!(
            a,
            splay_offset("0123456789abcdef0123456789abcdef\n", "other", splay)
        );
        assert!(a < splay);
        assert_eq!(splay_offset("x", "h", Duration::ZERO), Duration::ZERO);
        // The hostname stands in for a missing machine-id.
        assert_eq!(
            splay_offset("", "web-01", splay),
            splay_offset("web-01", "", splay)
        );
        // 1000 hosts land all over the window, not in a corner of it.
        let mut buckets = [0u32; 10];
        for i in 0..1000 {
            let o = splay_offset(&format!("{i:032x}"), "", splay);
            buckets[(o.as_millis() * 10 / splay.as_millis()) as usize] += 1;
        }
        assert!(
            buckets.iter().all(|&b| (50..=150).contains(&b)),
            "{buckets:?}"
        );
    }

    #[test]
    fn backoff_grows_with_jitter_and_stops_at_the_interval() {
        let interval = Duration::from_secs(60);
        for failures in 1..30 {
            let expected = (BACKOFF_START * (1 << (failures - 1).min(20))).min(interval);
            for _ in 0..50 {
                let d = backoff(failures, interval, fastrand::u64(..));
                assert!(d >= expected / 2 && d <= expected, "{failures}: {d:?}");
            }
        }
        assert!(backoff(1, interval, 0) >= Duration::from_millis(2500));
        // A short interval caps it.
        assert!(backoff(9, Duration::from_secs(1), 7) <= Duration::from_secs(1));
    }
}
