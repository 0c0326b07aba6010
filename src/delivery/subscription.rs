//! Subscriptions: the user's endpoints that receive events (seed 001's `/api/v1/webhooks`).
//!
//! A [`Subscription`] is stored in the store of record; the process keeps the current list in a
//! [`SubscriptionSet`] so the worker can decide, without I/O, which endpoints an event goes to,
//! and the dispatcher can look a target up by id or by name. Whoever changes subscriptions in the
//! store reloads the set right after the commit.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// One endpoint that receives events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    /// `wh_…`, generated.
    pub id: String,
    /// Optional unique name, for routes (`forward:<name>`).
    pub name: Option<String>,
    /// Where events are POSTed.
    pub url: String,
    /// Event types or globs (`order.*`, `*`) it receives without a route.
    pub events: Vec<String>,
    /// Signing secret; `whsec_…` when generated. Never logged.
    pub secret: String,
    /// Whether deliveries are attempted; inactive subscriptions keep their events for later.
    pub active: bool,
    /// Free text.
    pub description: Option<String>,
    /// Why it was disabled by the gateway (410 Gone, prolonged failure), if it was.
    pub disabled_reason: Option<String>,
    /// Created, unix ms.
    pub created_at: i64,
    /// Last changed through the API or by the gateway, unix ms.
    pub updated_at: i64,
    /// Start of the current failing streak (unix ms), as stored; the dispatcher goes on from it
    /// after a restart so `disable_after` counts across restarts.
    #[serde(skip)]
    pub failing_since: Option<i64>,
}

impl Subscription {
    /// A new active subscription created at `now` (unix ms), with no name or description.
    pub fn new(id: String, url: String, events: Vec<String>, secret: String, now: i64) -> Subscription {
        Subscription {
            id,
            name: None,
            url,
            events,
            secret,
            active: true,
            description: None,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
            failing_since: None,
        }
    }

    /// Whether this subscription's own event list takes `event_type`.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.iter().any(|pattern| glob_matches(pattern, event_type))
    }
}

/// A new `wh_…` id.
pub fn new_id() -> String {
    format!("wh_{}", ulid::Ulid::new().to_string().to_lowercase())
}

/// A new secret: `whsec_` and the base64 of 32 random bytes (Standard Webhooks form).
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", base64::engine::general_purpose::STANDARD.encode(bytes))
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (dots too), so
/// `order.*` matches `order.updated` and `*` matches everything.
pub fn glob_matches(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it currently stands for.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi] == t[ti] {
            pi += 1;
            ti += 1;
        } else if let Some((star_p, star_t)) = star {
            pi = star_p + 1;
            ti = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// The current subscriptions, shared by the API, the worker and the dispatcher.
#[derive(Debug, Default)]
pub struct SubscriptionSet {
    /// The list, the number of the read it came from, and when that read was kept.
    current: RwLock<(u64, Arc<Vec<Subscription>>, Option<Instant>)>,
    /// Reads started so far.
    reads: AtomicU64,
    /// The stored list's fingerprint when it was last followed (shared stores).
    followed: std::sync::Mutex<Option<String>>,
}

impl SubscriptionSet {
    /// A set holding `subscriptions`.
    pub fn new(subscriptions: Vec<Subscription>) -> Self {
        SubscriptionSet {
            current: RwLock::new((0, Arc::new(subscriptions), None)),
            reads: AtomicU64::new(0),
            followed: std::sync::Mutex::new(None),
        }
    }

    /// The list as it is now (cheap: a shared snapshot).
    pub fn snapshot(&self) -> Arc<Vec<Subscription>> {
        self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner()).1.clone()
    }

    /// Reads the list from the store with `read` and keeps it, unless a read that started later
    /// has been kept already. Reads overlap (the API after a change, the dispatcher, the follower
    /// of a shared store); without this, one that began before a commit and ended after the
    /// commit's own reload would put the old list back until the next change.
    pub async fn reload<E, F>(&self, read: impl FnOnce() -> F) -> Result<(), E>
    where
        F: Future<Output = Result<Vec<Subscription>, E>>,
    {
        let number = self.reads.fetch_add(1, Ordering::SeqCst) + 1;
        let subscriptions = read().await?;
        let mut current = self.current.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if number > current.0 {
            *current = (number, Arc::new(subscriptions), Some(Instant::now()));
        }
        Ok(())
    }

    /// On a shared store, reloads the list if another node changed it since it was last
    /// followed: one read of the stored list's fingerprint, and the list only when it changed.
    /// Called before routing or sending, so a change another node committed first (a new
    /// subscription, a deleted one) is seen by the events stored after it.
    pub async fn follow(&self, store: &crate::store::SharedStore) -> Result<(), crate::store::StoreError> {
        let Some(fingerprint) = store.subscriptions_fingerprint().await? else { return Ok(()) };
        let followed = || self.followed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if followed().as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        self.reload(|| store.subscriptions()).await?;
        // Read before the list: at worst a later change is read again next time.
        *followed() = Some(fingerprint);
        Ok(())
    }

    /// Whether the list was read from the store less than `age` ago.
    pub fn read_within(&self, age: Duration) -> bool {
        let current = self.current.read().unwrap_or_else(|poisoned| poisoned.into_inner());
        current.2.is_some_and(|at| at.elapsed() < age)
    }

    /// The subscription with this id, or else with this name.
    pub fn find(&self, id_or_name: &str) -> Option<Subscription> {
        let all = self.snapshot();
        let found = all
            .iter()
            .find(|s| s.id == id_or_name)
            .or_else(|| all.iter().find(|s| s.name.as_deref() == Some(id_or_name)));
        found.cloned()
    }
}

