//! The persistence boundary: what the platform stores, independent of the database.
//!
//! Implementations live in `riposte-db`; every method is one atomic step
//! (one transaction where it touches several rows).

use async_trait::async_trait;
use serde::Serialize;

use crate::account::Role;

pub type UserId = i64;
pub type TeamId = i64;
pub type ChallengeId = i64;

#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub id: UserId,
    pub username: String,
    pub role: Role,
    pub banned: bool,
    /// Hidden by an organizer (a test account, a sponsor): plays, but counts on no
    /// board and never lowers a flag's value.
    pub hidden: bool,
    pub team_id: Option<TeamId>,
    pub created_at: i64,
}

/// A user with the stored password hash, for login only.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Team {
    pub id: TeamId,
    pub name: String,
    pub invite_code: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct TeamSummary {
    pub team: Team,
    pub members: i64,
}

/// A server-side session. The cookie holds the secret; the store only its hash.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub csrf_token: String,
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewSession<'a> {
    pub id_hash: &'a str,
    pub user_id: UserId,
    pub csrf_token: &'a str,
    pub now: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// A challenge as the catalog shows it (no private paths, no hidden data).
#[derive(Debug, Clone)]
pub struct ChallengeRecord {
    pub id: ChallengeId,
    pub slug: String,
    pub title: String,
    pub kind: crate::challenge::ChallengeKind,
    pub difficulty: crate::challenge::Difficulty,
    pub tags: Vec<String>,
    pub points: i64,
    pub summary: String,
    pub readme: String,
    /// The checked spec the bundle was imported with (private paths included:
    /// never shown to competitors as is).
    pub spec: crate::challenge::ChallengeSpec,
    pub files: Vec<FileRecord>,
    pub hidden: bool,
    /// The organizer revealed the private ranking early.
    pub revealed: bool,
    pub updated_at: i64,
}

/// A downloadable public file, served from the blob store by its sha256.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct FileRecord {
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A challenge to create or update by its spec's slug; the catalog columns (title,
/// kind, difficulty, tags, points, summary) are the spec's.
#[derive(Debug, Clone)]
pub struct ChallengeUpsert<'a> {
    pub spec: &'a crate::challenge::ChallengeSpec,
    pub readme: &'a str,
    pub files: &'a [FileRecord],
    pub now: i64,
}

