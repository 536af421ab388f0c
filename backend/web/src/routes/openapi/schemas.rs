//! Shapes for the API description only: the answers that handlers build with
//! `serde_json::json!`, and the `riposte-core` types the API shows (described
//! here so that core stays free of web concerns). None of these is ever
//! constructed; each names the handler whose JSON it describes, and
//! `tests/web/openapi.rs` checks live answers against them.

use utoipa::ToSchema;

use super::super::bundles::ProblemView;
use super::super::submissions::ResultRow;

// ---------------------------------------------------------------------------
// Errors (`crate::error::ApiError`)

/// Every error of the API: a stable machine-readable `code` and a message for
/// a person.
#[derive(ToSchema)]
#[schema(examples(json!({"error": {"code": "not_found", "message": "challenge \"nope\" not found"}})))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    /// Stable across releases: `invalid_input`, `unauthorized`, `forbidden`,
    /// `not_found`, `conflict`, `rate_limited`, `closed`, `locked`,
    /// `too_large`, `internal`, ... (each operation lists its own).
    pub code: String,
    /// What was wrong and what was expected.
    pub message: String,
}

/// A bundle or an edit that fails its checks (`422`): the error, and every
/// problem with its file, field and line. Nothing was imported or changed.
#[derive(ToSchema)]
pub struct ProblemsError {
    pub error: ErrorDetail,
    /// Every problem, when the bundle's checks failed (an edit's field that does
    /// not parse has none).
    #[schema(nullable = false)]
    pub problems: Option<Vec<ProblemView>>,
}

// ---------------------------------------------------------------------------
// Core types as the API writes them

/// The threat family a challenge teaches and scores.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum ChallengeKind {
    Evasion,
    Extraction,
    Membership,
    Secret,
    Poisoning,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Difficulty {
    Easy,
    Medium,
    Hard,
}

/// What a user may do.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Role {
    Competitor,
    Organizer,
    Admin,
}

/// The two sides of a challenge.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Track {
    Attack,
    Defense,
}

/// Which part of the hidden evaluation data a score is on: the public part is
/// shown during a phase, the private part decides the final ranking.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Split {
    Public,
    Private,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum SubmissionStatus {
    Queued,
    Running,
    Scored,
    Rejected,
    Failed,
}

/// The Lp norm an attack's perturbation is measured in.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Norm {
    L0,
    L1,
    L2,
    Linf,
}

/// Element type of a challenge's inputs.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Dtype {
    Float32,
    Uint8,
}

/// What one example looks like and what the model answers: a model takes
/// `[N, ..input_shape]` and answers `[N, classes]`.
#[derive(ToSchema)]
pub struct TaskSpec {
    /// One example's shape, without the batch dimension.
    pub input_shape: Vec<u64>,
    pub dtype: Dtype,
    /// Inclusive `[low, high]` every input value must lie in.
    #[schema(min_items = 2, max_items = 2)]
    pub value_range: Vec<f32>,
    pub classes: u64,
}

/// What an attacker may do.
#[derive(ToSchema)]
pub struct ThreatModel {
    pub norm: Option<Norm>,
    pub epsilon: Option<f64>,
    pub targeted: bool,
}

/// What a part of a team's event score comes from.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum PartKind {
    Attack,
    Defense,
    Flag,
    /// Hints unlocked on the challenge: their costs, taken off.
    Hint,
}

/// One challenge's (track's) share of a team's event score.
#[derive(ToSchema)]
pub struct EventPart {
    /// The challenge's slug.
    pub challenge: String,
    pub kind: PartKind,
    /// The track score (sum of shares) or, for a flag, its current value.
    pub score: f64,
    /// The best counted team's track score (the flag's value for a flag).
    pub best: f64,
    /// What the part adds to the event score.
    pub points: f64,
    /// The counted submission (tracks only).
    pub submission: Option<i64>,
}

// ---------------------------------------------------------------------------
// Shared small answers

/// A file, uploaded or downloaded as raw bytes.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(Vec<u8>);

/// A team by id and name.
#[derive(ToSchema)]
pub struct TeamRef {
    pub id: i64,
    pub name: String,
}

/// A submission's id and the status it has now.
#[derive(ToSchema)]
pub struct SubmissionState {
    pub id: i64,
    pub status: SubmissionStatus,
}

// ---------------------------------------------------------------------------
// Accounts (`routes::api`)

/// `POST /api/v1/auth/token`.
#[derive(ToSchema)]
pub struct TokenAnswer {
    /// Send it as `Authorization: Bearer <token>`; starts with `rpt_`.
    pub token: String,
}

/// `GET /api/v1/me`.
#[derive(ToSchema)]
pub struct Me {
    pub id: i64,
    pub username: String,
    pub role: Role,
    /// Every user is in a team once they have one (a team of one at first).
    pub team: Option<TeamRef>,
}

