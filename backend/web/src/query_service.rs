//! What the query API keeps between requests: one micro-batching queue per
//! model, and short-lived caches of the challenge and the token's user.
//!
//! Concurrent queries to one model are answered by one host call: each request
//! joins its model's queue; a task per model takes everything queued (up to
//! `max_batch` examples), spends every request's queries in one database
//! transaction, runs the accepted examples through the sandboxed host at once and
//! hands each request its rows. While one batch runs, the next one gathers, so
//! batches grow with the load and a lone request waits for nobody. At most
//! [`MAX_MODEL_QUEUES`] queues are kept (least recently used dropped first), and
//! the host pool stops hosts left idle past `model_host_idle_seconds`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use riposte_core::challenge::ChallengeSpec;
use riposte_core::store::{ChallengeId, ChallengeRecord, QuerySpend, Store, TeamId, User};
use riposte_eval::host::{HostError, HostLimits, HostPool, PoolModel};
use tokio::sync::{mpsc, oneshot};

use crate::blobs::BlobStore;

/// How long a resolved challenge or token is reused. Hiding a challenge or
/// revoking a token reaches the query API within this time (revoking through the
/// API clears the token cache at once).
pub const CACHE_TTL: Duration = Duration::from_secs(1);
const CACHE_MAX_ENTRIES: usize = 10_000;
/// Model queues kept at most; past it the least recently used one is dropped (its
/// task ends once its last request is answered, its host idles out of the pool).
pub const MAX_MODEL_QUEUES: usize = 64;

/// A challenge as the query API needs it.
pub struct Resolved {
    pub record: ChallengeRecord,
    pub spec: ChallengeSpec,
    pub artifacts: riposte_core::artifacts::Artifacts,
}

/// One request waiting in a model's queue.
struct Pending {
    spend: Spend,
    inputs: Vec<f32>,
    n: usize,
    reply: oneshot::Sender<Result<Answered, QueryFailure>>,
}

/// Who pays for a request, and how much.
#[derive(Debug, Clone)]
pub struct Spend {
    pub challenge: ChallengeId,
    pub team: TeamId,
    /// The target's budget key.
    pub target: String,
    /// Queries charged (0: a later step of a completion already paid for).
    pub charge: i64,
    pub budget: i64,
}

/// A request's logits and, for a request that paid, the team's queries used after it.
#[derive(Debug)]
pub struct Answered {
    pub logits: Vec<f32>,
    pub used: Option<i64>,
}

#[derive(Debug)]
pub enum QueryFailure {
    /// Not enough budget left: nothing was spent.
    Budget {
        remaining: i64,
    },
    /// The model failed on the batch (refunded).
    Model(String),
    Internal(String),
}

/// One model's queue, and when it was last used (a tick of `QueryModels::uses`).
struct ModelQueue {
    tx: mpsc::UnboundedSender<Pending>,
    last_used: AtomicU64,
}

struct Cached<T> {
    at: Instant,
    value: T,
}

pub struct QueryModels {
    pub pool: Arc<HostPool>,
    store: Arc<dyn Store>,
    blobs: BlobStore,
    runtime: tokio::runtime::Handle,
    /// Examples per host call at most; 1 turns micro-batching off.
    max_batch: usize,
    queues: RwLock<HashMap<String, ModelQueue>>,
    /// Orders the queues' uses, for dropping the least recently used.
    uses: AtomicU64,
    challenges: RwLock<HashMap<String, Cached<Arc<Resolved>>>>,
    tokens: RwLock<HashMap<String, Cached<User>>>,
    clock: Arc<riposte_core::Clock>,
}

fn fresh<T: Clone>(map: &RwLock<HashMap<String, Cached<T>>>, key: &str) -> Option<T> {
    let map = map.read().ok()?;
    let hit = map.get(key)?;
    (hit.at.elapsed() < CACHE_TTL).then(|| hit.value.clone())
}

fn remember<T>(map: &RwLock<HashMap<String, Cached<T>>>, key: &str, value: T) {
    if let Ok(mut map) = map.write() {
        if map.len() >= CACHE_MAX_ENTRIES {
            map.retain(|_, c| c.at.elapsed() < CACHE_TTL);
        }
        map.insert(
            key.to_owned(),
            Cached {
                at: Instant::now(),
                value,
            },
        );
    }
}

impl QueryModels {
    /// Must be called inside the runtime the model queues should run on.
    pub fn new(
        pool: HostPool,
        store: Arc<dyn Store>,
        blobs: BlobStore,
        max_batch: usize,
        clock: Arc<riposte_core::Clock>,
    ) -> Self {
        let pool = Arc::new(pool);
        // Ends when the pool is dropped: idle hosts are stopped meanwhile.
        HostPool::spawn_idle_eviction(&pool);
        Self {
            clock,
            pool,
            uses: AtomicU64::new(0),
            store,
            blobs,
            runtime: tokio::runtime::Handle::current(),
            max_batch: max_batch.max(1),
            queues: RwLock::new(HashMap::new()),
            challenges: RwLock::new(HashMap::new()),
            tokens: RwLock::new(HashMap::new()),
        }
    }

