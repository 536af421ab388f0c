//! A bounded set of live model hosts shared by the evaluator and the query API.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::error::HostError;
use super::parent::{HostCommand, HostLimits, ModelHost};
use crate::metrics::metrics;

const MIB: u64 = 1024 * 1024;
/// Tries one request gets when its host is lost to something other than its model.
pub const MAX_TRIES: u32 = 3;

/// How many hosts may live at once and how much memory they may claim together.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolConfig {
    pub max_hosts: usize,
    /// Sum of the hosts' `memory_bytes` limits may not exceed this.
    pub memory_budget_bytes: u64,
    /// A host unused for this long is stopped by [`HostPool::evict_idle`].
    pub idle_timeout: Duration,
    /// How long a request waits for capacity before giving up.
    pub capacity_wait: Duration,
    /// The pool's name in metrics (`evaluator`, `query`).
    pub name: &'static str,
}

impl Default for PoolConfig {
    fn default() -> Self {
        Self {
            max_hosts: 8,
            memory_budget_bytes: 4096 * MIB,
            idle_timeout: Duration::from_secs(300),
            capacity_wait: Duration::from_secs(60),
            name: "evaluator",
        }
    }
}

/// A model as the pool knows it: its bytes, their sha256, and the limits to run it with.
#[derive(Debug, Clone)]
pub struct PoolModel {
    sha256: [u8; 32],
    bytes: Arc<[u8]>,
    limits: Arc<HostLimits>,
}

impl PoolModel {
    pub fn new(bytes: impl Into<Arc<[u8]>>, limits: HostLimits) -> Self {
        let bytes = bytes.into();
        let sha256 = Sha256::digest(&bytes).into();
        Self {
            sha256,
            bytes,
            limits: Arc::new(limits),
        }
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    pub fn limits(&self) -> &HostLimits {
        &self.limits
    }

    /// Same model with the same limits: one host serves both.
    fn key(&self) -> Key {
        Key {
            sha256: self.sha256,
            limits: format!("{:?}", self.limits),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    sha256: [u8; 32],
    limits: String,
}

struct Live {
    host: ModelHost,
    _slot: OwnedSemaphorePermit,
    _memory: OwnedSemaphorePermit,
}

struct Slot {
    live: Option<Live>,
    /// A load failure the model caused is deterministic for given bytes and limits:
    /// remembered until the slot is evicted, not retried.
    load_error: Option<HostError>,
    last_used: Instant,
}

type SlotRef = Arc<tokio::sync::Mutex<Slot>>;

/// Live model hosts keyed by model sha256 (one host per model and limits).
///
/// A host that dies (timeout, crash, sandbox kill) is dropped and restarted on the
/// next request for its model; one lost to something else is restarted at once and
/// the request retried. When the pool is full the least recently used idle host
/// makes room; hosts idle past the idle timeout are stopped by [`HostPool::evict_idle`].
pub struct HostPool {
    command: HostCommand,
    config: PoolConfig,
    slots: Mutex<HashMap<Key, SlotRef>>,
    host_permits: Arc<Semaphore>,
    memory_permits: Arc<Semaphore>,
    released: Notify,
}

impl HostPool {
    pub fn new(command: HostCommand, config: PoolConfig) -> Self {
        let memory_mib = (config.memory_budget_bytes / MIB).min(u64::from(u32::MAX >> 3)) as usize;
        Self {
            command,
            host_permits: Arc::new(Semaphore::new(config.max_hosts.max(1))),
            memory_permits: Arc::new(Semaphore::new(memory_mib)),
            config,
            slots: Mutex::new(HashMap::new()),
            released: Notify::new(),
        }
    }

    /// Number of hosts alive right now.
    pub fn live_hosts(&self) -> usize {
        self.config.max_hosts.max(1) - self.host_permits.available_permits()
    }

    /// Runs `n` examples through the model's host, starting it if needed.
    ///
    /// A host that died while idle is replaced before it is used, and a host lost to
    /// something other than its model (see `host/reap.rs`) is restarted and the
    /// request retried, up to [`MAX_TRIES`] tries in all: neither costs the caller
    /// anything. Only a failure the model caused is returned as its verdict (and
    /// remembered when it happened while loading).
    #[tracing::instrument(skip_all, fields(model = %model.sha256_hex(), n))]
    pub async fn predict(
        &self,
        model: &PoolModel,
        batch: &[f32],
        n: usize,
    ) -> Result<Vec<f32>, HostError> {
        let slot = self.slot(model.key());
        let mut guard = slot.lock().await;
        guard.last_used = Instant::now();
        if let Some(err) = &guard.load_error {
            return Err(err.clone());
        }
        let mut tries = 0;
        let result = loop {
            tries += 1;
            let died_idle = match guard.live.as_mut() {
                Some(live) => live.host.exited(),
                None => None,
            };
            if let Some(status) = died_idle {
                tracing::warn!(%status, "a model host died while idle: starting a new one");
                metrics().host_stops.with_label_values(&["died_idle"]).inc();
                guard.live = None;
                self.released.notify_waiters();
            }
            if guard.live.is_none() {
                let (slot_permit, memory_permit) = self.reserve(model.limits.memory_bytes).await?;
                match ModelHost::spawn(&self.command, &model.bytes, &model.limits).await {
                    Ok(host) => {
                        metrics().host_spawns.inc();
                        guard.live = Some(Live {
                            host,
                            _slot: slot_permit,
                            _memory: memory_permit,
                        });
                    }
                    Err(err) => {
                        drop((slot_permit, memory_permit));
                        self.released.notify_waiters();
                        if err.is_transient() && tries < MAX_TRIES {
                            tracing::warn!(reason = %err, tries, "model host lost while loading: retrying");
                            continue;
                        }
                        // Deterministic for these bytes and limits: remembered. A
                        // transient failure never is.
                        if err.is_model_fault() {
                            guard.load_error = Some(err.clone());
                        }
                        break Err(err);
                    }
                }
            }
            let result = match guard.live.as_mut() {
                Some(live) => live.host.predict(batch, n).await,
                None => Err(HostError::Busy("host vanished".into())),
            };
            if guard.live.as_ref().is_some_and(|l| !l.host.is_alive()) {
                // Restarted on the next try or request; its capacity goes back now.
                let reason = result.as_ref().err().map_or("exited", HostError::code);
                metrics().host_stops.with_label_values(&[reason]).inc();
                guard.live = None;
                self.released.notify_waiters();
            }
            match result {
                Err(err) if err.is_transient() && tries < MAX_TRIES => {
                    tracing::warn!(reason = %err, tries, "model host lost mid-request: retrying");
                }
                other => break other,
            }
        };
        guard.last_used = Instant::now();
        drop(guard);
        self.released.notify_waiters();
        self.record_live();
        result
    }

    /// Publish the number of live hosts in metrics.
    fn record_live(&self) {
        metrics()
            .hosts_live
            .with_label_values(&[self.config.name])
            .set(self.live_hosts() as i64);
    }

    /// Stops hosts idle for longer than the pool's idle timeout, and forgets their
    /// slots (a remembered load failure included); returns how many hosts stopped.
    pub async fn evict_idle(&self) -> usize {
        let slots: Vec<(Key, SlotRef)> = self.snapshot();
        let mut evicted = 0;
        for (key, slot) in slots {
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            if guard.last_used.elapsed() < self.config.idle_timeout {
                continue;
            }
            if let Some(live) = guard.live.take() {
                live.host.shutdown().await;
                metrics().host_stops.with_label_values(&["idle"]).inc();
                evicted += 1;
            }
            drop(guard);
            if let Ok(mut slots) = self.slots.lock() {
                // Only when no request holds the slot (the map and `slot` are the
                // two references): a waiting request keeps it.
                if Arc::strong_count(&slot) == 2 {
                    slots.remove(&key);
                }
            }
        }
        if evicted > 0 {
            self.released.notify_waiters();
            self.record_live();
        }
        evicted
    }

    /// Spawns a task that calls [`HostPool::evict_idle`] every half idle timeout (at
    /// least every second) until the pool is dropped.
    pub fn spawn_idle_eviction(pool: &Arc<HostPool>) -> tokio::task::JoinHandle<()> {
        let every = (pool.config.idle_timeout / 2).max(Duration::from_secs(1));
        let pool = Arc::downgrade(pool);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let Some(pool) = pool.upgrade() else {
                    return;
                };
                let evicted = pool.evict_idle().await;
                if evicted > 0 {
                    tracing::debug!(evicted, "stopped idle model hosts");
                }
            }
        })
    }