/// What an upsert did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upserted {
    Created,
    Updated,
    Unchanged,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub users: i64,
    pub teams: i64,
    pub challenges: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was hit; the string names what is taken.
    #[error("{0} is already taken")]
    Conflict(&'static str),
    #[error("not found")]
    NotFound,
    /// A rule of the domain refused the change (the message says which).
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Backend(#[from] anyhow::Error),
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Users, their sessions, API tokens and failed logins, and teams (every user is
/// in exactly one team: a team of one when solo).
#[async_trait]
pub trait AccountStore: Send + Sync + 'static {
    async fn create_user(
        &self,
        username: &str,
        username_key: &str,
        password_hash: &str,
        role: Role,
        now: i64,
    ) -> StoreResult<User>;
    async fn credentials_by_key(&self, username_key: &str) -> StoreResult<Option<Credentials>>;
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn set_role(&self, id: UserId, role: Role) -> StoreResult<()>;
    /// Replace the password hash; ends every session of the user (API tokens stay)
    /// and forgets their failed logins.
    async fn set_password(&self, id: UserId, password_hash: &str) -> StoreResult<()>;
    /// Banning also ends the user's sessions and revokes their tokens.
    async fn set_banned(&self, id: UserId, banned: bool) -> StoreResult<()>;
    /// Hide a user from the boards (or show them again); see [`User::hidden`].
    async fn set_hidden(&self, id: UserId, hidden: bool) -> StoreResult<()>;
    /// Teams that count on the boards: those with at least one member who is a
    /// competitor, not banned and not hidden. Staff-only, banned and hidden teams
    /// neither score nor lower a flag's value ([`Solve::counted`] is the same rule).
    async fn counted_teams(&self) -> StoreResult<Vec<TeamId>>;
    /// A failed login on account `id` from `client` (a network address, or its /64).
    async fn record_login_failure(&self, id: UserId, client: &str, now: i64) -> StoreResult<()>;
    /// Failed logins on account `id` from `client` since `since`.
    async fn login_failures_since(&self, id: UserId, client: &str, since: i64) -> StoreResult<i64>;
    async fn create_session(&self, session: NewSession<'_>) -> StoreResult<()>;
    /// The live session with this id hash; `None` when unknown, expired, idle
    /// since before `idle_cutoff`, or its user is banned.
    async fn session(
        &self,
        id_hash: &str,
        now: i64,
        idle_cutoff: i64,
    ) -> StoreResult<Option<Session>>;
    async fn touch_session(&self, id_hash: &str, now: i64) -> StoreResult<()>;
    async fn delete_session(&self, id_hash: &str) -> StoreResult<()>;
    async fn create_token(
        &self,
        user: UserId,
        name: &str,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<ApiToken>;
    async fn list_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>>;
    async fn revoke_token(&self, user: UserId, token_id: i64) -> StoreResult<()>;
    async fn user_by_token(&self, token_hash: &str, now: i64) -> StoreResult<Option<User>>;
    /// Move `user` into a new team; their previous team is deleted when it empties.
    async fn create_team(
        &self,
        user: UserId,
        name: &str,
        name_key: &str,
        invite_code: &str,
        now: i64,
    ) -> StoreResult<Team>;
    /// Move `user` into the team with this invite code, if it has fewer than `max_size` members.
    async fn join_team(&self, user: UserId, invite_code: &str, max_size: i64) -> StoreResult<Team>;
    async fn team(&self, id: TeamId) -> StoreResult<Option<Team>>;
    async fn team_members(&self, id: TeamId) -> StoreResult<Vec<User>>;
    async fn list_teams(&self) -> StoreResult<Vec<TeamSummary>>;
    /// Rename a team (`Conflict` when the name is taken, `NotFound` when the team
    /// is gone); the boards show the new name at once.
    async fn rename_team(&self, team: TeamId, name: &str, name_key: &str) -> StoreResult<Team>;
    /// Move every member of team `from` into team `into`, and with them its
    /// submissions, solves, attempts and spent queries (the rule for any team
    /// left empty); `from` is deleted. `Refused` when `into` would hold more
    /// than `max_size` members or the two are one team; `NotFound` when either
    /// is gone. Returns `into`.
    async fn merge_teams(&self, from: TeamId, into: TeamId, max_size: i64) -> StoreResult<Team>;
}

/// Challenges as imported from their bundles: catalog rows, typed specs, the
/// organizer's switches (hidden, revealed) and the imported files.
#[async_trait]
pub trait ChallengeStore: Send + Sync + 'static {
    async fn upsert_challenge(&self, challenge: ChallengeUpsert<'_>) -> StoreResult<Upserted>;
    async fn list_challenges(&self, include_hidden: bool) -> StoreResult<Vec<ChallengeRecord>>;
    /// One challenge by slug, hidden or not (callers apply `core::visibility`).
    async fn challenge_by_slug(&self, slug: &str) -> StoreResult<Option<ChallengeRecord>>;
    /// One challenge by id, hidden or not (a submission's, a job's).
    async fn challenge_by_id(&self, id: ChallengeId) -> StoreResult<Option<ChallengeRecord>>;
    async fn set_challenge_hidden(&self, slug: &str, hidden: bool) -> StoreResult<()>;
    async fn set_challenge_revealed(&self, slug: &str, revealed: bool) -> StoreResult<()>;
    async fn counts(&self) -> StoreResult<Counts>;
    /// Files the spec names (relative path -> sha256), for the evaluator only.
    async fn set_challenge_artifacts(
        &self,
        slug: &str,
        artifacts: &crate::artifacts::Artifacts,
    ) -> StoreResult<()>;
    async fn challenge_artifacts(
        &self,
        challenge: ChallengeId,
    ) -> StoreResult<crate::artifacts::Artifacts>;
    /// Record that challenge `slug` was edited in the browser at `at`, or
    /// (`None`) that its bundle was imported or uploaded whole since.
    async fn set_challenge_edited(&self, slug: &str, at: Option<i64>) -> StoreResult<()>;
    /// When challenge `slug` was last edited in the browser, unless a whole
    /// bundle was imported since (`None` too when there is no such challenge).
    async fn challenge_edited(&self, slug: &str) -> StoreResult<Option<i64>>;
    /// Save a team's write-up of a challenge (replacing its previous one).
    async fn save_writeup(&self, writeup: &Writeup) -> StoreResult<()>;
    /// Every team's write-up of a challenge, oldest first.
    async fn writeups(&self, challenge: ChallengeId) -> StoreResult<Vec<Writeup>>;
}

/// Uploads and the evaluation queue: a submission and its job are written
/// together; workers claim, renew, complete, fail or release jobs under a lease.
#[async_trait]
pub trait SubmissionStore: Send + Sync + 'static {
    /// Insert a queued submission and its job in one transaction.
    async fn create_submission(&self, new: NewSubmission<'_>) -> StoreResult<Submission>;
    async fn submission(&self, id: SubmissionId) -> StoreResult<Option<Submission>>;
    async fn team_submissions(
        &self,
        team: TeamId,
        challenge: ChallengeId,
    ) -> StoreResult<Vec<Submission>>;
    /// Submissions of `team` on `track` of `challenge` created at or after `since`
    /// (rejected and failed ones included: a file that was refused still used a slot).
    /// Every blob a submission points at (the blob sweep keeps these).
    async fn submission_blobs(&self) -> StoreResult<Vec<String>>;
    async fn count_submissions_since(
        &self,
        team: TeamId,
        challenge: ChallengeId,
        track: Track,
        since: i64,
    ) -> StoreResult<i64>;
    /// Submissions of a challenge's track with this status, oldest first.
    async fn challenge_submissions(
        &self,
        challenge: ChallengeId,
        track: Track,
        status: SubmissionStatus,
    ) -> StoreResult<Vec<Submission>>;
    /// The earliest defense of `challenge` with these bytes that is queued,
    /// running or accepted (scored): a second copy would count the same model twice.
    async fn live_defense_with_sha256(
        &self,
        challenge: ChallengeId,
        sha256: &str,
    ) -> StoreResult<Option<Submission>>;
    /// Attack files of one challenge submitted with identical bytes by more than
    /// one team, for organizers to look into.
    async fn identical_attacks(&self) -> StoreResult<Vec<IdenticalAttacks>>;
    /// Submissions matching `filter`, newest first, `limit` from `offset`, and how
    /// many match in all (the organizers' submission list).
    async fn list_submissions(
        &self,
        filter: &SubmissionFilter,
        limit: i64,
        offset: i64,
    ) -> StoreResult<(Vec<Submission>, i64)>;
    /// Claim the oldest runnable job (queued and due, or running with an expired
    /// lease and fewer than `max_attempts` attempts) for `owner` until `lease_until`.
    /// Use the same `max_attempts` as for `fail_job` and `expire_dead_jobs`.
    async fn claim_job(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        max_attempts: i64,
    ) -> StoreResult<Option<ClaimedJob>>;
    /// Extend a lease; `false` when the lease was lost.
    async fn heartbeat(&self, job: JobId, owner: &str, lease_until: i64) -> StoreResult<bool>;
    /// Finish a job: write its cells (duplicates ignored) and the submission's
    /// outcome, fenced by the lease. `Refused` when the lease was lost.
    async fn complete_job(&self, done: JobCompletion<'_>) -> StoreResult<()>;
    /// Finish a battery job: write its cells (duplicates ignored) and its
    /// summary, fenced by the lease. `Refused` when the lease was lost.
    async fn complete_battery(&self, done: BatteryCompletion<'_>) -> StoreResult<()>;
    /// Where the battery against defense `submission` stands.
    async fn battery_state(&self, submission: SubmissionId) -> StoreResult<BatteryState>;
    /// Scoring jobs (not batteries) queued and due at `now`: a running battery
    /// yields to them.
    async fn scoring_jobs_waiting(&self, now: i64) -> StoreResult<i64>;
    /// What produced a submission's result, as recorded when it was scored
    /// (JSON; `None` before provenance was recorded or before it was scored).
    async fn provenance(&self, submission: SubmissionId) -> StoreResult<Option<String>>;
    /// Give a job back after an evaluator error: retried with backoff until
    /// `max_attempts`, then the submission fails with `error`.
    async fn fail_job(
        &self,
        job: JobId,
        owner: &str,
        error: &str,
        now: i64,
        max_attempts: i64,
    ) -> StoreResult<()>;
    /// Put a claimed job back in the queue without counting the attempt (the worker
    /// holding it is shutting down). `Refused` when the lease was lost.
    async fn release_job(&self, job: JobId, owner: &str, now: i64) -> StoreResult<()>;
    /// Jobs whose lease expired after their last attempt: mark them and their submissions failed.
    async fn expire_dead_jobs(&self, now: i64, max_attempts: i64) -> StoreResult<u64>;
    async fn queue_depth(&self) -> StoreResult<i64>;
    /// Jobs counted by their challenge's kind and their state, for metrics:
    /// `(kind, state, count)`.
    async fn job_counts(&self) -> StoreResult<Vec<(String, String, i64)>>;
    /// A worker says it is alive (working or idle); rows a day old are dropped.
    async fn worker_seen(&self, owner: &str, now: i64) -> StoreResult<()>;
    /// The queue at a glance: jobs by state, the oldest queued job, workers seen
    /// since `seen_since`, and the `failed_limit` most recent failed jobs.
    async fn queue_health(&self, seen_since: i64, failed_limit: i64) -> StoreResult<QueueHealth>;
    /// Queue the failed job of `submission` again, attempts reset (an organizer
    /// fixed what made it fail). `NotFound` when it has no failed job.
    async fn retry_job(&self, submission: SubmissionId, now: i64) -> StoreResult<()>;
    /// Take `submission` off every board and matrix for good: `rejected` with
    /// `message` (the team reads it), its cells and scores deleted (the
    /// submissions it faced are summed again), a pending job cancelled (a
    /// worker still scoring it is fenced out). `NotFound` when there is none.
    async fn disqualify(
        &self,
        submission: SubmissionId,
        message: &str,
        now: i64,
    ) -> StoreResult<()>;
    /// Score `submission` again from scratch: its cells and scores are deleted
    /// and its job queued afresh (a worker still scoring it is fenced out, so
    /// it is never scored twice). `Refused` while it is queued already;
    /// `NotFound` when there is none.
    async fn rescore(&self, submission: SubmissionId, now: i64) -> StoreResult<()>;
    /// [`Self::rescore`] every scored, failed or running submission of
    /// `challenge` at once (queued ones will be scored anyway; rejected ones
    /// stay rejected). Returns how many were queued.
    async fn rescore_challenge(&self, challenge: ChallengeId, now: i64) -> StoreResult<u64>;
    /// Make `submission` (scored, of `team`) the one that counts for its track;
    /// `None` goes back to the team's best.
    async fn choose_submission(
        &self,
        team: TeamId,
        challenge: ChallengeId,
        track: Track,
        submission: Option<SubmissionId>,
    ) -> StoreResult<()>;
}

/// Flag attempts and solves (CTFd-style dynamic values are computed from them).
#[async_trait]
pub trait FlagStore: Send + Sync + 'static {
    /// Record a flag attempt; on a correct one, the team's solve (once). Refused
    /// when the team already made `max_wrong_per_minute` wrong attempts in the last minute.
    async fn submit_flag(&self, attempt: FlagAttempt) -> StoreResult<FlagOutcome>;
    /// Solves of a challenge, first first, each marked whether its team counts
    /// ([`Store::counted_teams`]).
    async fn solves(&self, challenge: ChallengeId) -> StoreResult<Vec<Solve>>;
    /// Unlock a hint for a team at `cost`, once: `Ok(false)` when the team had
    /// it already (nothing is charged again). `Refused` when the hint it
    /// requires is not unlocked. Raises the board version.
    async fn unlock_hint(&self, unlock: &HintUnlock) -> StoreResult<bool>;
    /// Every unlock, oldest first (the scoreboard takes their costs off).
    async fn hint_unlocks(&self) -> StoreResult<Vec<HintUnlock>>;
    /// The hint ids `team` unlocked on `challenge`.
    async fn team_hints(&self, team: TeamId, challenge: ChallengeId) -> StoreResult<Vec<i64>>;
}

/// Query budgets of the black-box API: spent in order, refunded on failure.
#[async_trait]
pub trait BudgetStore: Send + Sync + 'static {
    /// Spend queries for each request in order, in one transaction: `Ok(used
    /// after)` for a request that fits its budget, `Err(remaining)` (nothing spent
    /// for it) for one that does not. Concurrent calls never overspend.
    async fn spend_queries(&self, spends: &[QuerySpend<'_>]) -> StoreResult<Vec<Result<i64, i64>>>;
    /// Give back queries spent on requests that were not answered (the model failed).
    async fn refund_queries(
        &self,
        challenge: ChallengeId,
        team: TeamId,
        target: &str,
        n: i64,
    ) -> StoreResult<()>;
    async fn queries_used(
        &self,
        challenge: ChallengeId,
        team: TeamId,
        target: &str,
    ) -> StoreResult<i64>;
}

/// The matrix cells and what the boards read: the maintained standings, the
/// best submissions by score, the board version.
#[async_trait]
pub trait BoardStore: Send + Sync + 'static {
    /// Add cells outside a job (matrix repair); duplicates are ignored.
    async fn insert_cells(
        &self,
        challenge: ChallengeId,
        cells: &[Evaluation],
        now: i64,
    ) -> StoreResult<()>;
    async fn evaluations(&self, challenge: ChallengeId) -> StoreResult<Vec<Evaluation>>;
    /// The cells of one split, in the order they were stored.
    async fn split_evaluations(
        &self,
        challenge: ChallengeId,
        split: Split,
    ) -> StoreResult<Vec<Evaluation>>;
    /// Goes up with every write that changes what a board shows (cells, scores,
    /// choices, solves, who counts, challenges): a cached board older than it is stale.
    async fn board_version(&self) -> StoreResult<i64>;
    /// Each team's counted submission on one track and split, in board order:
    /// equal to `leaderboard::rank` over the track's scored submissions and the
    /// challenge's cells.
    async fn track_standings(
        &self,
        challenge: ChallengeId,
        track: Track,
        split: Split,
    ) -> StoreResult<Vec<crate::leaderboard::Standing>>;
    /// The `limit` best scored submissions of a track on `split` by their
    /// maintained score (then the earlier, then the lower id), and how many are
    /// scored in all: a matrix draws these without reading every cell.
    async fn best_submissions(
        &self,
        challenge: ChallengeId,
        track: Track,
        split: Split,
        limit: usize,
    ) -> StoreResult<(Vec<Submission>, usize)>;
    /// The cells on `split` of the given attackers (`Party::key`s).
    async fn cells_of_attackers(
        &self,
        challenge: ChallengeId,
        split: Split,
        attackers: &[String],
    ) -> StoreResult<Vec<Evaluation>>;
    /// Recompute every maintained standing from the submissions and cells (run
    /// once on a database whose standings were never built; a repair otherwise).
    async fn rebuild_standings(&self) -> StoreResult<()>;
}

/// The event as a whole: announcements, the audit log and its timeline.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    async fn post_announcement(&self, new: NewAnnouncement<'_>) -> StoreResult<Announcement>;
    /// Announcements with an id above `after_id`, oldest first, at most `limit`.
    async fn announcements(&self, after_id: i64, limit: i64) -> StoreResult<Vec<Announcement>>;
    /// The `limit` newest announcements, newest first.
    async fn latest_announcements(&self, limit: i64) -> StoreResult<Vec<Announcement>>;
    /// `NotFound` when there is no such announcement.
    async fn delete_announcement(&self, id: i64) -> StoreResult<()>;
    /// Record an organizer's or admin's action in the audit log.
    async fn record_action(&self, action: AuditAction<'_>) -> StoreResult<()>;
    /// The `limit` most recent actions, newest first.
    async fn audit_log(&self, limit: i64) -> StoreResult<Vec<AuditEntry>>;
    /// The event's start, end and freeze.
    async fn timeline(&self) -> StoreResult<crate::event::Timeline>;
    /// Replace the timeline; raises the board version (a freeze changes what
    /// boards show).
    async fn set_timeline(&self, timeline: &crate::event::Timeline, now: i64) -> StoreResult<()>;
}

/// Everything Riposte persists, one trait per concern; [`SqlStore`] (in the db
/// crate) implements them all on SQLite and PostgreSQL, one conformance suite for
/// both. Callers hold `Arc<dyn Store>` and bring the concerns they use into scope
/// (`use riposte_core::store::prelude::*`).
///
/// [`SqlStore`]: https://docs.rs/riposte-db
pub trait Store:
    AccountStore + ChallengeStore + SubmissionStore + FlagStore + BudgetStore + BoardStore + EventStore
{
}

impl<T> Store for T where
    T: AccountStore
        + ChallengeStore
        + SubmissionStore
        + FlagStore
        + BudgetStore
        + BoardStore
        + EventStore
{
}

/// The store's traits, to call any of its methods on a `dyn Store`.
pub mod prelude {
    pub use super::{
        AccountStore, BoardStore, BudgetStore, ChallengeStore, EventStore, FlagStore, Store,
        SubmissionStore,
    };
}

pub type SubmissionId = i64;
pub type JobId = i64;

/// The two sides of a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Track {
    Attack,
    Defense,
}

impl Track {
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Attack => "attack",
            Track::Defense => "defense",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "attack" => Some(Track::Attack),
            "defense" => Some(Track::Defense),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubmissionStatus {
    Queued,
    Running,
    Scored,
    Rejected,
    Failed,
}

impl SubmissionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SubmissionStatus::Queued => "queued",
            SubmissionStatus::Running => "running",
            SubmissionStatus::Scored => "scored",
            SubmissionStatus::Rejected => "rejected",
            SubmissionStatus::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        [
            Self::Queued,
            Self::Running,
            Self::Scored,
            Self::Rejected,
            Self::Failed,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
    }

    pub fn is_final(self) -> bool {
        matches!(self, Self::Scored | Self::Rejected | Self::Failed)
    }
}

#[derive(Debug, Clone)]
pub struct Submission {
    pub id: SubmissionId,
    pub challenge_id: ChallengeId,
    pub team_id: TeamId,
    pub user_id: UserId,
    pub track: Track,
    pub blob_sha256: String,
    pub filename: String,
    pub size: i64,
    pub status: SubmissionStatus,
    pub message: String,
    pub gate_accuracy: Option<f64>,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    /// What the scorer recorded for the submission page.
    pub details: crate::details::SubmissionDetails,
    /// The team chose this one to count on the leaderboard.
    pub chosen: bool,
    /// Queries the team had spent on the challenge when this was scored (model
    /// extraction: fewer break equal scores).
    pub queries_used: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct NewSubmission<'a> {
    pub challenge_id: ChallengeId,
    pub team_id: TeamId,
    pub user_id: UserId,
    pub track: Track,
    pub blob_sha256: &'a str,
    pub filename: &'a str,
    pub size: i64,
    pub now: i64,
    /// Refuse when the team already has this many submissions on the track since `limit_since`.
    pub limit: i64,
    pub limit_since: i64,
}

#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: JobId,
    pub submission: Submission,
    pub attempts: i64,
    pub kind: JobKind,
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Score a new submission (it waits for this: claimed first).
    Score,
    /// Run the background reference battery against an accepted defense: claimed
    /// only when no scoring job is ready, and cut short when one arrives.
    Battery,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Score => "score",
            JobKind::Battery => "battery",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "score" => Some(JobKind::Score),
            "battery" => Some(JobKind::Battery),
            _ => None,
        }
    }

    /// Claim order: lower first.
    pub fn priority(self) -> i64 {
        match self {
            JobKind::Score => 0,
            JobKind::Battery => 10,
        }
    }
}

/// What the background battery did against one defense.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatterySummary {
    /// The budget: queries per example.
    pub queries_per_example: u32,
    /// Examples attacked (every eval example).
    pub examples: i64,
    /// Queries spent in all.
    pub queries_used: i64,
    /// Examples the defense got wrong after the battery.
    pub fooled: i64,
    pub seconds: f64,
    /// Median L-inf and L2 distance from the clean example of the examples the
    /// battery flipped (0 when it flipped none).
    pub median_linf: f64,
    pub median_l2: f64,
    /// Stopped before the budget was spent because scoring jobs were waiting.
    pub cut_short: bool,
    pub finished_at: i64,
}