// ---------------------------------------------------------------------------
// Submissions (`routes::submissions`)

/// An upload: `multipart/form-data`.
#[derive(ToSchema)]
pub struct SubmissionUpload {
    /// `attack` or `defense` (also accepted as `?track=`).
    #[schema(nullable = false)]
    pub track: Option<Track>,
    /// The attack file (`.npy`, `.npz`, `.png`, CSV scores, as the challenge
    /// asks) or, on the defense track, an ONNX model.
    #[schema(value_type = String, format = Binary)]
    pub file: Vec<u8>,
}

/// `GET /api/v1/submissions/{id}`.
#[derive(ToSchema)]
pub struct SubmissionDetail {
    pub id: i64,
    /// The challenge's slug.
    pub challenge: String,
    pub track: Track,
    pub status: SubmissionStatus,
    /// Why it was rejected or failed, or what the scorer noted (may be empty).
    pub message: String,
    pub filename: String,
    pub size: i64,
    pub sha256: String,
    /// RFC 3339.
    pub created_at: String,
    /// The split the results are shown on.
    pub split: Split,
    /// Whether the team chose it to count (otherwise its best counts).
    pub chosen: bool,
    /// A defense's clean accuracy on the gate set.
    #[schema(nullable = false)]
    pub gate_accuracy: Option<f64>,
    /// Once scored: per opponent, fooled (attack) or still correct (defense).
    #[schema(nullable = false)]
    pub results: Option<Vec<ResultRow>>,
    /// Once scored, for extraction and membership: the scorer's named numbers.
    #[schema(nullable = false)]
    pub metrics: Option<std::collections::BTreeMap<String, f64>>,
    /// Queries the team had spent when it was scored (extraction).
    #[schema(nullable = false)]
    pub queries_used: Option<i64>,
    /// A scored evasion attack, where every cell it needs has per-example results: the
    /// examples it fooled that no other attacker in the matrix fooled against the
    /// same defender, on the split shown.
    #[schema(nullable = false)]
    pub only_this_attack_breaks: Option<OnlyBreaks>,
}

/// Examples only one attack breaks.
#[derive(ToSchema)]
pub struct OnlyBreaks {
    /// Summed over the defenders it faced.
    pub examples: u64,
    /// `[defender, examples]` pairs (`sub:ID` or `org:NAME`), in key order.
    #[schema(value_type = Vec<Vec<serde_json::Value>>)]
    pub by_defender: Vec<(String, u64)>,
}

/// `POST /api/v1/submissions/{id}/choose`.
#[derive(ToSchema)]
pub struct Chosen {
    pub id: i64,
    pub chosen: bool,
}

/// `GET /api/v1/challenges/{slug}/leaderboard`.
#[derive(ToSchema)]
pub struct Leaderboard {
    pub track: Track,
    pub split: Split,
    /// The rule that ranks the board: `worst_case` or `sum` (attack boards: always `sum`).
    pub rank_by: String,
    pub rows: Vec<LeaderboardRow>,
    /// When the boards froze (RFC 3339), while competitors see them frozen.
    pub frozen_at: Option<String>,
}

#[derive(ToSchema)]
pub struct LeaderboardRow {
    /// From 1.
    pub rank: u64,
    /// The team's name.
    pub team: String,
    /// The submission that counts.
    pub submission: i64,
    /// What the board ranks by (`rank_by`).
    pub score: f64,
    /// The sum over opponents of the shares it scored (fooled for an attack, kept for a defense).
    pub sum: f64,
    /// A defense's worst-case robust accuracy: the share of the split's examples it gets right under every attack it faced; null on attack boards and where unknown.
    pub worst_case: Option<f64>,
    /// Opponents it faced.
    pub opponents: u64,
    /// Queries spent when scored (model extraction's tie-breaker).
    pub queries_used: Option<i64>,
    /// RFC 3339: when the score was reached (ties go to the earlier).
    pub reached_at: String,
}

// ---------------------------------------------------------------------------
// Boards (`routes::boards`)

/// `GET /api/v1/scoreboard`: a page of the event scoreboard.
#[derive(ToSchema)]
pub struct Scoreboard {
    pub rows: Vec<ScoreboardRow>,
    /// Ranked teams in all.
    pub total: u64,
    pub limit: u64,
    pub offset: u64,
    /// When the boards froze (RFC 3339), while competitors see them frozen.
    pub frozen_at: Option<String>,
}

#[derive(ToSchema)]
pub struct ScoreboardRow {
    pub rank: u64,
    pub team: String,
    /// The event score: the sum of the parts' points.
    pub score: f64,
    /// RFC 3339: when the team's counted results were all in (the tie-breaker).
    pub reached_at: String,
    pub parts: Vec<EventPart>,
    /// The team's event score over time.
    pub history: Vec<HistoryPoint>,
}

