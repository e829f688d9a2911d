//! Limits on failed logins, per account and per source address, against
//! password guessing.
//!
//! Two kinds of key are counted separately:
//! - an *account*, which stops a slow guess of one account's password from
//!   many addresses. Accounts live in three namespaces that never meet (a
//!   [`Subject`]): a user signing in with a password (its name, compared
//!   ignoring case), an API token by its id, and an unreadable credential
//!   (a wrong `api.token`, garbage), counted against the source address it
//!   came from; a user named like a token id or an address locks only
//!   itself;
//! - a *source* address, which stops one client trying a few passwords on
//!   every account. IPv6 sources are grouped by /64, since one host usually
//!   has a whole /64 to pick addresses from; IPv4-mapped IPv6 addresses
//!   (`::ffff:a.b.c.d`, what a dual-stack socket reports) count as the IPv4
//!   address, not as one shared /64.
//!
//! A key that gathers [`LoginLimits::max_failures`] (or
//! [`LoginLimits::max_failures_per_source`]) failures within
//! [`LoginLimits::window`] is locked out for one window. Each failure recorded
//! while it is locked doubles the lockout, up to [`LoginLimits::max_lockout`].
//! When a lockout ends, the key starts afresh.
//!
//! An attempt is counted *before* its password is verified:
//! [`LoginLimiter::begin`] refuses when the failures so far plus the attempts
//! still being verified reach a limit, so a burst of parallel guesses gets no
//! more verifications than the limit allows, and the [`Attempt`] it returns
//! records the outcome (a dropped attempt counts as neither).
//!
//! Time is always passed in (`now`), so the limiter has no clock of its own and
//! the tests drive a fake one.
//!
//! Memory is bounded: at most [`LoginLimits::max_keys`] keys are tracked, and
//! beyond that the least recently touched key is forgotten. A flood from more
//! sources than that can therefore make the limiter forget a lockout; the
//! bound is what keeps the same flood from exhausting memory. Account names are
//! kept as a SHA-256 of their lowercase form, so a key costs the same whatever
//! the length of the name a client sends.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};

/// Longest window or lockout accepted; longer values are cut to this so that
/// `Instant` arithmetic cannot overflow.
const MAX_DURATION: Duration = Duration::from_secs(7 * 24 * 3600);

/// Settings of a [`LoginLimiter`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginLimits {
    /// Failures of one account within `window` that lock the account
    /// (at least 1).
    pub max_failures: u32,
    /// Failures from one source address (IPv6: one /64) within `window` that
    /// lock the source (at least 1).
    pub max_failures_per_source: u32,
    /// How long failures are counted, and how long the first lockout lasts.
    pub window: Duration,
    /// The longest a lockout can grow to by doubling.
    pub max_lockout: Duration,
    /// Most keys (accounts plus sources) tracked at once (at least 2, so that
    /// one failure's account and source fit together).
    pub max_keys: usize,
}

impl Default for LoginLimits {
    /// 5 failures per account and 20 per source within 15 minutes; lockouts
    /// up to 1 hour; 100,000 keys (a few tens of MiB at most).
    fn default() -> Self {
        Self {
            max_failures: 5,
            max_failures_per_source: 20,
            window: Duration::from_secs(15 * 60),
            max_lockout: Duration::from_secs(3600),
            max_keys: 100_000,
        }
    }
}

/// Whose sign-in is being tried: the account a failure counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A user signing in with a password, by name (case ignored).
    User(&'a str),
    /// An API token, by its id.
    Token(&'a str),
    /// A credential that names no account (a wrong `api.token`, garbage):
    /// counted against the source address as its account.
    Unknown,
}

impl<'a> From<&'a str> for Subject<'a> {
    /// A plain name is a user's.
    fn from(name: &'a str) -> Self {
        Subject::User(name)
    }
}

impl<'a> From<&'a String> for Subject<'a> {
    fn from(name: &'a String) -> Self {
        Subject::User(name)
    }
}