    /// The user a bearer token belongs to (hashed), from the cache when fresh.
    pub async fn user_by_token(
        &self,
        token_hash: &str,
    ) -> Result<Option<User>, riposte_core::store::StoreError> {
        if let Some(user) = fresh(&self.tokens, token_hash) {
            return Ok(Some(user));
        }
        let user = self
            .store
            .user_by_token(token_hash, self.clock.now())
            .await?;
        if let Some(user) = &user {
            remember(&self.tokens, token_hash, user.clone());
        }
        Ok(user)
    }

    /// Forget every cached token (a token was revoked or a user banned).
    pub fn forget_tokens(&self) {
        if let Ok(mut map) = self.tokens.write() {
            map.clear();
        }
    }

    /// The challenge by slug, its spec and artifacts, from the cache when fresh.
    pub async fn challenge(&self, slug: &str) -> anyhow::Result<Option<Arc<Resolved>>> {
        if let Some(resolved) = fresh(&self.challenges, slug) {
            return Ok(Some(resolved));
        }
        let Some(record) = self.store.challenge_by_slug(slug).await? else {
            return Ok(None);
        };
        let spec = record.spec.clone();
        let artifacts = self.store.challenge_artifacts(record.id).await?;
        let resolved = Arc::new(Resolved {
            record,
            spec,
            artifacts,
        });
        remember(&self.challenges, slug, resolved.clone());
        Ok(Some(resolved))
    }

    /// Run `n` examples through the model stored as blob `sha`, paying with `spend`.
    pub async fn predict(
        &self,
        sha: &str,
        limits: &HostLimits,
        spend: Spend,
        inputs: Vec<f32>,
        n: usize,
    ) -> Result<Answered, QueryFailure> {
        let queue = self.queue(sha, limits).await?;
        let (reply, answer) = oneshot::channel();
        queue
            .send(Pending {
                spend,
                inputs,
                n,
                reply,
            })
            .map_err(|_| QueryFailure::Internal("the model's queue stopped".to_owned()))?;
        answer
            .await
            .map_err(|_| QueryFailure::Internal("the model's queue dropped a request".to_owned()))?
    }

