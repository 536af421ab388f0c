//! Boards computed once per change and served from memory.
//!
//! A board (the scoreboard, its history chart, a challenge's matrix) is built
//! for a [`BoardKey`]: the store's board version (`Store::board_version`, raised
//! by every write a board shows) and the phase (which split each track shows
//! now, which moves with the clock alone). A request reads the version (one
//! indexed read) and gets the board built for it:
//!
//! - **single flight**: one build per key, whoever asks; the build runs as its
//!   own task, so it is neither repeated nor abandoned when a client leaves;
//! - **stale while rebuilding**: while a newer board is built, a request waits
//!   at most [`Slot::get`]'s `patience` and then gets the previous board (the
//!   first build of all is waited for);
//! - the build's CPU work runs on the blocking pool, off the HTTP workers.

use std::collections::HashMap;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use riposte_core::store::StoreError;
use tokio::sync::watch;

/// What a board was built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BoardKey {
    /// `Store::board_version` when the build started.
    pub version: i64,
    /// A fingerprint of the splits shown and anything else the clock moves.
    pub phase: u64,
}

impl BoardKey {
    /// A strong validator for HTTP (`ETag`), with `extra` for what else the
    /// response depends on (its page, its audience).
    pub fn etag(&self, extra: impl Hash) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.hash(&mut h);
        extra.hash(&mut h);
        format!("\"{:016x}\"", h.finish())
    }
}

type Built<V> = Option<Result<Arc<V>, String>>;

/// Builds faster than this never rest.
const REST_FROM: Duration = Duration::from_millis(100);

struct State<V> {
    current: Option<(BoardKey, Arc<V>)>,
    building: Option<(BoardKey, watch::Receiver<Built<V>>)>,
    /// When the current board's build ended, and how long it took.
    built: Option<(Instant, Duration)>,
}

/// One board's latest build and the build in flight.
pub struct Slot<V> {
    state: Mutex<State<V>>,
    /// After a build that took `d`, the board is served as it is for `rest * d`
    /// before the next build starts: a board that is expensive to build (the
    /// full history) costs at most `1 / (1 + rest)` of a core however often the
    /// standings change.
    rest: u32,
}

impl<V> Default for Slot<V> {
    fn default() -> Self {
        Self::resting(0)
    }
}

impl<V> Slot<V> {
    pub fn resting(rest: u32) -> Self {
        Self {
            state: Mutex::new(State {
                current: None,
                building: None,
                built: None,
            }),
            rest,
        }
    }
}

