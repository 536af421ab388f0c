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
use riposte_core::history::TrackBoard;
use riposte_core::leaderboard::{
    self, EventScore, FlagStanding, PartKind, Standing, TrackStanding,
};
use riposte_core::store::{ChallengeRecord, Split, Store, StoreError, TeamId, Track};

use super::boards::{
    CHART_TEAMS, EventInputs, PartRow, ScoreRow, SolveRow, chart_svg, event_inputs,
    matrix_svg_text, solve_rows, tracks_of,
};
use super::submissions::{BoardRow, shown_split};
use super::team_names_in;
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
    version: Arc<board_cache::FreshRead>,
    challenges: Arc<Slot<Listed>>,
    scoreboard: Arc<Slot<Scoreboard>>,
    history: Arc<Slot<History>>,
    matrices: Slots<Matrix>,
    leaderboards: Slots<ChallengeBoard>,
    /// Frozen boards, one slot per freeze moment.
    frozen: Slots<Frozen>,
}

impl Default for BoardCaches {
    fn default() -> Self {
        Self {
            version: Arc::default(),
            challenges: Arc::default(),
            scoreboard: Arc::default(),
            history: Arc::new(Slot::resting(HISTORY_REST)),
            matrices: Slots::resting(HISTORY_REST),
            leaderboards: Slots::default(),
            frozen: Slots::resting(HISTORY_REST),
        }
    }
}

impl BoardCaches {
    /// Forget every board built (after a restore replaced what they show).
    pub fn forget_all(&self) {
        self.challenges.forget();
        self.scoreboard.forget();
        self.history.forget();
        self.matrices.forget();
        self.leaderboards.forget();
        self.frozen.forget();
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
    /// API pages rendered from this board, by (history, limit, offset).
    pages: std::sync::Mutex<HashMap<(BoardKey, usize, usize), Bytes>>,
}

/// API pages one scoreboard build keeps rendered (the most asked are the first).
const KEPT_PAGES: usize = 32;

impl Scoreboard {
    /// The API page for `page` (history key, limit, offset), rendered once by
    /// `render` and then shared.
    pub fn page(&self, page: (BoardKey, usize, usize), render: impl FnOnce() -> Bytes) -> Bytes {
        if let Some(body) = self.lock_pages().get(&page) {
            return body.clone();
        }
        let body = render();
        let mut pages = self.lock_pages();
        if pages.len() >= KEPT_PAGES {
            pages.clear();
        }
        pages.insert(page, body.clone());
        body
    }

