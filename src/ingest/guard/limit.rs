//! Rate limits per source and per client address (SPEC §1, 429 with `Retry-After`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::nanos::Nanos;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use governor::state::{InMemoryState, NotKeyed, StateStore};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::canonical;
use crate::config::RateLimit;

fn quota(limit: RateLimit) -> Quota {
    let per_second = NonZeroU32::new(limit.per_second).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(limit.burst).unwrap_or(per_second);
    Quota::per_second(per_second).allow_burst(burst)
}

/// Seconds a limited client should wait, rounded up, at least 1.
fn retry_after(wait: Duration) -> u64 {
    u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).div_ceil(1000).max(1)
}

/// A rate limit shared by all clients of one source.
pub struct SourceLimiter(DefaultDirectRateLimiter);

impl SourceLimiter {
    /// A limiter for `limit`.
    pub fn new(limit: RateLimit) -> Self {
        SourceLimiter(RateLimiter::direct(quota(limit)))
    }

    /// `Err(seconds to wait)` when over the limit.
    pub fn check(&self) -> Result<(), u64> {
        self.0
            .check()
            .map_err(|not_until| retry_after(not_until.wait_time_from(DefaultClock::default().now())))
    }
}

/// The per-address states of [`IpLimiter`]: at most `max_keys` addresses; while the table is
/// full, an address not in it shares one overflow state with every other such address. A flood
/// from many addresses is thereby limited as one client, and the addresses already tracked keep
/// their own state (a busy client stays limited instead of starting afresh).
struct BoundedStore {
    addresses: DashMapStateStore<IpAddr>,
    overflow: InMemoryState,
    max_keys: usize,
}

impl StateStore for BoundedStore {
    type Key = IpAddr;

    fn measure_and_replace<T, F, E>(&self, key: &IpAddr, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        if self.addresses.len() >= self.max_keys && !self.addresses.contains_key(key) {
            return self.overflow.measure_and_replace(&NotKeyed::NonKey, f);
        }
        self.addresses.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<IpAddr> for BoundedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        ShrinkableKeyedStateStore::retain_recent(&self.addresses, drop_below);
    }

    fn shrink_to_fit(&self) {
        self.addresses.shrink_to_fit();
    }

    fn len(&self) -> usize {
        self.addresses.len()
    }

    fn is_empty(&self) -> bool {
        self.addresses.is_empty()
    }
}

/// A rate limit per client IP (IPv6 keyed by its /64, which one host usually owns), with a bound
/// on how many addresses are remembered (see [`BoundedStore`]).
pub struct IpLimiter(RateLimiter<IpAddr, BoundedStore, DefaultClock>);

impl IpLimiter {
    /// A limiter for `limit` remembering at most `max_keys` addresses.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        let store = BoundedStore {
            addresses: DashMapStateStore::default(),
            overflow: InMemoryState::default(),
            max_keys: max_keys.max(1),
        };
        IpLimiter(RateLimiter::new(quota(limit), store, DefaultClock::default()))
    }

    /// `Err(seconds to wait)` when `ip` is over the limit.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        let key = match canonical(ip) {
            IpAddr::V6(v6) => {
                let segments = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(
                    segments[0],
                    segments[1],
                    segments[2],
                    segments[3],
                    0,
                    0,
                    0,
                    0,
                ))
            }
            v4 => v4,
        };
        self.0
            .check_key(&key)
            .map_err(|not_until| retry_after(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Forgets addresses whose state is back to fresh (idle for a full bucket), making room.
    pub fn prune(&self) {
        self.0.retain_recent();
        self.0.shrink_to_fit();
    }

    /// Addresses currently remembered.
    pub fn tracked(&self) -> usize {
        self.0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_limiter_allows_burst_then_limits_with_retry_after() {
        let limiter = SourceLimiter::new(RateLimit { per_second: 1, burst: 3 });
        for _ in 0..3 {
            assert!(limiter.check().is_ok());
        }
        let wait = limiter.check().unwrap_err();
        assert!(wait >= 1, "{wait}");
    }

    #[test]
    fn ip_limiter_is_per_address() {
        let limiter = IpLimiter::new(RateLimit { per_second: 1, burst: 1 }, 100);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limiter.check(a).is_ok());
        assert!(limiter.check(a).is_err());
        assert!(limiter.check(b).is_ok());
    }

    #[test]
    fn ip_limiter_memory_stays_bounded_under_address_spraying() {
        let limiter = IpLimiter::new(RateLimit { per_second: 1, burst: 5 }, 1000);
        for i in 0..20_000u32 {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            let _ = limiter.check(ip);
            assert!(limiter.tracked() <= 1000);
        }
    }

    #[test]
    fn a_full_table_keeps_limiting_the_tracked_addresses_and_shares_one_bucket_among_the_rest() {
        let limiter = IpLimiter::new(RateLimit { per_second: 1, burst: 3 }, 100);
        let busy: IpAddr = "198.51.100.7".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(busy).is_ok());
        }
        assert!(limiter.check(busy).is_err());
        // A spray of fresh addresses fills the table; beyond it they share the overflow bucket.
        let sprayed: Vec<IpAddr> =
            (0..500u32).map(|i| IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i))).collect();
        let allowed = sprayed.iter().filter(|ip| limiter.check(**ip).is_ok()).count();
        assert_eq!(limiter.tracked(), 100);
        assert_eq!(
            allowed,
            99 + 3,
            "99 addresses fit beside the busy one, the other 401 shared a burst of 3"
        );
        assert!(limiter.check(busy).is_err(), "the busy client did not get a fresh bucket");
        assert!(limiter.check(sprayed[0]).is_ok(), "a tracked address keeps its own bucket");
    }

    #[test]
    fn ipv6_hosts_in_one_slash_64_share_a_bucket() {
        let limiter = IpLimiter::new(RateLimit { per_second: 1, burst: 1 }, 100);
        assert!(limiter.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8::2".parse().unwrap()).is_err());
    }
}