/// Where a defense's battery stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum BatteryState {
    /// Not run (the challenge has none, or the defense predates it).
    None,
    Queued,
    Running {
        since: i64,
    },
    Failed {
        error: String,
    },
    Done(BatterySummary),
}

/// How a battery job ended, written atomically with its cells.
#[derive(Debug)]
pub struct BatteryCompletion<'a> {
    pub job: JobId,
    pub owner: &'a str,
    pub challenge_id: ChallengeId,
    pub submission: SubmissionId,
    pub cells: &'a [Evaluation],
    /// `None` when the battery had nothing to do (no battery, or the defense
    /// was no longer scored).
    pub summary: Option<&'a BatterySummary>,
    pub now: i64,
}

/// Who attacked whom in one cell of the matrix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub enum Party {
    /// A participant's submission.
    Submission(SubmissionId),
    /// An organizer target model (defender side).
    Organizer(String),
    /// A built-in reference attack (attacker side).
    Reference(String),
}

impl Party {
    pub fn key(&self) -> String {
        match self {
            Party::Submission(id) => format!("sub:{id}"),
            Party::Organizer(name) => format!("org:{name}"),
            Party::Reference(name) => format!("ref:{name}"),
        }
    }

    pub fn parse(key: &str) -> Option<Self> {
        let (kind, rest) = key.split_once(':')?;
        match kind {
            "sub" => rest.parse().ok().map(Party::Submission),
            "org" => Some(Party::Organizer(rest.to_owned())),
            "ref" => Some(Party::Reference(rest.to_owned())),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Public,
    Private,
}

impl Split {
    pub fn as_str(self) -> &'static str {
        match self {
            Split::Public => "public",
            Split::Private => "private",
        }
    }
}

/// One cell: of `total` inputs of `split`, the attacker fooled the defender on `fooled`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub attacker: Party,
    pub defender: Party,
    pub split: Split,
    pub total: i64,
    pub fooled: i64,
    pub created_at: i64,
    /// Which of the split's examples were fooled (`total` bits; `None` for cells
    /// stored before per-example results were kept). Never sent to clients: the
    /// private split's verdicts would show which examples it holds.
    #[serde(skip)]
    pub examples: Option<crate::examples::ExampleBits>,
}