    fn lock_pages(&self) -> std::sync::MutexGuard<'_, HashMap<(BoardKey, usize, usize), Bytes>> {
        self.pages.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The score-over-time of every counted team, as built for one key.
pub struct History {
    pub key: BoardKey,
    /// Each team's steps as a JSON array of `{"at", "score"}`.
    pub json: HashMap<TeamId, String>,
    /// `history.svg`: the top teams' steps.
    pub svg: Bytes,
}

/// A challenge's matrix drawings as built for one key.
pub struct Matrix {
    pub key: BoardKey,
    /// `matrix.svg`.
    pub svg: Bytes,
    /// The smaller drawing inlined on the leaderboard page.
    pub inline: String,
}

/// The key of the boards now: the store's board version and which split each
/// listed track shows at this moment.
pub async fn board_key(state: &AppState) -> Result<(BoardKey, Arc<Listed>), StoreError> {
    // One read serves every request that arrived before it started.
    let version_store = state.store.clone();
    let version = state
        .boards
        .version
        .get(std::time::Instant::now(), move || async move {
            version_store.board_version().await
        })
        .await?;
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
    state.timeline.get().frozen_at(now).hash(&mut phase);
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

impl Listed {
    /// A listed challenge by slug (hidden ones are not listed: callers fall
    /// back to the store, which also answers for organizers).
    pub fn get(&self, slug: &str) -> Option<&(ChallengeRecord, ChallengeSpec)> {
        self.challenges.iter().find(|(r, _)| r.slug == slug)
    }
}

/// The challenge `slug` if `user` may see it, with its spec: from the listed
/// challenges when it is listed (no read), else from the store (a hidden one,
/// for organizers).
pub async fn board_challenge(
    state: &AppState,
    listed: &Listed,
    user: Option<&riposte_core::store::User>,
    slug: &str,
) -> Result<Option<(ChallengeRecord, ChallengeSpec)>, StoreError> {
    if let Some(found) = listed.get(slug) {
        return Ok(Some(found.clone()));
    }
    let Some(record) = super::visible_challenge(state, user, slug).await? else {
        return Ok(None);
    };
    let spec = record.spec.clone();
    Ok(Some((record, spec)))
}

/// Build the scoreboard and its history once at startup, so the first visitors
/// after a restart do not wait for them.
pub async fn warm_boards(state: actix_web::web::Data<AppState>) {
    let warmed = async {
        let (key, listed) = board_key(&state).await?;
        // What competitors see: the frozen boards while a freeze lasts.
        let frozen = state.timeline.get().frozen_at(state.clock.now());
        scoreboard(&state, key, listed.clone(), frozen).await?;
        history(&state, key, listed, frozen).await?;
        Ok::<_, StoreError>(())
    };
    if let Err(e) = warmed.await {
        tracing::warn!(error = %e, "warming the boards failed; the first request builds them");
    }
}

async fn list(store: Arc<dyn Store>) -> Result<Listed, StoreError> {
    let challenges = store
        .list_challenges(false)
        .await?
        .into_iter()
        .map(|record| {
            let spec = record.spec.clone();
            (record, spec)
        })
        .collect();
    Ok(Listed { challenges })
}

/// The scoreboard for `key`: as it stood at `frozen`, if given.
pub async fn scoreboard(
    state: &AppState,
    key: BoardKey,
    listed: Arc<Listed>,
    frozen: Option<i64>,
) -> Result<Arc<Scoreboard>, StoreError> {
    if let Some(at) = frozen {
        return Ok(self::frozen(state, key, listed, at)
            .await?
            .scoreboard
            .clone());
    }
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
    let names = team_names_in(&*store).await?;
    let hints = super::boards::hint_costs(&*store, &listed).await?;
    board_cache::compute(move || {
        let standings = riposte_core::leaderboard::with_hint_costs(
            riposte_core::leaderboard::event_scores(&tracks, &flags, &counted),
            &hints,
            &counted,
        );
        scoreboard_from(key, standings, &names)
    })
    .await
}

/// A scoreboard's rows, JSON and index from its standings (live or frozen).
fn scoreboard_from(
    key: BoardKey,
    standings: Vec<EventScore>,
    names: &HashMap<TeamId, String>,
) -> Scoreboard {
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
                        PartKind::Hint => format!("hints unlocked: -{:.0}", p.score),
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
        pages: std::sync::Mutex::default(),
    }
}

/// The history for `key` (or the last one built, while it rests or rebuilds).
pub async fn history(
    state: &AppState,
    key: BoardKey,
    listed: Arc<Listed>,
    frozen: Option<i64>,
) -> Result<Arc<History>, StoreError> {
    if let Some(at) = frozen {
        return Ok(self::frozen(state, key, listed, at).await?.history.clone());
    }
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
    let names = team_names_in(&*store).await?;
    let built = board_cache::compute(move || history_from(key, &inputs, &names, now)).await;
    // The replay held every cell: give the memory back, not just to the allocator.
    board_cache::release_memory();
    built
}

/// Every counted team's steps and the chart of the top ones (live or frozen).
fn history_from(
    key: BoardKey,
    inputs: &EventInputs,
    names: &HashMap<TeamId, String>,
    now: i64,
) -> History {
    let steps: HashMap<TeamId, Vec<(i64, f64)>> = inputs
        .history()
        .into_iter()
        .map(|(team, steps)| (team, downsample(&steps, HISTORY_POINTS)))
        .collect();
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
                .map(|(at, score)| serde_json::json!({ "at": view::datetime(at), "score": score }))
                .collect();
            (team, serde_json::Value::from(points).to_string())
        })
        .collect();
    History { key, json, svg }
}

/// Points a team's history holds in the JSON and the chart.
pub const HISTORY_POINTS: usize = 48;