impl<V: Send + Sync + 'static> Slot<V> {
    /// The board built for `key`, building it with `build` unless a build for
    /// `key` is running already. While it builds, an older board is served after
    /// `patience`; with none, the build is awaited.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: BoardKey,
        patience: Duration,
        build: F,
    ) -> Result<Arc<V>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<V, StoreError>> + Send + 'static,
    {
        let (stale, mut rx) = {
            let mut state = self.lock();
            if let Some((k, v)) = &state.current
                && (*k == key || self.is_resting(&state))
            {
                return Ok(v.clone());
            }
            let stale = state.current.as_ref().map(|(_, v)| v.clone());
            let rx = match &state.building {
                Some((k, rx)) if *k == key => rx.clone(),
                _ => {
                    let (tx, rx) = watch::channel(None);
                    state.building = Some((key, rx.clone()));
                    let slot = Arc::clone(self);
                    let job = build();
                    let run = async move {
                        let started = Instant::now();
                        let result = job.await.map(Arc::new);
                        slot.finish(key, &result, started.elapsed());
                        let _ = tx.send(Some(result.map_err(|e| e.to_string())));
                    };
                    match builder() {
                        Some(builds) => drop(builds.spawn(run)),
                        None => drop(tokio::spawn(run)),
                    }
                    rx
                }
            };
            (stale, rx)
        };
        let wait = async {
            loop {
                if let Some(done) = rx.borrow_and_update().clone() {
                    return done;
                }
                if rx.changed().await.is_err() {
                    return Err("the board build stopped".to_owned());
                }
            }
        };
        let done = match stale {
            Some(stale) => match tokio::time::timeout(patience, wait).await {
                Ok(done) => done.or(Ok(stale)),
                Err(_) => Ok(stale),
            },
            None => wait.await,
        };
        done.map_err(|e| StoreError::Backend(anyhow::anyhow!("building a board: {e}")))
    }

    /// Only builds slower than [`REST_FROM`] rest: a small event's boards are
    /// always fresh.
    fn is_resting(&self, state: &State<V>) -> bool {
        state
            .built
            .is_some_and(|(at, took)| took >= REST_FROM && at.elapsed() < took * self.rest)
    }

    fn finish(&self, key: BoardKey, result: &Result<Arc<V>, StoreError>, took: Duration) {
        let mut state = self.lock();
        if state.building.as_ref().is_some_and(|(k, _)| *k == key) {
            state.building = None;
        }
        match result {
            Ok(v) => {
                // A slower build of an older version never replaces a newer one.
                let newer = state
                    .current
                    .as_ref()
                    .is_none_or(|(k, _)| k.version <= key.version);
                if newer {
                    state.current = Some((key, v.clone()));
                    state.built = Some((Instant::now(), took));
                }
            }
            Err(e) => tracing::error!(error = %e, "a board build failed"),
        }
    }

    /// Drop the board held, so the next request waits for a fresh build
    /// (after a restore, nothing built before may be served, resting or not).
    pub fn forget(&self) {
        let mut state = self.lock();
        state.current = None;
        state.built = None;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<V>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Slots by name (one per challenge), created on first use.
pub struct Slots<V> {
    slots: Mutex<HashMap<String, Arc<Slot<V>>>>,
    rest: u32,
}

impl<V> Default for Slots<V> {
    fn default() -> Self {
        Self::resting(0)
    }
}

impl<V> Slots<V> {
    /// Slots that rest `rest` times their build time ([`Slot::resting`]).
    pub fn resting(rest: u32) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            rest,
        }
    }

    /// Drop every slot (see [`Slot::forget`]).
    pub fn forget(&self) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn slot(&self, name: &str) -> Arc<Slot<V>> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        slots
            .entry(name.to_owned())
            .or_insert_with(|| Arc::new(Slot::resting(self.rest)))
            .clone()
    }
}

/// The runtime board builds run on: its own thread (and blocking pool), at a
/// lower CPU priority than the HTTP workers, so a build (reading every row of a
/// large event included) never runs on a worker thread nor slows one down.
/// `None` if it could not be started (builds then run where they are asked for).
fn builder() -> Option<&'static tokio::runtime::Runtime> {
    static BUILDS: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    BUILDS
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .max_blocking_threads(2)
                .thread_name("riposte-boards")
                .on_thread_start(lower_priority)
                .enable_all()
                .build()
                .map_err(|e| tracing::error!(error = %e, "no runtime for board builds"))
                .ok()
        })
        .as_ref()
}

/// Nice 10 for the calling thread (Linux: the nice value is per thread).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn lower_priority() {
    // SAFETY: setpriority takes plain integers; `who = 0` is the calling thread.
    let _ = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

/// Run CPU-heavy board work on the blocking pool, off the HTTP workers.
pub async fn compute<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::Backend(anyhow::anyhow!("board computation stopped: {e}")))
}

/// A value read from the store (the board version) that many concurrent
/// requests share without ever seeing one older than themselves: a request is
/// answered by a read that *started after it arrived*, joining one in flight
/// when there is one, starting one otherwise. Under load a few reads serve
/// every request; a change committed before a request arrived is always seen.
pub struct FreshRead {
    state: Mutex<FreshState>,
}

type Read = Option<Result<i64, String>>;

struct FreshState {
    /// The newest finished read: when it started, and its value.
    last: Option<(Instant, i64)>,
    /// The newest read in flight: when it started.
    flight: Option<(Instant, watch::Receiver<Read>)>,
}

impl Default for FreshRead {
    fn default() -> Self {
        Self {
            state: Mutex::new(FreshState {
                last: None,
                flight: None,
            }),
        }
    }
}

