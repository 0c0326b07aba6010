//! Rate limits per source and per client address (SPEC §1, 429 with `Retry-After`).

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

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

/// A rate limit per client IP (IPv6 keyed by its /64, which one host usually owns), with a bound
/// on how many addresses are remembered.
pub struct IpLimiter {
    quota: Quota,
    max_keys: usize,
    limiter: RwLock<Arc<DefaultKeyedRateLimiter<IpAddr>>>,
}

impl IpLimiter {
    /// A limiter for `limit` remembering at most `max_keys` addresses.
    pub fn new(limit: RateLimit, max_keys: usize) -> Self {
        let quota = quota(limit);
        IpLimiter {
            quota,
            max_keys: max_keys.max(1),
            limiter: RwLock::new(Arc::new(RateLimiter::keyed(quota))),
        }
    }

    fn current(&self) -> Arc<DefaultKeyedRateLimiter<IpAddr>> {
        match self.limiter.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
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
        let limiter = self.current();
        if limiter.len() >= self.max_keys {
            self.prune();
        }
        self.current()
            .check_key(&key)
            .map_err(|not_until| retry_after(not_until.wait_time_from(DefaultClock::default().now())))
    }

    /// Forgets idle addresses; if the table is still full (a spraying flood), starts afresh.
    pub fn prune(&self) {
        let limiter = self.current();
        limiter.retain_recent();
        limiter.shrink_to_fit();
        if limiter.len() >= self.max_keys {
            let fresh = Arc::new(RateLimiter::keyed(self.quota));
            match self.limiter.write() {
                Ok(mut guard) => *guard = fresh,
                Err(poisoned) => *poisoned.into_inner() = fresh,
            }
        }
    }

    /// Addresses currently remembered.
    pub fn tracked(&self) -> usize {
        self.current().len()
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
    fn ipv6_hosts_in_one_slash_64_share_a_bucket() {
        let limiter = IpLimiter::new(RateLimit { per_second: 1, burst: 1 }, 100);
        assert!(limiter.check("2001:db8::1".parse().unwrap()).is_ok());
        assert!(limiter.check("2001:db8::2".parse().unwrap()).is_err());
    }
}