/// At most `n` steps of a step series: the first, the last, and the step in
/// effect at each of `n - 2` evenly spaced moments between them (a step chart
/// drawn from them is the series seen at that resolution; the last value is
/// exact).
pub fn downsample(steps: &[(i64, f64)], n: usize) -> Vec<(i64, f64)> {
    if steps.len() <= n || n < 2 {
        return steps.to_vec();
    }
    let (first, last) = (steps[0].0, steps[steps.len() - 1].0);
    let mut kept: Vec<usize> = vec![0];
    for k in 1..n - 1 {
        let at = first + ((last - first) as i128 * k as i128 / (n as i128 - 1)) as i64;
        // the last step at or before `at`
        let i = steps.partition_point(|&(t, _)| t <= at).saturating_sub(1);
        if kept.last() != Some(&i) {
            kept.push(i);
        }
    }
    if kept.last() != Some(&(steps.len() - 1)) {
        kept.push(steps.len() - 1);
    }
    kept.into_iter().map(|i| steps[i]).collect()
}

/// The matrix drawing of a listed challenge for `key`.
pub async fn matrix(
    state: &AppState,
    (key, listed): (BoardKey, &Arc<Listed>),
    record: ChallengeRecord,
    spec: ChallengeSpec,
    frozen: Option<i64>,
) -> Result<Arc<Matrix>, StoreError> {
    if let Some(at) = frozen {
        let boards = self::frozen(state, key, listed.clone(), at).await?;
        if let Some(matrix) = boards.matrices.get(&record.slug) {
            return Ok(matrix.clone());
        }
    }
    let store = state.store.clone();
    let now = state.clock.now();
    state
        .boards
        .matrices
        .slot(&record.slug)
        .get(key, PATIENCE, move || async move {
            let drawn = matrix_svg_text(store, record, spec, now).await;
            board_cache::release_memory();
            let (full, inline) = drawn?;
            Ok(Matrix {
                key,
                svg: Bytes::from(full),
                inline,
            })
        })
        .await
}

/// One challenge's leaderboards as built for one key.
pub struct ChallengeBoard {
    pub key: BoardKey,
    /// Each track the challenge has, ranked on the split it shows.
    pub tracks: Vec<TrackRows>,
    /// A flag challenge's solves, counted or not, first first.
    pub solves: Option<Vec<SolveRow>>,
}

/// One track's leaderboard: the counted teams' standings and their page rows.
pub struct TrackRows {
    pub track: Track,
    pub split: Split,
    pub standings: Vec<Standing>,
    /// Team names, by rank.
    pub teams: Vec<String>,
    pub rows: Vec<BoardRow>,
    /// Rank index by team.
    pub index: HashMap<TeamId, usize>,
}

/// The leaderboards of a challenge for `key`: the maintained standings of the
/// teams that count (staff, banned and hidden teams are not ranked; their cells
/// still count for the teams they faced), and the solves.
pub async fn challenge_board(
    state: &AppState,
    (key, listed): (BoardKey, &Arc<Listed>),
    record: ChallengeRecord,
    spec: ChallengeSpec,
    frozen: Option<i64>,
) -> Result<Arc<ChallengeBoard>, StoreError> {
    if let Some(at) = frozen {
        let boards = self::frozen(state, key, listed.clone(), at).await?;
        if let Some(board) = boards.challenges.get(&record.slug) {
            return Ok(board.clone());
        }
    }
    let store = state.store.clone();
    let now = state.clock.now();
    state
        .boards
        .leaderboards
        .slot(&record.slug)
        .get(key, PATIENCE, move || async move {
            let names = team_names_in(&*store).await?;
            let counted: HashSet<TeamId> = store.counted_teams().await?.into_iter().collect();
            let mut tracks = Vec::new();
            for track in tracks_of(&spec) {
                let split = shown_split(&record, &spec, track, now);
                let standings: Vec<Standing> = store
                    .track_standings(record.id, track, split)
                    .await?
                    .into_iter()
                    .filter(|s| counted.contains(&s.team_id))
                    .collect();
                tracks.push(track_rows(track, split, standings, &names));
            }
            let solves = match &spec.flag {
                Some(flag) => {
                    let solves = store.solves(record.id).await?;
                    Some(solve_rows(&record, flag, &solves, &names))
                }
                None => None,
            };
            Ok(ChallengeBoard {
                key,
                tracks,
                solves,
            })
        })
        .await
}