    fn snapshot(&self) -> Vec<(Key, SlotRef)> {
        match self.slots.lock() {
            Ok(slots) => slots.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
            Err(_) => vec![],
        }
    }

    fn slot(&self, key: Key) -> SlotRef {
        let fresh = || {
            Arc::new(tokio::sync::Mutex::new(Slot {
                live: None,
                load_error: None,
                last_used: Instant::now(),
            }))
        };
        match self.slots.lock() {
            Ok(mut slots) => slots.entry(key).or_insert_with(fresh).clone(),
            // A poisoned map only means another request panicked mid-insert; serve
            // this one from a private slot rather than fail.
            Err(_) => fresh(),
        }
    }

    /// Waits for room for one more host of `memory_bytes`, evicting the least recently
    /// used idle host when the pool is full.
    async fn reserve(
        &self,
        memory_bytes: u64,
    ) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), HostError> {
        let mib = memory_bytes.div_ceil(MIB);
        if mib > self.config.memory_budget_bytes / MIB {
            return Err(HostError::Busy(format!(
                "one host needs {mib} MiB, the pool's budget is {} MiB",
                self.config.memory_budget_bytes / MIB
            )));
        }
        let mib = mib as u32;
        let deadline = Instant::now() + self.config.capacity_wait;
        loop {
            let released = self.released.notified();
            if let Ok(slot) = self.host_permits.clone().try_acquire_owned()
                && let Ok(memory) = self.memory_permits.clone().try_acquire_many_owned(mib)
            {
                return Ok((slot, memory));
            }
            if self.evict_least_recently_used().await {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(HostError::Busy(format!(
                    "all {} model hosts stayed busy for {} s",
                    self.config.max_hosts,
                    self.config.capacity_wait.as_secs()
                )));
            }
            // Woken when any request finishes; the timeout guards a missed wake-up.
            let _ = tokio::time::timeout(left.min(Duration::from_millis(500)), released).await;
        }
    }

    async fn evict_least_recently_used(&self) -> bool {
        let mut oldest: Option<(Instant, SlotRef)> = None;
        for (_, slot) in self.snapshot() {
            let Ok(guard) = slot.try_lock() else { continue };
            if guard.live.is_some() && oldest.as_ref().is_none_or(|(t, _)| guard.last_used < *t) {
                let t = guard.last_used;
                drop(guard);
                oldest = Some((t, slot));
            }
        }
        let Some((_, slot)) = oldest else {
            return false;
        };
        let Ok(mut guard) = slot.try_lock() else {
            return false;
        };
        match guard.live.take() {
            Some(live) => {
                live.host.shutdown().await;
                metrics().host_stops.with_label_values(&["room"]).inc();
                true
            }
            None => false,
        }
    }
}