/// One request's queries, spent from a team's budget for one target.
#[derive(Debug, Clone, Copy)]
pub struct QuerySpend<'a> {
    pub challenge: ChallengeId,
    pub team: TeamId,
    /// The target's budget key (`Party::key`).
    pub target: &'a str,
    pub n: i64,
    pub budget: i64,
}

/// How a job ended, written atomically with its cells.
#[derive(Debug, Clone)]
pub struct JobCompletion<'a> {
    pub job: JobId,
    pub owner: &'a str,
    pub challenge_id: ChallengeId,
    pub submission: SubmissionId,
    pub status: SubmissionStatus,
    pub message: &'a str,
    pub gate_accuracy: Option<f64>,
    pub details: &'a crate::details::SubmissionDetails,
    pub cells: &'a [Evaluation],
    pub queries_used: Option<i64>,
    /// What produced the result (JSON, see `riposte_eval::provenance`).
    pub provenance: &'a str,
    /// Queue the background battery against this (accepted) defense.
    pub queue_battery: bool,
    pub now: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct FlagAttempt {
    pub challenge_id: ChallengeId,
    pub team_id: TeamId,
    pub user_id: UserId,
    pub correct: bool,
    pub now: i64,
    pub max_wrong_per_minute: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagOutcome {
    /// This attempt created the team's solve (false for a repeat or a wrong flag).
    pub newly_solved: bool,
    /// Counted solves of the challenge ([`Solve::counted`]), this one included
    /// when it counts.
    pub solves: i64,
    /// The team's place among counted solvers (1 = first blood), when it has
    /// solved and counts.
    pub place: Option<i64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Solve {
    pub team_id: TeamId,
    pub user_id: UserId,
    pub created_at: i64,
    /// The team counts ([`Store::counted_teams`]): only counted solves lower the
    /// value and earn points. Computed when read, so banning or hiding a solver
    /// raises the value again.
    pub counted: bool,
}

/// A team's own write-up of a challenge (markdown).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Writeup {
    pub challenge_id: ChallengeId,
    pub team_id: TeamId,
    pub user_id: UserId,
    pub body: String,
    pub updated_at: i64,
}

/// A hint a team unlocked (or asks to): who, which, at what cost, when.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HintUnlock {
    pub challenge_id: ChallengeId,
    pub team_id: TeamId,
    pub user_id: UserId,
    /// 1, 2, ... in the bundle's order.
    pub hint_id: i64,
    pub cost: i64,
    pub created_at: i64,
    /// The hint that must be unlocked first (asking only; not stored).
    #[serde(skip)]
    pub requires: Option<i64>,
}