/// One track's leaderboard rows from its counted standings (live or frozen).
fn track_rows(
    track: Track,
    split: Split,
    standings: Vec<Standing>,
    names: &HashMap<TeamId, String>,
) -> TrackRows {
    let teams: Vec<String> = standings
        .iter()
        .map(|s| names.get(&s.team_id).cloned().unwrap_or_default())
        .collect();
    let rows = standings
        .iter()
        .zip(&teams)
        .enumerate()
        .map(|(i, (s, team))| BoardRow {
            rank: i + 1,
            team: team.clone(),
            score: format!("{:.4}", s.score),
            sum: format!("{:.4}", s.sum),
            worst_case: s.worst_case.map(|w| format!("{w:.4}")),
            opponents: s.opponents,
            queries: s.queries_used,
            reached: view::datetime(s.reached_at),
        })
        .collect();
    let index = standings
        .iter()
        .enumerate()
        .map(|(i, s)| (s.team_id, i))
        .collect();
    TrackRows {
        track,
        split,
        standings,
        teams,
        rows,
        index,
    }
}

// ---------------------------------------------------------------------------
// Frozen boards

/// Every board as it stood at a freeze (`riposte_core::event`), as competitors
/// see it while the freeze lasts: the scoreboard, the history, and each listed
/// challenge's leaderboards and matrix, all from the submissions, cells and
/// solves in by that moment (`history::as_of`). Built in one go from the same
/// inputs as the history, and resting as the history does.
pub struct Frozen {
    pub scoreboard: Arc<Scoreboard>,
    pub history: Arc<History>,
    /// By slug.
    pub challenges: HashMap<String, Arc<ChallengeBoard>>,
    pub matrices: HashMap<String, Arc<Matrix>>,
}

/// The moment `user`'s boards are frozen at, if they are (organizers: never).
pub fn frozen_for(state: &AppState, user: Option<&riposte_core::store::User>) -> Option<i64> {
    state.timeline.get().frozen_for(user, state.clock.now())
}

/// What a board page says about a freeze: to competitors, the moment their
/// boards stand at; to organizers, that competitors see frozen boards.
pub fn freeze_note(state: &AppState, user: Option<&riposte_core::store::User>) -> Option<String> {
    let timeline = state.timeline.get();
    let now = state.clock.now();
    if let Some(at) = timeline.frozen_for(user, now) {
        return Some(format!(
            "The scoreboard is frozen: every board shows the standings as they stood at {}. Your own submissions still show their results.",
            view::datetime(at)
        ));
    }
    timeline.frozen_at(now).map(|at| {
        format!(
            "Frozen for competitors at {}: they see the boards as they stood then; you see them live.",
            view::datetime(at)
        )
    })
}

/// The boards frozen at `at`, for `key`.
pub async fn frozen(
    state: &AppState,
    key: BoardKey,
    listed: Arc<Listed>,
    at: i64,
) -> Result<Arc<Frozen>, StoreError> {
    let store = state.store.clone();
    let now = state.clock.now();
    state
        .boards
        .frozen
        .slot(&at.to_string())
        .get(key, PATIENCE, move || {
            build_frozen(store, listed, key, now, at)
        })
        .await
}