/// What is counted: an account or a source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    /// SHA-256 of the lowercase user name.
    User([u8; 32]),
    /// SHA-256 of an API token id.
    Token([u8; 32]),
    /// A source address presenting credentials of no account, IPv6 cut to
    /// its /64.
    Unknown(IpAddr),
    /// A source address, IPv6 cut to its /64.
    Source(IpAddr),
}

impl Key {
    fn account(subject: Subject<'_>, source: IpAddr) -> Self {
        match subject {
            Subject::User(name) => Key::User(Sha256::digest(name.to_lowercase().as_bytes()).into()),
            Subject::Token(id) => Key::Token(Sha256::digest(id.as_bytes()).into()),
            Subject::Unknown => match Key::source(source) {
                Key::Source(net) => Key::Unknown(net),
                other => other,
            },
        }
    }

    fn source(address: IpAddr) -> Self {
        Key::Source(match address.to_canonical() {
            IpAddr::V6(v6) => {
                let net = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(net.into())
            }
            v4 => v4,
        })
    }
}

/// The failures of one key.
#[derive(Debug)]
struct Entry {
    /// When the current counting window began (the first failure in it).
    window_start: Instant,
    /// Failures in the current window.
    failures: u32,
    /// Attempts begun and not yet finished (their password is being
    /// verified).
    in_flight: u32,
    /// When the lockout ends, if the key is or was locked.
    locked_until: Option<Instant>,
    /// Length of the latest lockout, doubled by each failure while locked.
    lockout: Duration,
    /// Position in [`State::order`]: higher was touched more recently.
    touched: u64,
}

/// Everything behind the mutex.
#[derive(Debug, Default)]
struct State {
    entries: HashMap<Key, Entry>,
    /// `touched` stamp to key, oldest first, for eviction.
    order: BTreeMap<u64, Key>,
    /// Next `touched` stamp.
    clock: u64,
}

/// Counts failed logins and says when to refuse one. Shared by all request
/// handlers (it is `Send + Sync`; the state sits behind one mutex, held only
/// for a few map operations).
///
/// Use per login attempt: [`check`](Self::check) first and refuse with
/// "retry after" when it errs; otherwise verify the password and call
/// [`success`](Self::success) or [`failure`](Self::failure). Record an attempt
/// that `check` refused as a failure too: that is what lengthens the lockout of
/// a client that keeps trying.
#[derive(Debug)]
pub struct LoginLimiter {
    limits: LoginLimits,
    state: Mutex<State>,
}

impl Default for LoginLimiter {
    fn default() -> Self {
        Self::new(LoginLimits::default())
    }
}

impl LoginLimiter {
    /// A limiter with `limits`; failure counts of zero are raised to 1,
    /// `max_keys` to 2, durations over a week cut to a week, and `max_lockout`
    /// raised to at least `window`.
    pub fn new(limits: LoginLimits) -> Self {
        let window = limits.window.min(MAX_DURATION);
        let limits = LoginLimits {
            max_failures: limits.max_failures.max(1),
            max_failures_per_source: limits.max_failures_per_source.max(1),
            window,
            max_lockout: limits.max_lockout.min(MAX_DURATION).max(window),
            max_keys: limits.max_keys.max(2),
        };
        Self {
            limits,
            state: Mutex::new(State::default()),
        }
    }

    /// The limits in force (after the adjustments of [`new`](Self::new)).
    pub fn limits(&self) -> &LoginLimits {
        &self.limits
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere cannot leave the maps inconsistent in a way that
        // matters here: carry on with what is there.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Ok` when a login for `account` from `source` may be tried now;
    /// otherwise `Err` with how long until it may (the longer of the two
    /// keys' lockouts).
    pub fn check<'a>(
        &self,
        account: impl Into<Subject<'a>>,
        source: IpAddr,
        now: Instant,
    ) -> Result<(), Duration> {
        let state = self.lock();
        let wait = [Key::account(account.into(), source), Key::source(source)]
            .iter()
            .filter_map(|key| state.entries.get(key)?.locked_until)
            .map(|until| until.saturating_duration_since(now))
            .max()
            .unwrap_or_default();
        if wait.is_zero() { Ok(()) } else { Err(wait) }
    }

