//! What the boards serve, built once per change ([`crate::board_cache`]).
//!
//! - The **scoreboard** is built from the maintained standings
//!   (`Store::track_standings`: one row per team and track) and the flag solves,
//!   so its cost follows the number of teams, not of submissions.
//! - The **history** (score over time: the JSON's `history` and `history.svg`)
//!   replays every cell; it is built in the background, at most a fixed share
//!   of a core ([`HISTORY_REST`]), and served as last built meanwhile.
//! - A challenge's **matrix** is built per challenge, drawn bounded (the best
//!   rows and columns).
//!
//! Every build's CPU work runs on the blocking pool ([`board_cache::compute`]).

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use riposte_core::challenge::ChallengeSpec;
use riposte_core::leaderboard::{EventScore, FlagStanding, PartKind, TrackStanding};
use riposte_core::store::{ChallengeRecord, Store, StoreError, TeamId};

use super::boards::{
    CHART_TEAMS, EventInputs, PartRow, ScoreRow, chart_svg, event_inputs, matrix_svg_text,
    tracks_of,
};
use super::stored_spec;
use super::submissions::shown_split;
use crate::board_cache::{self, BoardKey, Slot, Slots};
use crate::startup::AppState;
use crate::view;

/// How long a request waits for a board being rebuilt before it is served the
/// previous one.
const PATIENCE: Duration = Duration::from_millis(1_000);
/// The history rests this many times its build time between builds.
const HISTORY_REST: u32 = 3;

/// Every cached board of one process.
pub struct BoardCaches {
    challenges: Arc<Slot<Listed>>,
    scoreboard: Arc<Slot<Scoreboard>>,
    history: Arc<Slot<History>>,
    matrices: Slots<Matrix>,
}

impl Default for BoardCaches {
    fn default() -> Self {
        Self {
            challenges: Arc::default(),
            scoreboard: Arc::default(),
            history: Arc::new(Slot::resting(HISTORY_REST)),
            matrices: Slots::default(),
        }
    }
}

/// The listed challenges with their specs (a stored spec that does not parse
/// is left out and logged).
pub struct Listed {
    pub challenges: Vec<(ChallengeRecord, ChallengeSpec)>,
}

/// The event scoreboard as built for one key.
pub struct Scoreboard {
    pub key: BoardKey,
    pub standings: Vec<EventScore>,
    /// The page's rows, in rank order.
    pub rows: Vec<ScoreRow>,
    /// Each row as the API's JSON object, without its `history`, in rank order.
    pub json: Vec<String>,
    /// Rank index by team.
    pub index: HashMap<TeamId, usize>,
}

/// The score-over-time of every counted team, as built for one key.
pub struct History {
    pub key: BoardKey,
    /// Each team's steps as a JSON array of `{"at", "score"}`.
    pub json: HashMap<TeamId, String>,
    /// `history.svg`: the top teams' steps.
    pub svg: Bytes,
}

/// A challenge's matrix drawing as built for one key.
pub struct Matrix {
    pub key: BoardKey,
    pub svg: Bytes,
}

/// The key of the boards now: the store's board version and which split each
/// listed track shows at this moment.
pub async fn board_key(state: &AppState) -> Result<(BoardKey, Arc<Listed>), StoreError> {
    let version = state.store.board_version().await?;
    let store = state.store.clone();
    let listed = state
        .boards
        .challenges
        .get(BoardKey { version, phase: 0 }, PATIENCE, move || {
            list(store)
        })
        .await?;
    let now = state.clock.now();
    let mut phase = std::collections::hash_map::DefaultHasher::new();
    for (record, spec) in &listed.challenges {
        for track in tracks_of(spec) {
            (record.id, track, shown_split(record, spec, track, now)).hash(&mut phase);
        }
    }
    Ok((
        BoardKey {
            version,
            phase: phase.finish(),
        },
        listed,
    ))
}

async fn list(store: Arc<dyn Store>) -> Result<Listed, StoreError> {
    let challenges = store
        .list_challenges(false)
        .await?
        .into_iter()
        .filter_map(|record| match stored_spec(&record) {
            Ok(spec) => Some((record, spec)),
            Err(e) => {
                tracing::error!(error = ?e, slug = %record.slug, "challenge left off the boards");
                None
            }
        })
        .collect();
    Ok(Listed { challenges })
}

/// The scoreboard for `key`.
pub async fn scoreboard(
    state: &AppState,
    key: BoardKey,
    listed: Arc<Listed>,
) -> Result<Arc<Scoreboard>, StoreError> {
    let store = state.store.clone();
    let now = state.clock.now();
    state
        .boards
        .scoreboard
        .get(key, PATIENCE, move || {
            build_scoreboard(store, listed, key, now)
        })
        .await
}