async fn build_frozen(
    store: Arc<dyn Store>,
    listed: Arc<Listed>,
    key: BoardKey,
    now: i64,
    at: i64,
) -> Result<Frozen, StoreError> {
    let inputs = event_inputs(&*store, &listed, now).await?;
    let names = team_names_in(&*store).await?;
    let mut solves = HashMap::new();
    for (record, spec) in &listed.challenges {
        if spec.flag.is_some() {
            let mut all = store.solves(record.id).await?;
            all.retain(|s| s.created_at <= at);
            solves.insert(record.slug.clone(), all);
        }
    }
    let built = board_cache::compute(move || {
        let cut = inputs.as_of(at);
        drop(inputs);
        let scoreboard = Arc::new(scoreboard_from(key, cut.scoreboard(), &names));
        let history = Arc::new(history_from(key, &cut, &names, now));
        let mut challenges = HashMap::new();
        let mut matrices = HashMap::new();
        for (record, spec) in &listed.challenges {
            let boards: Vec<&TrackBoard> = cut.boards_of(&record.slug).collect();
            let tracks = boards
                .iter()
                .map(|b| {
                    let standings =
                        leaderboard::rank(b.track, b.split, b.rule, &b.scored, &b.cells)
                            .into_iter()
                            .filter(|s| cut.counts(s.team_id))
                            .collect();
                    track_rows(b.track, b.split, standings, &names)
                })
                .collect();
            let solves = spec.flag.as_ref().map(|flag| {
                let all = solves.get(&record.slug).map_or(&[][..], Vec::as_slice);
                solve_rows(record, flag, all, &names)
            });
            let board = ChallengeBoard {
                key,
                tracks,
                solves,
            };
            challenges.insert(record.slug.clone(), Arc::new(board));
            if !boards.is_empty() {
                let matrix = frozen_matrix(key, record, spec, &boards, &names, now);
                matrices.insert(record.slug.clone(), Arc::new(matrix));
            }
        }
        Frozen {
            scoreboard,
            history,
            challenges,
            matrices,
        }
    })
    .await;
    board_cache::release_memory();
    built
}

/// A challenge's matrix drawn from its cut tracks: the best rows and columns
/// by their score at the freeze.
fn frozen_matrix(
    key: BoardKey,
    record: &ChallengeRecord,
    spec: &ChallengeSpec,
    boards: &[&TrackBoard],
    names: &HashMap<TeamId, String>,
    now: i64,
) -> Matrix {
    let split = riposte_core::visibility::matrix_split(record, spec, now);
    let empty: Arc<[riposte_core::store::Evaluation]> = Arc::new([]);
    let cells = boards.first().map_or(empty, |b| b.cells.clone());
    let best = |track: Track, most: usize| -> (Vec<riposte_core::store::Submission>, usize) {
        let Some(board) = boards.iter().find(|b| b.track == track) else {
            return (Vec::new(), 0);
        };
        let best = super::boards::best_first(track, &board.scored, split, &cells)
            .into_iter()
            .take(most)
            .cloned()
            .collect();
        (best, board.scored.len())
    };
    let (attacks, scored_attacks) = best(Track::Attack, super::boards::MATRIX_SVG.0);
    let (defenses, scored_defenses) = best(Track::Defense, super::boards::MATRIX_SVG.1);
    let draw = |size| {
        crate::svg::heatmap(&super::boards::matrix(&super::boards::MatrixInput {
            spec,
            attacks: &attacks,
            defenses: &defenses,
            scored: (scored_attacks, scored_defenses),
            cells: &cells,
            split,
            team_names: names,
            size,
        }))
    };
    Matrix {
        key,
        svg: Bytes::from(draw(super::boards::MATRIX_SVG)),
        inline: draw(super::boards::MATRIX_INLINE),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn downsampling_keeps_the_ends_and_the_steps_in_effect() {
        let steps: Vec<(i64, f64)> = (0..100).map(|i| (i * 10, i as f64)).collect();
        let d = downsample(&steps, 5);
        // moments 0, 247, 495, 742, 990: the steps at 0, 240, 490, 740, 990
        assert_eq!(
            d,
            vec![(0, 0.0), (240, 24.0), (490, 49.0), (740, 74.0), (990, 99.0)]
        );
        assert_eq!(downsample(&steps[..3], 5), steps[..3].to_vec());
        // bunched steps: no step twice, the last always exact
        let bunched = vec![(0, 1.0), (1, 2.0), (2, 3.0), (1_000, 4.0)];
        assert_eq!(
            downsample(&bunched, 3),
            vec![(0, 1.0), (2, 3.0), (1_000, 4.0)]
        );
        assert!(downsample(&steps, 48).len() <= 48);
        assert_eq!(downsample(&steps, 48).last(), Some(&(990, 99.0)));
    }
}