impl FreshRead {
    /// The value as read by a read that started at or after `arrived`.
    pub async fn get<F, Fut>(self: &Arc<Self>, arrived: Instant, read: F) -> Result<i64, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<i64, StoreError>> + Send + 'static,
    {
        let mut rx = {
            let mut state = self.lock();
            if let Some((at, value)) = state.last
                && at >= arrived
            {
                return Ok(value);
            }
            match &state.flight {
                Some((at, rx)) if *at >= arrived => rx.clone(),
                _ => {
                    let started = Instant::now();
                    let (tx, rx) = watch::channel(None);
                    state.flight = Some((started, rx.clone()));
                    let me = Arc::clone(self);
                    let job = read();
                    tokio::spawn(async move {
                        let result = job.await;
                        {
                            let mut state = me.lock();
                            if let Ok(value) = &result
                                && state.last.is_none_or(|(at, _)| at < started)
                            {
                                state.last = Some((started, *value));
                            }
                            if state.flight.as_ref().is_some_and(|(at, _)| *at == started) {
                                state.flight = None;
                            }
                        }
                        let _ = tx.send(Some(result.map_err(|e| e.to_string())));
                    });
                    rx
                }
            }
        };
        loop {
            if let Some(done) = rx.borrow_and_update().clone() {
                return done.map_err(|e| {
                    StoreError::Backend(anyhow::anyhow!("reading the board version: {e}"))
                });
            }
            if rx.changed().await.is_err() {
                return Err(StoreError::Backend(anyhow::anyhow!(
                    "the board version read stopped"
                )));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FreshState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Return freed heap to the operating system after a large build: glibc keeps
/// what a build freed in its arenas, so without this a process that once
/// replayed a big event stays at its peak size.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_memory() {
    // SAFETY: malloc_trim takes a plain integer and only walks the allocator's
    // own free lists; it is safe to call from any thread at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_memory() {}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(version: i64) -> BoardKey {
        BoardKey { version, phase: 0 }
    }

    #[tokio::test]
    async fn one_build_per_key_however_many_ask() {
        let slot: Arc<Slot<i64>> = Arc::default();
        let builds = Arc::new(AtomicUsize::new(0));
        let mut waiting = Vec::new();
        for _ in 0..16 {
            let slot = slot.clone();
            let builds = builds.clone();
            waiting.push(tokio::spawn(async move {
                slot.get(key(1), Duration::from_secs(5), move || async move {
                    builds.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(7)
                })
                .await
                .unwrap()
            }));
        }
        for w in waiting {
            assert_eq!(*w.await.unwrap(), 7);
        }
        assert_eq!(builds.load(Ordering::SeqCst), 1);
        // Built: served without building again.
        let again = slot
            .get(key(1), Duration::ZERO, || async { panic!("rebuilt") })
            .await
            .unwrap();
        assert_eq!(*again, 7);
    }

    #[tokio::test]
    async fn a_slow_rebuild_serves_the_previous_board_and_then_the_new_one() {
        let slot: Arc<Slot<i64>> = Arc::default();
        slot.get(key(1), Duration::ZERO, || async { Ok(1) })
            .await
            .unwrap();
        let (release, gate) = tokio::sync::oneshot::channel::<()>();
        let stale = slot
            .get(key(2), Duration::from_millis(20), move || async move {
                let _ = gate.await;
                Ok(2)
            })
            .await
            .unwrap();
        assert_eq!(*stale, 1, "the previous board while the new one builds");
        release.send(()).unwrap();
        let fresh = slot
            .get(key(2), Duration::from_secs(5), || async {
                panic!("built twice")
            })
            .await
            .unwrap();
        assert_eq!(*fresh, 2);
    }

    #[tokio::test]
    async fn a_failed_build_is_an_error_without_a_previous_board_and_is_retried() {
        let slot: Arc<Slot<i64>> = Arc::default();
        let failed = slot
            .get(key(1), Duration::ZERO, || async {
                Err(StoreError::Backend(anyhow::anyhow!("disk gone")))
            })
            .await;
        assert!(failed.is_err());
        let retried = slot
            .get(key(1), Duration::ZERO, || async { Ok(3) })
            .await
            .unwrap();
        assert_eq!(*retried, 3);
    }

    #[tokio::test]
    async fn an_older_build_finishing_late_never_replaces_a_newer_board() {
        let slot: Arc<Slot<i64>> = Arc::default();
        let (release, gate) = tokio::sync::oneshot::channel::<()>();
        let old = {
            let slot = slot.clone();
            tokio::spawn(async move {
                slot.get(key(1), Duration::from_secs(5), move || async move {
                    let _ = gate.await;
                    Ok(1)
                })
                .await
                .unwrap()
            })
        };
        tokio::task::yield_now().await;
        let new = slot
            .get(key(2), Duration::from_secs(5), || async { Ok(2) })
            .await
            .unwrap();
        assert_eq!(*new, 2);
        release.send(()).unwrap();
        assert_eq!(*old.await.unwrap(), 1);
        let now = slot
            .get(key(2), Duration::ZERO, || async { panic!("rebuilt") })
            .await
            .unwrap();
        assert_eq!(*now, 2);
    }

    #[tokio::test]
    async fn a_resting_slot_serves_its_board_for_a_multiple_of_its_build_time() {
        let slot: Arc<Slot<i64>> = Arc::new(Slot::resting(100));
        slot.get(key(1), Duration::ZERO, || async {
            tokio::time::sleep(REST_FROM).await;
            Ok(1)
        })
        .await
        .unwrap();
        // 100 ms x 100 = 10 s of rest: the newer key is not built yet.
        let served = slot
            .get(key(2), Duration::ZERO, || async {
                panic!("built while resting")
            })
            .await
            .unwrap();
        assert_eq!(*served, 1);
        // A fast build never rests, whatever the factor.
        let eager: Arc<Slot<i64>> = Arc::new(Slot::resting(100));
        eager
            .get(key(1), Duration::ZERO, || async { Ok(1) })
            .await
            .unwrap();
        let rebuilt = eager
            .get(key(2), Duration::from_secs(5), || async { Ok(2) })
            .await
            .unwrap();
        assert_eq!(*rebuilt, 2);
    }

    #[tokio::test]
    async fn fresh_reads_are_shared_and_never_older_than_the_request() {
        let fresh: Arc<FreshRead> = Arc::default();
        let version = Arc::new(std::sync::atomic::AtomicI64::new(1));
        let reads = Arc::new(AtomicUsize::new(0));
        let read = |version: Arc<std::sync::atomic::AtomicI64>, reads: Arc<AtomicUsize>| {
            move || async move {
                reads.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(30)).await;
                Ok(version.load(Ordering::SeqCst))
            }
        };
        // 32 requests arriving together share one read.
        let arrived = Instant::now();
        let mut waiting = Vec::new();
        for _ in 0..32 {
            let fresh = fresh.clone();
            let r = read(version.clone(), reads.clone());
            waiting.push(tokio::spawn(
                async move { fresh.get(arrived, r).await.unwrap() },
            ));
        }
        for w in waiting {
            assert_eq!(w.await.unwrap(), 1);
        }
        assert_eq!(reads.load(Ordering::SeqCst), 1);
        // A change, then a request: it does not take the older read.
        version.store(2, Ordering::SeqCst);
        let later = fresh
            .get(Instant::now(), read(version.clone(), reads.clone()))
            .await
            .unwrap();
        assert_eq!(later, 2);
        assert_eq!(reads.load(Ordering::SeqCst), 2);
        // A request that arrived before the last read started reuses it.
        let reused = fresh
            .get(arrived, || async { panic!("read again") })
            .await
            .unwrap();
        assert_eq!(reused, 2);
    }

    #[test]
    fn etags_differ_by_key_and_by_what_else_the_response_depends_on() {
        assert_eq!(key(1).etag(0), key(1).etag(0));
        assert_ne!(key(1).etag(0), key(2).etag(0));
        assert_ne!(key(1).etag(0), key(1).etag(1));
        assert!(key(1).etag(0).starts_with('"'));
    }
}