/// Byte-identical attack files of one challenge from different teams.
#[derive(Debug, Clone, Serialize)]
pub struct IdenticalAttacks {
    pub challenge_id: ChallengeId,
    pub sha256: String,
    /// (submission, team), oldest first.
    pub submissions: Vec<(SubmissionId, TeamId)>,
}

/// An announcement to the whole event (markdown, rendered sanitized).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Announcement {
    pub id: i64,
    pub author_id: UserId,
    /// The author's username when read.
    pub author: String,
    pub title: String,
    pub body: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy)]
pub struct NewAnnouncement<'a> {
    pub author_id: UserId,
    pub title: &'a str,
    pub body: &'a str,
    pub now: i64,
}

/// The evaluation queue at a glance (the admin's queue page).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct QueueHealth {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
    /// When the oldest queued job was queued.
    pub oldest_queued_at: Option<i64>,
    /// Workers seen recently: owner and when, most recent first.
    pub workers: Vec<(String, i64)>,
    /// The most recent failed jobs, newest first.
    pub failed_jobs: Vec<FailedJob>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedJob {
    pub job_id: JobId,
    pub submission_id: SubmissionId,
    pub challenge_id: ChallengeId,
    pub team_id: TeamId,
    pub attempts: i64,
    pub last_error: String,
    pub created_at: i64,
}

/// One action for the audit log: `action` is a stable name ("role.set"),
/// `detail` says what it was done to, for a person to read.
#[derive(Debug, Clone, Copy)]
pub struct AuditAction<'a> {
    pub actor_id: UserId,
    pub action: &'a str,
    pub detail: &'a str,
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: UserId,
    /// The actor's username when read.
    pub actor: String,
    pub action: String,
    pub detail: String,
    pub created_at: i64,
}

/// Which submissions an organizer lists (`None`: any).
#[derive(Debug, Clone, Default)]
pub struct SubmissionFilter {
    pub challenge: Option<ChallengeId>,
    pub track: Option<Track>,
    pub team: Option<TeamId>,
    pub status: Option<SubmissionStatus>,
}