    /// Begins an attempt for `account` from `source`, counted at once: `Err`
    /// with how long to wait when either key is locked, or when its
    /// failures plus the attempts still in flight reach its limit (then a
    /// second: one of those attempts will have finished by then). Check and
    /// count happen under one lock, so parallel attempts cannot all pass.
    pub fn begin<'a>(
        &self,
        account: impl Into<Subject<'a>>,
        source: IpAddr,
        now: Instant,
    ) -> Result<Attempt<'_>, Duration> {
        let keys = [
            (
                Key::account(account.into(), source),
                self.limits.max_failures,
            ),
            (Key::source(source), self.limits.max_failures_per_source),
        ];
        let mut state = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in &keys {
            let Some(entry) = state.entries.get(key) else {
                continue;
            };
            match entry.locked_until {
                Some(until) if until > now => wait = wait.max(until - now),
                Some(_) => {}
                None => {
                    let counting =
                        now.saturating_duration_since(entry.window_start) < self.limits.window;
                    let failures = if counting { entry.failures } else { 0 };
                    if failures.saturating_add(entry.in_flight) >= *limit {
                        wait = wait.max(Duration::from_secs(1));
                    }
                }
            }
        }
        if !wait.is_zero() {
            return Err(wait);
        }
        for (key, _) in &keys {
            self.touch(&mut state, *key, now).in_flight += 1;
        }
        Ok(Attempt {
            limiter: self,
            keys: [keys[0].0, keys[1].0],
            finished: false,
        })
    }

    /// Records a failed login for `account` from `source`.
    pub fn failure<'a>(&self, account: impl Into<Subject<'a>>, source: IpAddr, now: Instant) {
        let mut state = self.lock();
        self.fail_keys(
            &mut state,
            [Key::account(account.into(), source), Key::source(source)],
            now,
        );
    }

    fn fail_keys(&self, state: &mut State, [account, source]: [Key; 2], now: Instant) {
        self.record(state, account, self.limits.max_failures, now);
        self.record(state, source, self.limits.max_failures_per_source, now);
    }

    /// Records a successful login: forgets the account's failures, so its
    /// owner is not locked out by their own earlier typos. The source's count
    /// stays, or one valid account would reset a client guessing at others.
    pub fn success<'a>(&self, account: impl Into<Subject<'a>>, source: IpAddr, now: Instant) {
        // Taken for symmetry with `failure`, so call sites read alike.
        let _ = now;
        let mut state = self.lock();
        Self::forget(&mut state, Key::account(account.into(), source));
    }

    fn forget(state: &mut State, key: Key) {
        if let Some(entry) = state.entries.remove(&key) {
            state.order.remove(&entry.touched);
        }
    }

    /// The entry of `key`, made if missing (evicting the oldest when full),
    /// marked as touched now.
    fn touch<'s>(&self, state: &'s mut State, key: Key, now: Instant) -> &'s mut Entry {
        let stamp = state.clock;
        state.clock += 1;
        match state.entries.get(&key) {
            Some(entry) => {
                let old = entry.touched;
                state.order.remove(&old);
            }
            None => self.make_room(state),
        }
        state.order.insert(stamp, key);
        let window = self.limits.window;
        let entry = state.entries.entry(key).or_insert(Entry {
            window_start: now,
            failures: 0,
            in_flight: 0,
            locked_until: None,
            lockout: window,
            touched: stamp,
        });
        entry.touched = stamp;
        entry
    }

    /// Ends an attempt's in-flight count on its keys.
    fn release(state: &mut State, keys: &[Key; 2]) {
        for key in keys {
            if let Some(entry) = state.entries.get_mut(key) {
                entry.in_flight = entry.in_flight.saturating_sub(1);
            }
        }
    }

    /// Number of keys tracked now (for metrics and tests).
    pub fn tracked_keys(&self) -> usize {
        self.lock().entries.len()
    }

    /// Counts one failure against `key`, locking it at `limit`.
    fn record(&self, state: &mut State, key: Key, limit: u32, now: Instant) {
        let window = self.limits.window;
        let max_lockout = self.limits.max_lockout;
        let entry = self.touch(state, key, now);
        match entry.locked_until {
            Some(until) if until > now => {
                // Still trying while locked: double the lockout from now.
                entry.lockout = (entry.lockout * 2).min(max_lockout);
                entry.locked_until = Some(now + entry.lockout);
            }
            _ => {
                let lock_over = entry.locked_until.is_some();
                if lock_over || now.saturating_duration_since(entry.window_start) >= window {
                    entry.window_start = now;
                    entry.failures = 0;
                    entry.locked_until = None;
                    entry.lockout = window;
                }
                entry.failures = entry.failures.saturating_add(1);
                if entry.failures >= limit {
                    entry.locked_until = Some(now + entry.lockout);
                }
            }
        }
    }

    /// Forgets least recently touched keys until a new one fits.
    fn make_room(&self, state: &mut State) {
        while state.entries.len() >= self.limits.max_keys {
            let Some((_, oldest)) = state.order.pop_first() else {
                break;
            };
            state.entries.remove(&oldest);
        }
    }
}