    async fn queue(
        &self,
        sha: &str,
        limits: &HostLimits,
    ) -> Result<mpsc::UnboundedSender<Pending>, QueryFailure> {
        let key = format!("{sha}/{limits:?}");
        let tick = self.uses.fetch_add(1, Ordering::Relaxed);
        if let Some(queue) = self.queues.read().ok().and_then(|q| {
            q.get(&key).map(|m| {
                m.last_used.store(tick, Ordering::Relaxed);
                m.tx.clone()
            })
        }) {
            return Ok(queue);
        }
        let bytes = self
            .blobs
            .read(sha)
            .await
            .map_err(|e| QueryFailure::Internal(format!("{e:#}")))?;
        let mut queues = self
            .queues
            .write()
            .map_err(|_| QueryFailure::Internal("query queues poisoned".to_owned()))?;
        if let Some(queue) = queues.get(&key) {
            queue.last_used.store(tick, Ordering::Relaxed);
            return Ok(queue.tx.clone());
        }
        while queues.len() >= MAX_MODEL_QUEUES {
            let Some(oldest) = queues
                .iter()
                .min_by_key(|(_, q)| q.last_used.load(Ordering::Relaxed))
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            queues.remove(&oldest);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The host runs the output the model check picks (a two-output classifier's
        // probabilities, not its labels).
        let limits = limits.clone().for_model(&bytes);
        let worker = Batcher {
            model: PoolModel::new(bytes, limits),
            pool: self.pool.clone(),
            store: self.store.clone(),
            max_batch: self.max_batch,
        };
        self.runtime.spawn(worker.run(rx));
        queues.insert(
            key,
            ModelQueue {
                tx: tx.clone(),
                last_used: AtomicU64::new(tick),
            },
        );
        Ok(tx)
    }

    /// How many model queues are kept (at most [`MAX_MODEL_QUEUES`]).
    pub fn model_queues(&self) -> usize {
        self.queues.read().map(|q| q.len()).unwrap_or(0)
    }
}

/// The task that answers one model's queue.
struct Batcher {
    model: PoolModel,
    pool: Arc<HostPool>,
    store: Arc<dyn Store>,
    max_batch: usize,
}

impl Batcher {
    async fn run(self, mut rx: mpsc::UnboundedReceiver<Pending>) {
        while let Some(first) = rx.recv().await {
            let mut examples = first.n;
            let mut batch = vec![first];
            while examples < self.max_batch {
                match rx.try_recv() {
                    Ok(next) => {
                        examples += next.n;
                        batch.push(next);
                    }
                    Err(_) => break,
                }
            }
            self.answer(batch).await;
        }
    }

    /// Pay for a batch, run what was paid for in one model call, and answer each
    /// request (a failed call refunds what it charged).
    async fn answer(&self, batch: Vec<Pending>) {
        let Some(mut run) = self.pay(batch).await else {
            return;
        };
        let total: usize = run.iter().map(|(p, _)| p.n).sum();
        let inputs: Vec<f32> = if run.len() == 1 {
            std::mem::take(&mut run[0].0.inputs)
        } else {
            run.iter()
                .flat_map(|(p, _)| p.inputs.iter().copied())
                .collect()
        };
        riposte_eval::metrics::metrics()
            .query_batch_examples
            .observe(total as f64);
        match self.pool.predict(&self.model, &inputs, total).await {
            Ok(logits) => {
                let classes = logits.len() / total.max(1);
                let mut at = 0;
                for (p, after) in run {
                    let rows = logits[at..at + p.n * classes].to_vec();
                    at += p.n * classes;
                    let _ = p.reply.send(Ok(Answered {
                        logits: rows,
                        used: after,
                    }));
                }
            }
            Err(err) => {
                let failure = |err: &HostError| {
                    if err.is_model_fault() {
                        QueryFailure::Model(err.to_string())
                    } else {
                        QueryFailure::Internal(err.to_string())
                    }
                };
                for (p, _) in run {
                    if p.spend.charge > 0
                        && let Err(e) = self
                            .store
                            .refund_queries(
                                p.spend.challenge,
                                p.spend.team,
                                &p.spend.target,
                                p.spend.charge,
                            )
                            .await
                    {
                        tracing::error!(error = %e, "refunding queries of a failed batch");
                    }
                    let _ = p.reply.send(Err(failure(&err)));
                }
            }
        }
    }
    /// Pay for a batch, in arrival order: a request over its budget is refused
    /// (answered at once) without running and without spending. Returns the
    /// requests to run with the queries used after each, `None` when nothing runs.
    async fn pay(&self, batch: Vec<Pending>) -> Option<Vec<(Pending, Option<i64>)>> {
        let charged: Vec<usize> = (0..batch.len())
            .filter(|&i| batch[i].spend.charge > 0)
            .collect();
        let spends: Vec<QuerySpend<'_>> = charged
            .iter()
            .map(|&i| {
                let s = &batch[i].spend;
                QuerySpend {
                    challenge: s.challenge,
                    team: s.team,
                    target: &s.target,
                    n: s.charge,
                    budget: s.budget,
                }
            })
            .collect();
        let paid = match self.store.spend_queries(&spends).await {
            Ok(paid) => paid,
            Err(e) => {
                let message = format!("spending queries: {e}");
                for p in batch {
                    let _ = p.reply.send(Err(QueryFailure::Internal(message.clone())));
                }
                return None;
            }
        };
        drop(spends);
        let mut used: Vec<Option<Result<i64, i64>>> = vec![None; batch.len()];
        for (&i, result) in charged.iter().zip(paid) {
            used[i] = Some(result);
        }
        let mut run = Vec::new();
        for (p, paid) in batch.into_iter().zip(used) {
            match paid {
                Some(Err(remaining)) => {
                    let _ = p.reply.send(Err(QueryFailure::Budget { remaining }));
                }
                Some(Ok(after)) => run.push((p, Some(after))),
                // a later step of a completion: nothing to pay
                None => run.push((p, None)),
            }
        }
        (!run.is_empty()).then_some(run)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn model_queues_stay_bounded_and_the_least_recently_used_goes_first() {
        let dir = tempfile::tempdir().unwrap();
        let store = riposte_db::SqlStore::connect(&format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("db.sqlite3").display()
        ))
        .await
        .unwrap();
        let blobs = BlobStore::local(dir.path().join("blobs")).unwrap();
        let mut shas = vec![];
        for i in 0..=MAX_MODEL_QUEUES {
            let mut writer = blobs.writer().unwrap();
            writer.write(format!("model {i}").as_bytes()).unwrap();
            shas.push(blobs.finish(writer).await.unwrap().0);
        }
        let models = QueryModels::new(
            HostPool::new(
                riposte_eval::host::HostCommand::new("/nonexistent", ["model-host"]),
                riposte_eval::host::PoolConfig::default(),
            ),
            Arc::new(store),
            blobs,
            16,
            Arc::new(riposte_core::Clock::with_offset(0)),
        );
        let limits = HostLimits::default();
        for sha in &shas[..MAX_MODEL_QUEUES] {
            models.queue(sha, &limits).await.unwrap();
        }
        assert_eq!(models.model_queues(), MAX_MODEL_QUEUES);
        // The first is used again: the second is now the least recently used.
        models.queue(&shas[0], &limits).await.unwrap();
        models
            .queue(&shas[MAX_MODEL_QUEUES], &limits)
            .await
            .unwrap();
        assert_eq!(models.model_queues(), MAX_MODEL_QUEUES);
        let kept = models.queues.read().unwrap();
        let has = |sha: &str| kept.keys().any(|k| k.starts_with(sha));
        assert!(has(&shas[0]));
        assert!(!has(&shas[1]));
        assert!(has(&shas[MAX_MODEL_QUEUES]));
    }
}