async fn build_scoreboard(
    store: Arc<dyn Store>,
    listed: Arc<Listed>,
    key: BoardKey,
    now: i64,
) -> Result<Scoreboard, StoreError> {
    let mut tracks = Vec::new();
    let mut flags = Vec::new();
    for (record, spec) in &listed.challenges {
        if let Some(flag) = &spec.flag {
            let solves = store.solves(record.id).await?;
            flags.push(FlagStanding::new(&record.slug, flag, &solves));
        }
        for track in tracks_of(spec) {
            let split = shown_split(record, spec, track, now);
            tracks.push(TrackStanding {
                challenge: record.slug.clone(),
                track,
                points: spec.points,
                standings: store.track_standings(record.id, track, split).await?,
            });
        }
    }
    let counted: HashSet<TeamId> = store.counted_teams().await?.into_iter().collect();
    let names = names(&*store).await?;
    board_cache::compute(move || {
        let standings = riposte_core::leaderboard::event_scores(&tracks, &flags, &counted);
        let name = |team: &TeamId| names.get(team).cloned().unwrap_or_default();
        let rows = standings
            .iter()
            .enumerate()
            .map(|(i, t)| ScoreRow {
                rank: i + 1,
                team: name(&t.team_id),
                score: format!("{:.2}", t.points),
                parts: t
                    .parts
                    .iter()
                    .map(|p| PartRow {
                        challenge: p.challenge.clone(),
                        kind: p.kind.as_str(),
                        detail: match p.kind {
                            PartKind::Flag => "solved".to_owned(),
                            _ => format!("{:.4} of best {:.4}", p.score, p.best),
                        },
                        points: format!("{:.2}", p.points),
                    })
                    .collect(),
                reached: view::datetime(t.reached_at),
            })
            .collect();
        let json = standings
            .iter()
            .enumerate()
            .map(|(i, t)| {
                serde_json::json!({
                    "rank": i + 1,
                    "team": name(&t.team_id),
                    "score": t.points,
                    "reached_at": view::datetime(t.reached_at),
                    "parts": t.parts,
                })
                .to_string()
            })
            .collect();
        let index = standings
            .iter()
            .enumerate()
            .map(|(i, t)| (t.team_id, i))
            .collect();
        Scoreboard {
            key,
            standings,
            rows,
            json,
            index,
        }
    })
    .await
}

/// The history for `key` (or the last one built, while it rests or rebuilds).
pub async fn history(
    state: &AppState,
    key: BoardKey,
    listed: Arc<Listed>,
) -> Result<Arc<History>, StoreError> {
    let store = state.store.clone();
    let now = state.clock.now();
    state
        .boards
        .history
        .get(key, PATIENCE, move || {
            build_history(store, listed, key, now)
        })
        .await
}

async fn build_history(
    store: Arc<dyn Store>,
    listed: Arc<Listed>,
    key: BoardKey,
    now: i64,
) -> Result<History, StoreError> {
    let inputs: EventInputs = event_inputs(&*store, &listed, now).await?;
    let names = names(&*store).await?;
    board_cache::compute(move || {
        let steps = inputs.history();
        let top: Vec<(String, Vec<(i64, f64)>)> = inputs
            .scoreboard()
            .into_iter()
            .take(CHART_TEAMS)
            .map(|t| {
                (
                    names.get(&t.team_id).cloned().unwrap_or_default(),
                    steps.get(&t.team_id).cloned().unwrap_or_default(),
                )
            })
            .collect();
        let svg = Bytes::from(chart_svg(top, now));
        let json = steps
            .into_iter()
            .map(|(team, steps)| {
                let points: Vec<serde_json::Value> = steps
                    .into_iter()
                    .map(|(at, score)| {
                        serde_json::json!({ "at": view::datetime(at), "score": score })
                    })
                    .collect();
                (team, serde_json::Value::from(points).to_string())
            })
            .collect();
        History { key, json, svg }
    })
    .await
}

/// The matrix drawing of a listed challenge for `key`.
pub async fn matrix(
    state: &AppState,
    key: BoardKey,
    record: ChallengeRecord,
    spec: ChallengeSpec,
) -> Result<Arc<Matrix>, StoreError> {
    let store = state.store.clone();
    let now = state.clock.now();
    state
        .boards
        .matrices
        .slot(&record.slug)
        .get(key, PATIENCE, move || async move {
            let drawing = matrix_svg_text(store, record, spec, now).await?;
            Ok(Matrix {
                key,
                svg: Bytes::from(drawing),
            })
        })
        .await
}

async fn names(store: &dyn Store) -> Result<HashMap<TeamId, String>, StoreError> {
    Ok(store
        .list_teams()
        .await?
        .into_iter()
        .map(|t| (t.team.id, t.team.name))
        .collect())
}