#[derive(ToSchema)]
pub struct HistoryPoint {
    /// RFC 3339.
    pub at: String,
    pub score: f64,
}

// ---------------------------------------------------------------------------
// Flags and write-ups (`routes::flags`)

/// `POST /api/v1/challenges/{slug}/flag`.
#[derive(ToSchema)]
pub struct FlagVerdict {
    pub correct: bool,
    /// The flag's value now (every solver holds it).
    pub points: u64,
    /// Whether this was the challenge's first solve.
    pub first_blood: bool,
    /// Counted solves so far.
    pub solves: u64,
}

/// `GET /api/v1/challenges/{slug}/writeups`.
#[derive(ToSchema)]
pub struct Writeups {
    /// Whether the challenge's results are published (write-ups with them).
    pub published: bool,
    /// The organizers' write-up (markdown), once published.
    pub solution: Option<String>,
    pub writeups: Vec<Writeup>,
    /// Your team's own write-up (markdown), if it saved one.
    pub own: Option<String>,
}

#[derive(ToSchema)]
pub struct Writeup {
    /// The team's name.
    pub team: String,
    /// Markdown.
    pub body: String,
    /// RFC 3339.
    pub updated_at: String,
}

/// `PUT /api/v1/challenges/{slug}/writeup`.
#[derive(ToSchema)]
pub struct WriteupSaved {
    /// The challenge's slug.
    pub challenge: String,
    /// RFC 3339.
    pub updated_at: String,
}

// ---------------------------------------------------------------------------
// Black-box queries (`routes::query`)

/// A query's JSON body: examples for a classifier, or a prompt for a text
/// model (`output = "completion"` challenges).
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
pub enum QueryRequest {
    Examples(QueryExamples),
    Prompt(QueryPrompt),
}

#[derive(ToSchema, serde::Serialize)]
pub struct QueryExamples {
    /// One entry per example, nested arrays in the task's input shape (or
    /// flat), 1 to the challenge's `max_batch` examples.
    #[schema(value_type = Vec<Value>)]
    pub inputs: Vec<serde_json::Value>,
    /// `mlp` (an organizer target) or `defense:<submission id>`; overrides `?target=`.
    pub target: Option<String>,
}

#[derive(ToSchema, serde::Serialize)]
pub struct QueryPrompt {
    /// At most 2,000 characters, each known to the model.
    pub prompt: String,
    /// Characters to answer, 1 to the challenge's limit (default: the limit).
    pub max_chars: Option<u64>,
    pub target: Option<String>,
}

/// A query's answer, in the challenge's output mode.
#[derive(ToSchema, serde::Serialize)]
#[serde(untagged)]
pub enum QueryAnswer {
    Predictions(Predictions),
    Completion(Completion),
}

#[derive(ToSchema, serde::Serialize)]
pub struct Predictions {
    /// The predicted class of each example.
    pub labels: Vec<u64>,
    /// `top1` mode: the predicted class's probability, per example.
    #[schema(nullable = false)]
    pub confidences: Option<Vec<f64>>,
    /// `probabilities` mode: every class's probability, per example.
    #[schema(nullable = false)]
    pub probabilities: Option<Vec<Vec<f64>>>,
    /// The team's queries spent on this target, this request included.
    pub queries_used: i64,
    /// What is left of the team's budget for this target (also in
    /// `X-Queries-Remaining`).
    pub queries_remaining: i64,
}

#[derive(ToSchema, serde::Serialize)]
pub struct Completion {
    pub prompt: String,
    /// The model's greedy continuation (up to a newline or `max_chars`).
    pub completion: String,
    pub queries_used: i64,
    pub queries_remaining: i64,
}

/// A query body as a NumPy `.npy` file: `[N, ..input_shape]` in the task's
/// dtype (`Content-Type: application/x-npy`).
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct NpyArray(Vec<u8>);

/// `POST /api/v1/challenges/{slug}/playground`.
#[derive(ToSchema)]
pub struct PlaygroundAnswer {
    pub targets: Vec<PlaygroundTarget>,
    /// Playground queries left (per target, from 300).
    pub remaining: i64,
}

#[derive(ToSchema)]
pub struct PlaygroundTarget {
    pub name: String,
    /// One probability per class, rounded to 4 decimals.
    pub probabilities: Vec<f64>,
}

// ---------------------------------------------------------------------------
// The event (`routes::event`)

/// `GET /api/v1/event` and the admin's changes: each moment RFC 3339 or null.
#[derive(ToSchema)]
pub struct Timeline {
    pub starts_at: Option<String>,
    pub ends_at: Option<String>,
    /// From this moment competitors see the boards as they stood then.
    pub freeze_at: Option<String>,
    /// Whether competitors' boards are frozen now.
    pub frozen: bool,
    /// Whether competitors' uploads, flags and queries are taken now.
    pub accepting_submissions: bool,
    /// The server's time (RFC 3339).
    pub now: String,
}