/// A sign-in attempt counted by [`LoginLimiter::begin`]; say how it ended.
#[derive(Debug)]
#[must_use = "an attempt counts until it is marked failed or succeeded"]
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    keys: [Key; 2],
    finished: bool,
}

impl Attempt<'_> {
    /// The credentials were wrong: a failure on both keys.
    pub fn failed(mut self, now: Instant) {
        let mut state = self.limiter.lock();
        LoginLimiter::release(&mut state, &self.keys);
        self.limiter.fail_keys(&mut state, self.keys, now);
        self.finished = true;
    }

    /// The credentials were right: the account's failures are forgotten.
    pub fn succeeded(mut self) {
        let mut state = self.limiter.lock();
        LoginLimiter::release(&mut state, &self.keys);
        LoginLimiter::forget(&mut state, self.keys[0]);
        self.finished = true;
    }
}

impl Drop for Attempt<'_> {
    /// An attempt abandoned (the store failed, the client went away) counts
    /// as neither.
    fn drop(&mut self) {
        if !self.finished {
            let mut state = self.limiter.lock();
            LoginLimiter::release(&mut state, &self.keys);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const MIN: Duration = Duration::from_secs(60);

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn account_locks_after_five_failures_for_one_window() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for i in 0..4 {
            limiter.failure("alice", src, t0 + MIN * i);
            assert_eq!(limiter.check("alice", src, t0 + MIN * i), Ok(()));
        }
        limiter.failure("alice", src, t0 + MIN * 4);
        assert_eq!(limiter.check("alice", src, t0 + MIN * 4), Err(MIN * 15));
        // Another source is refused as well: the account is locked.
        assert_eq!(
            limiter.check("alice", ip("198.51.100.7"), t0 + MIN * 10),
            Err(MIN * 9)
        );
        // Another account from the same source is fine.
        assert_eq!(limiter.check("bob", src, t0 + MIN * 10), Ok(()));
        // The lockout ends one window after the fifth failure.
        assert_eq!(limiter.check("alice", src, t0 + MIN * 19), Ok(()));
    }

    #[test]
    fn failures_outside_the_window_do_not_add_up() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for i in 0..4 {
            limiter.failure("alice", src, t0 + MIN * i);
        }
        // 16 minutes after the first failure a new window starts.
        for i in 0..4 {
            limiter.failure("alice", src, t0 + MIN * (16 + i));
        }
        assert_eq!(limiter.check("alice", src, t0 + MIN * 20), Ok(()));
    }

    #[test]
    fn failures_while_locked_double_the_lockout_up_to_an_hour() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for _ in 0..5 {
            limiter.failure("alice", src, t0);
        }
        assert_eq!(limiter.check("alice", src, t0), Err(MIN * 15));
        limiter.failure("alice", src, t0 + MIN);
        assert_eq!(limiter.check("alice", src, t0 + MIN), Err(MIN * 30));
        limiter.failure("alice", src, t0 + MIN * 2);
        assert_eq!(limiter.check("alice", src, t0 + MIN * 2), Err(MIN * 60));
        limiter.failure("alice", src, t0 + MIN * 3);
        assert_eq!(limiter.check("alice", src, t0 + MIN * 3), Err(MIN * 60));
        // Once the lockout is over the account starts afresh.
        let later = t0 + MIN * 63;
        assert_eq!(limiter.check("alice", src, later), Ok(()));
        limiter.failure("alice", src, later);
        assert_eq!(limiter.check("alice", src, later), Ok(()));
    }

    #[test]
    fn accounts_compare_ignoring_case() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for name in ["Alice", "ALICE", "alice", "aLiCe", "ALICE"] {
            limiter.failure(name, src, t0);
        }
        assert!(limiter.check("alice", src, t0).is_err());
        assert!(limiter.check("Alice", ip("192.0.2.9"), t0).is_err());
    }

    #[test]
    fn success_clears_the_account_but_not_the_source() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for _ in 0..5 {
            limiter.failure("alice", src, t0);
        }
        limiter.success("alice", src, t0);
        assert_eq!(limiter.check("alice", src, t0), Ok(()));
        // The source's 5 failures still count towards its 20.
        for i in 0..15 {
            limiter.failure(&format!("user{i}"), src, t0);
        }
        assert_eq!(limiter.check("carol", src, t0), Err(MIN * 15));
    }

    #[test]
    fn one_source_spraying_many_accounts_is_locked() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("203.0.113.5");
        for i in 0..19 {
            limiter.failure(&format!("user{i}"), src, t0);
            assert_eq!(limiter.check("someone", src, t0), Ok(()));
        }
        limiter.failure("user19", src, t0);
        assert_eq!(limiter.check("someone", src, t0), Err(MIN * 15));
        assert_eq!(limiter.check("someone", ip("203.0.113.6"), t0), Ok(()));
    }

    #[test]
    fn ipv6_sources_are_grouped_by_64() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..20u16 {
            let addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 2, i, i, i, i);
            limiter.failure(&format!("user{i}"), IpAddr::V6(addr), t0);
        }
        assert!(limiter.check("x", ip("2001:db8:1:2::abcd"), t0).is_err());
        assert_eq!(limiter.check("x", ip("2001:db8:1:3::1"), t0), Ok(()));
    }

    #[test]
    fn ipv4_mapped_sources_count_as_ipv4_not_one_64() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        for i in 0..20 {
            let mapped = Ipv4Addr::new(192, 0, 2, 1).to_ipv6_mapped();
            limiter.failure(&format!("user{i}"), IpAddr::V6(mapped), t0);
        }
        assert!(limiter.check("x", ip("192.0.2.1"), t0).is_err());
        assert_eq!(limiter.check("x", ip("::ffff:192.0.2.2"), t0), Ok(()));
    }

    #[test]
    fn memory_is_bounded_and_the_oldest_key_goes_first() {
        let limiter = LoginLimiter::new(LoginLimits {
            max_keys: 10,
            ..LoginLimits::default()
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            limiter.failure("victim", ip("192.0.2.1"), t0);
        }
        assert!(limiter.check("victim", ip("192.0.2.1"), t0).is_err());
        for i in 0..100u8 {
            limiter.failure(&format!("user{i}"), ip(&format!("198.51.100.{i}")), t0);
            assert!(limiter.tracked_keys() <= 10);
        }
        // The victim's entry was the least recently touched and is gone.
        assert_eq!(limiter.check("victim", ip("192.0.2.1"), t0), Ok(()));
        // The most recent keys are still counted.
        assert_eq!(limiter.tracked_keys(), 10);
    }

    #[test]
    fn touching_a_key_keeps_it_from_eviction() {
        let limiter = LoginLimiter::new(LoginLimits {
            max_keys: 4,
            ..LoginLimits::default()
        });
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for _ in 0..5 {
            limiter.failure("victim", src, t0);
        }
        // Each round adds two new keys (account and source); the victim keeps
        // failing, so it stays among the most recent and is never evicted.
        for i in 0..20u8 {
            limiter.failure(&format!("user{i}"), ip(&format!("198.51.100.{i}")), t0);
            limiter.failure("victim", src, t0);
        }
        assert!(limiter.check("victim", src, t0).is_err());
    }

    #[test]
    fn zero_limits_and_huge_durations_are_made_safe() {
        let limiter = LoginLimiter::new(LoginLimits {
            max_failures: 0,
            max_failures_per_source: 0,
            window: Duration::MAX,
            max_lockout: Duration::MAX,
            max_keys: 0,
        });
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        assert_eq!(limiter.check("alice", src, t0), Ok(()));
        limiter.failure("alice", src, t0);
        assert_eq!(limiter.check("alice", src, t0), Err(MAX_DURATION));
        limiter.failure("alice", src, t0);
        assert_eq!(limiter.check("alice", src, t0), Err(MAX_DURATION));
    }

    #[test]
    fn parallel_attempts_are_counted_before_they_are_verified() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        let attempts: Vec<_> = (0..5)
            .map(|_| limiter.begin("alice", src, t0).unwrap())
            .collect();
        // Five guesses are being verified: a sixth waits for them.
        assert_eq!(
            limiter.begin("alice", ip("198.51.100.7"), t0).err(),
            Some(Duration::from_secs(1))
        );
        // Another account from the same source is not held up.
        limiter.begin("bob", src, t0).unwrap().succeeded();
        for attempt in attempts {
            attempt.failed(t0);
        }
        assert_eq!(limiter.check("alice", src, t0), Err(MIN * 15));
        assert_eq!(limiter.begin("alice", src, t0).err(), Some(MIN * 15));
    }

    #[test]
    fn an_abandoned_attempt_frees_its_place_and_a_success_clears_the_account() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let src = ip("192.0.2.1");
        for _ in 0..10 {
            drop(limiter.begin("alice", src, t0).unwrap());
        }
        for _ in 0..4 {
            limiter.begin("alice", src, t0).unwrap().failed(t0);
        }
        limiter.begin("alice", src, t0).unwrap().succeeded();
        for _ in 0..4 {
            limiter.begin("alice", src, t0).unwrap().failed(t0);
        }
        assert_eq!(limiter.check("alice", src, t0), Ok(()));
    }

    #[test]
    fn users_tokens_and_unknown_credentials_are_apart() {
        let limiter = LoginLimiter::default();
        let t0 = Instant::now();
        let local = ip("127.0.0.1");
        // A user named like the key of a credential-less source locks only
        // itself, not the CLI's `api.token` sent from that address.
        for _ in 0..5 {
            limiter.failure("source:127.0.0.1", local, t0);
        }
        assert!(limiter.check("source:127.0.0.1", local, t0).is_err());
        assert_eq!(limiter.check(Subject::Unknown, local, t0), Ok(()));
        // A token id and a user of the same name are apart too.
        for i in 0..5 {
            limiter.failure(Subject::Token("ab12"), ip(&format!("192.0.2.{i}")), t0);
        }
        assert!(
            limiter
                .check(Subject::Token("ab12"), ip("203.0.113.1"), t0)
                .is_err()
        );
        assert_eq!(limiter.check("ab12", ip("203.0.113.1"), t0), Ok(()));
        // Garbage from one address locks that address's unknown credentials.
        for _ in 0..5 {
            limiter.failure(Subject::Unknown, ip("198.51.100.9"), t0);
        }
        assert!(
            limiter
                .check(Subject::Unknown, ip("198.51.100.9"), t0)
                .is_err()
        );
        assert_eq!(limiter.check(Subject::Unknown, local, t0), Ok(()));
    }
}