/// A subscription for unit tests: `id`, `name`, `events` and `active` as given, the rest fixed.
#[cfg(test)]
pub(crate) fn example(id: &str, name: Option<&str>, events: &[&str], active: bool) -> Subscription {
    let events = events.iter().map(|s| s.to_string()).collect();
    let subscription = Subscription::new(id.into(), "https://example.com/".into(), events, "s".into(), 0);
    Subscription { name: name.map(Into::into), active, ..subscription }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_types_prefixes_and_everything() {
        assert!(glob_matches("*", "order.updated"));
        assert!(glob_matches("order.*", "order.updated"));
        assert!(glob_matches("order.updated", "order.updated"));
        assert!(glob_matches("*.updated", "position.updated"));
        assert!(glob_matches("a*b*c", "axxbyyc"));
        assert!(!glob_matches("order.*", "orders.updated"));
        assert!(!glob_matches("order.*", "position.updated"));
        assert!(!glob_matches("order.updated", "order.updated.x"));
        assert!(!glob_matches("", "order"));
        assert!(glob_matches("", ""));
        assert!(glob_matches("order.**", "order."));
    }

    #[test]
    fn generated_secrets_are_standard_webhooks_keys_of_32_bytes() {
        let secret = new_secret();
        let encoded = secret.strip_prefix("whsec_").unwrap();
        let key = base64::engine::general_purpose::STANDARD.decode(encoded).unwrap();
        assert_eq!(key.len(), 32);
        assert_ne!(new_secret(), secret);
    }

    #[test]
    fn finds_by_id_first_then_by_name() {
        let set = SubscriptionSet::new(vec![
            example("wh_1", Some("wh_2"), &["order.*"], true),
            example("wh_2", Some("svc"), &["order.*"], true),
        ]);
        assert_eq!(set.find("wh_2").unwrap().id, "wh_2");
        assert_eq!(set.find("svc").unwrap().id, "wh_2");
        assert!(set.find("nope").is_none());
        assert!(set.find("wh_1").unwrap().wants("order.created"));
        assert!(!set.find("wh_1").unwrap().wants("position.updated"));
    }

    #[tokio::test]
    async fn a_read_that_started_earlier_and_ended_later_does_not_put_the_old_list_back() {
        let set = SubscriptionSet::new(vec![example("wh_1", None, &["*"], false)]);
        let (release_old, old) = tokio::sync::oneshot::channel::<Vec<Subscription>>();
        let slow = set.reload(|| async { old.await.map_err(|_| "cancelled") });
        let later = async {
            // Starts after the slow read and ends before it.
            set.reload(|| async { Ok::<_, &str>(vec![example("wh_1", None, &["*"], true)]) }).await.unwrap();
            assert!(set.find("wh_1").unwrap().active);
            release_old.send(vec![example("wh_1", None, &["*"], false)]).unwrap();
        };
        let (slow, ()) = tokio::join!(biased; slow, later);
        slow.unwrap();
        assert!(set.find("wh_1").unwrap().active, "the older read is not kept");
        set.reload(|| async { Ok::<_, &str>(vec![example("wh_1", None, &["*"], false)]) }).await.unwrap();
        assert!(!set.find("wh_1").unwrap().active, "a read started after the others is kept");
    }
}