// ---------------------------------------------------------------------------
// Organizers (`routes::bundles`, `editing`, `moderation`, `queue`, `admin`,
// `backups`)

/// `POST /api/v1/admin/challenges`: `multipart/form-data`.
#[derive(ToSchema)]
pub struct BundleUpload {
    /// A `.zip` or `.tar.gz` of the challenge folder, at most 512 MiB.
    #[schema(value_type = String, format = Binary)]
    pub bundle: Vec<u8>,
}

/// A bundle imported (`201`).
#[derive(ToSchema)]
pub struct BundleImported {
    pub slug: String,
    /// `created`, `updated` or `unchanged`.
    pub status: String,
    /// Always empty here (a refused bundle answers `422`).
    pub problems: Vec<ProblemView>,
    /// What scores changed while submissions were scored under the old version.
    pub rescore_suggested: bool,
    pub scored_before: u64,
}

/// `PATCH /api/v1/admin/challenges/{slug}`.
#[derive(ToSchema)]
pub struct Edited {
    pub slug: String,
    /// `updated` or `unchanged`.
    pub status: String,
    pub hidden: bool,
    /// Always empty here (a refused edit answers `422`).
    pub problems: Vec<ProblemView>,
}

/// `POST /api/v1/admin/challenges/{slug}/rescore`.
#[derive(ToSchema)]
pub struct ChallengeRescored {
    pub challenge: String,
    /// Submissions queued to be scored again.
    pub queued: u64,
}

/// `GET /api/v1/admin/submissions`: a page of submissions, newest first.
#[derive(ToSchema)]
pub struct SubmissionList {
    /// Submissions that match, in all.
    pub total: i64,
    pub limit: i64,
    pub offset: i64,
    pub submissions: Vec<SubmissionListRow>,
}

#[derive(ToSchema)]
pub struct SubmissionListRow {
    pub id: i64,
    pub challenge_id: i64,
    pub team_id: i64,
    pub user_id: i64,
    pub track: Track,
    pub status: SubmissionStatus,
    pub filename: String,
    pub sha256: String,
    pub size: i64,
    /// May be empty.
    pub message: String,
    /// RFC 3339.
    pub created_at: String,
}

/// `GET /api/v1/admin/queue`.
#[derive(ToSchema)]
pub struct QueueHealth {
    pub queued: i64,
    pub running: i64,
    pub failed: i64,
    /// How long the oldest queued job has waited, if any is queued.
    pub oldest_queued_age_seconds: Option<i64>,
    /// Workers seen in the last minute, most recent first.
    pub workers: Vec<WorkerSeen>,
    /// The most recent failed jobs, newest first.
    pub failed_jobs: Vec<FailedJob>,
}

#[derive(ToSchema)]
pub struct WorkerSeen {
    pub owner: String,
    /// RFC 3339.
    pub last_seen: String,
}

#[derive(ToSchema)]
pub struct FailedJob {
    pub job_id: i64,
    pub submission_id: i64,
    pub challenge_id: i64,
    pub team_id: i64,
    pub attempts: i64,
    pub last_error: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// `POST /api/v1/admin/users/{id}/password`: shown once, never stored.
#[derive(ToSchema)]
pub struct PasswordReset {
    pub username: String,
    /// A one-time password (20 random symbols).
    pub password: String,
}

/// `GET /api/v1/admin/audit`.
#[derive(ToSchema)]
pub struct AuditLog {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
}

#[derive(ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    pub actor_id: i64,
    /// The actor's username when read.
    pub actor: String,
    /// A stable name: `role.set`, `team.merge`, ...
    pub action: String,
    /// What it was done to.
    pub detail: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// `POST /api/v1/admin/teams/{id}/disband`.
#[derive(ToSchema)]
pub struct Disbanded {
    pub id: i64,
    /// Members who now compete alone.
    pub members: u64,
}

/// `POST /api/v1/admin/restore`: `multipart/form-data`.
#[derive(ToSchema)]
pub struct RestoreUpload {
    /// The archive `riposte backup` or `GET /api/v1/admin/backup` wrote (up to 16 GiB).
    #[schema(value_type = String, format = Binary)]
    pub backup: Vec<u8>,
    /// Must be `replace`: a restore replaces everything this server holds.
    pub confirm: String,
}

/// What a restore loaded.
#[derive(ToSchema)]
pub struct Restored {
    pub rows: u64,
    pub tables: u64,
    pub blobs: u64,
}

/// `GET /api/v1/admin/export?format=json`: one object per row, keyed by column
/// (the columns depend on `what`).
#[derive(ToSchema)]
#[schema(value_type = Vec<Object>)]
pub struct ExportRows(Vec<serde_json::Value>);
