//! Boards beyond one track's leaderboard: a challenge's attack x defense matrix
//! (SVG), the overall scoreboard with its score-over-time chart (page, SVG, JSON),
//! and the pictures of an attack's preview examples (PNG, own team only).
//!
//! The ranking math is here as pure functions ([`scoreboard`], [`history`],
//! [`matrix`]); handlers gather the store's rows and draw with [`crate::svg`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use anyhow::Context;
use askama::Template;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::leaderboard;
use riposte_core::store::{
    ChallengeRecord, Evaluation, Party, Split, StoreError, Submission, SubmissionStatus, TeamId,
    Track,
};
use serde::Serialize;

use super::submissions::shown_split;
use super::{Layout, render};
use super::{stored_spec as spec_of, team_names, visible_challenge as visible};
use crate::auth::{ApiUser, Visitor};
use crate::error::{ApiError, PageError};
use crate::preview_png::{self, ImageShape, Picture};
use crate::startup::AppState;
use crate::svg;
use crate::view;

/// Routes of this module. Registered before the `/api/v1` scope so that
/// `/api/v1/scoreboard` is matched here.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v1/scoreboard", web::get().to(api_scoreboard))
        .route("/scoreboard", web::get().to(page_scoreboard))
        .route("/scoreboard/history.svg", web::get().to(history_svg))
        .route("/challenges/{slug}/matrix.svg", web::get().to(matrix_svg))
        .route(
            "/submissions/{id}/preview/{index}/{picture}.png",
            web::get().to(preview_image),
        );
}

/// Teams drawn on the score-over-time chart.
const CHART_TEAMS: usize = 10;
/// Most attacks (rows) and defenders (columns) drawn in a matrix; the best are kept.
const MATRIX_ROWS: usize = 80;
const MATRIX_COLUMNS: usize = 40;

// ---------------------------------------------------------------------------
// The math

/// One track of one challenge as the scoreboard counts it.
#[derive(Debug, Clone)]
pub struct TrackBoard {
    pub challenge: String,
    pub track: Track,
    /// The split shown now (public while the track is open).
    pub split: Split,
    /// The track's scored submissions.
    pub scored: Vec<Submission>,
    /// Every cell of the challenge's matrix (both tracks share them).
    pub cells: Arc<[Evaluation]>,
}

/// What one track of one challenge adds to a team's total.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Part {
    pub challenge: String,
    pub track: Track,
    pub split: Split,
    pub submission: i64,
    pub score: f64,
}

/// A team's place on the overall scoreboard.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamScore {
    pub team_id: TeamId,
    /// The sum of the team's leaderboard scores over every track of every challenge.
    pub score: f64,
    /// When the latest of the counted submissions was made (the tie-breaker).
    pub reached_at: i64,
    pub parts: Vec<Part>,
}

/// Rank teams by the sum, over challenges and tracks, of their leaderboard score
/// (`leaderboard::rank` on each track's shown split: the chosen, else the best,
/// submission). Equal totals go to the team
/// whose counted submissions were all in earliest (smallest `reached_at`), then to
/// the smaller team id. Teams without a scored submission are not listed.
pub fn scoreboard(boards: &[TrackBoard]) -> Vec<TeamScore> {
    let mut teams: BTreeMap<TeamId, TeamScore> = BTreeMap::new();
    for board in boards {
        for standing in leaderboard::rank(board.track, board.split, &board.scored, &board.cells) {
            let team = teams.entry(standing.team_id).or_insert_with(|| TeamScore {
                team_id: standing.team_id,
                score: 0.0,
                reached_at: i64::MIN,
                parts: Vec::new(),
            });
            team.score += standing.score;
            team.reached_at = team.reached_at.max(standing.reached_at);
            team.parts.push(Part {
                challenge: board.challenge.clone(),
                track: board.track,
                split: board.split,
                submission: standing.submission_id,
                score: standing.score,
            });
        }
    }
    let mut ranked: Vec<TeamScore> = teams.into_values().collect();
    ranked.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.reached_at.cmp(&b.reached_at))
            .then(a.team_id.cmp(&b.team_id))
    });
    ranked
}

/// Each team's score over time, as the steps `(t, score)` at which it changed.
///
/// The score of a team at time `t` is the [`scoreboard`] total computed as if only
/// the submissions scored at or before `t` (their `finished_at`, the moment they
/// joined the leaderboards; their own cells are written at that same moment) and
/// the matrix cells created at or before `t` existed. For each
/// track of each challenge, a submission's score at `t` is the sum of its shares
/// (fooled for an attack, kept for a defense) over the cells created at or before
/// `t` on the split the track shows *now*; the team counts its chosen submission
/// once that is scored, else its best one scored by `t`; the total sums
/// over tracks and challenges. So the last step equals today's total (up to
/// floating-point rounding).
///
/// Cells are only ever added and shares are never negative, so a submission's
/// score only grows, and so does a team's, except when the submission it chose
/// appears and scores below its best so far. A team gets a first step `(t, 0.0)`
/// when its first submission is scored. (Entering at `finished_at` rather than at
/// upload keeps a chosen submission from counting as 0 while it waits in the queue.)
pub fn history(boards: &[TrackBoard]) -> BTreeMap<TeamId, Vec<(i64, f64)>> {
    enum Event {
        Enter {
            board: usize,
            submission: usize,
        },
        Add {
            board: usize,
            submission: usize,
            share: f64,
        },
    }
    let mut events: Vec<(i64, Event)> = Vec::new();
    for (b, board) in boards.iter().enumerate() {
        let index: HashMap<i64, usize> = board
            .scored
            .iter()
            .enumerate()
            .map(|(k, s)| (s.id, k))
            .collect();
        for (k, s) in board.scored.iter().enumerate() {
            events.push((
                scored_at(s),
                Event::Enter {
                    board: b,
                    submission: k,
                },
            ));
        }
        for cell in board
            .cells
            .iter()
            .filter(|c| c.split == board.split && c.total > 0)
        {
            let (party, counted) = match board.track {
                Track::Attack => (&cell.attacker, cell.fooled),
                Track::Defense => (&cell.defender, cell.total - cell.fooled),
            };
            if let Party::Submission(id) = party
                && let Some(&k) = index.get(id)
            {
                let share = counted as f64 / cell.total as f64;
                events.push((
                    cell.created_at,
                    Event::Add {
                        board: b,
                        submission: k,
                        share,
                    },
                ));
            }
        }
    }
    events.sort_by_key(|(t, _)| *t);

    let mut sums: Vec<Vec<f64>> = boards.iter().map(|b| vec![0.0; b.scored.len()]).collect();
    let mut entered: Vec<Vec<bool>> = boards.iter().map(|b| vec![false; b.scored.len()]).collect();
    // (board, team) -> the team's best entered submission on that board
    let mut best: HashMap<(usize, TeamId), f64> = HashMap::new();
    let chosen: HashMap<(usize, TeamId), usize> = boards
        .iter()
        .enumerate()
        .flat_map(|(b, board)| {
            board
                .scored
                .iter()
                .enumerate()
                .filter(|(_, s)| s.chosen)
                .map(move |(k, s)| ((b, s.team_id), k))
        })
        .collect();
    let counted = |b: usize,
                   team: TeamId,
                   best: &HashMap<(usize, TeamId), f64>,
                   sums: &[Vec<f64>],
                   entered: &[Vec<bool>]| {
        match chosen.get(&(b, team)) {
            Some(&c) if entered[b][c] => Some(sums[b][c]),
            _ => best.get(&(b, team)).copied(),
        }
    };
    let mut out: BTreeMap<TeamId, Vec<(i64, f64)>> = BTreeMap::new();
    let mut k = 0;
    while k < events.len() {
        let t = events[k].0;
        let mut touched: Vec<TeamId> = Vec::new();
        while k < events.len() && events[k].0 == t {
            let (b, s) = match events[k].1 {
                Event::Enter { board, submission } => {
                    entered[board][submission] = true;
                    (board, submission)
                }
                Event::Add {
                    board,
                    submission,
                    share,
                } => {
                    sums[board][submission] += share;
                    (board, submission)
                }
            };
            if entered[b][s] {
                let team = boards[b].scored[s].team_id;
                let slot = best.entry((b, team)).or_insert(0.0);
                *slot = slot.max(sums[b][s]);
                touched.push(team);
            }
            k += 1;
        }
        touched.sort_unstable();
        touched.dedup();
        for team in touched {
            let total: f64 = (0..boards.len())
                .filter_map(|b| counted(b, team, &best, &sums, &entered))
                .sum();
            let steps = out.entry(team).or_default();
            if steps.last().is_none_or(|&(_, last)| last != total) {
                steps.push((t, total));
            }
        }
    }
    out
}

/// When a submission joined the leaderboards.
fn scored_at(s: &Submission) -> i64 {
    s.finished_at.unwrap_or(s.created_at)
}

/// What a matrix is drawn from.
pub struct MatrixInput<'a> {
    pub spec: &'a ChallengeSpec,
    pub attacks: &'a [Submission],
    pub defenses: &'a [Submission],
    pub cells: &'a [Evaluation],
    pub split: Split,
    pub team_names: &'a HashMap<TeamId, String>,
}

/// Lay out the matrix: rows are the scored attacks (best first, as
/// `team #id`) then the reference attacks; columns the organizer targets then the
/// accepted defenses (best first). Cells are the counts on `split`.
pub fn matrix(input: &MatrixInput<'_>) -> svg::Heatmap {
    let label = |s: &Submission| {
        let team = input.team_names.get(&s.team_id).map_or("?", String::as_str);
        svg::Axis {
            label: format!("{team} #{}", s.id),
            key: Party::Submission(s.id).key(),
        }
    };
    let party_axis = |party: Party, label: String| svg::Axis {
        key: party.key(),
        label,
    };
    let attacks = best_first(Track::Attack, input.attacks, input.split, input.cells);
    let defenses = best_first(Track::Defense, input.defenses, input.split, input.cells);
    let mut rows: Vec<svg::Axis> = attacks.iter().take(MATRIX_ROWS).map(|s| label(s)).collect();
    for name in input.spec.defense.iter().flat_map(|d| &d.reference_attacks) {
        rows.push(party_axis(
            Party::Reference(name.clone()),
            format!("{name} (reference)"),
        ));
    }
    let mut columns: Vec<svg::Axis> = input
        .spec
        .targets
        .iter()
        .map(|t| party_axis(Party::Organizer(t.name.clone()), t.name.clone()))
        .collect();
    columns.extend(
        defenses
            .iter()
            .take(MATRIX_COLUMNS.saturating_sub(columns.len()))
            .map(|s| label(s)),
    );

    let counts: HashMap<(String, String), svg::Count> = input
        .cells
        .iter()
        .filter(|c| c.split == input.split)
        .map(|c| {
            (
                (c.attacker.key(), c.defender.key()),
                svg::Count {
                    hits: c.fooled,
                    total: c.total,
                },
            )
        })
        .collect();
    let cells = rows
        .iter()
        .map(|r| {
            columns
                .iter()
                .map(|c| counts.get(&(r.key.clone(), c.key.clone())).copied())
                .collect()
        })
        .collect();
    let (measure, counted) = measure_of(input.spec.kind);
    let mut caption = format!(
        "Share of the {} split's {counted}. Rows: attacks; columns: defenders.",
        input.split.as_str()
    );
    if attacks.len() > MATRIX_ROWS {
        caption.push_str(&format!(
            " The best {MATRIX_ROWS} of {} attacks are shown.",
            attacks.len()
        ));
    }
    let shown_defenses = MATRIX_COLUMNS.saturating_sub(input.spec.targets.len());
    if defenses.len() > shown_defenses {
        caption.push_str(&format!(
            " The best {shown_defenses} of {} defenses are shown.",
            defenses.len()
        ));
    }
    svg::Heatmap {
        rows,
        columns,
        cells,
        caption,
        measure,
    }
}

/// What a cell of a `kind` challenge counts, and the caption's words for it: a
/// stored cell's `fooled` is agreement with the target for model extraction and
/// members caught for membership inference.
fn measure_of(kind: ChallengeKind) -> (svg::Measure, &'static str) {
    match kind {
        ChallengeKind::Extraction => (
            svg::Measure {
                name: "agreement",
                hits: "in agreement",
            },
            "inputs on which the surrogate agrees with the target",
        ),
        ChallengeKind::Membership => (
            svg::Measure {
                name: "caught",
                hits: "members caught",
            },
            "members caught",
        ),
        _ => (svg::Measure::FOOLED, "inputs fooled"),
    }
}

/// Submissions by their score on `split`, best first; ties to the earlier.
fn best_first<'a>(
    track: Track,
    subs: &'a [Submission],
    split: Split,
    cells: &[Evaluation],
) -> Vec<&'a Submission> {
    let mut scored: Vec<(f64, &Submission)> = subs
        .iter()
        .map(|s| {
            (
                leaderboard::submission_score(track, s.id, split, cells).0,
                s,
            )
        })
        .collect();
    scored.sort_by(|a, b| {
        b.0.total_cmp(&a.0)
            .then(a.1.created_at.cmp(&b.1.created_at))
            .then(a.1.id.cmp(&b.1.id))
    });
    scored.into_iter().map(|(_, s)| s).collect()
}

// ---------------------------------------------------------------------------
// Gathering rows

fn tracks_of(spec: &ChallengeSpec) -> Vec<Track> {
    let mut tracks = Vec::new();
    if spec.attack.is_some() {
        tracks.push(Track::Attack);
    }
    if spec.defense.is_some() {
        tracks.push(Track::Defense);
    }
    tracks
}

/// The split the matrix shows. A cell speaks for an attack and a defense at once,
/// so it turns private only once every track of the challenge shows its private
/// split (closed, or revealed by an organizer).
fn matrix_split(record: &ChallengeRecord, spec: &ChallengeSpec, now: i64) -> Split {
    let tracks = tracks_of(spec);
    let all_private = tracks
        .iter()
        .all(|&t| shown_split(record, spec, t, now) == Split::Private);
    if !tracks.is_empty() && all_private {
        Split::Private
    } else {
        Split::Public
    }
}

/// Every track of every listed challenge. Hidden challenges never count, so the
/// scoreboard is the same for everyone; a challenge whose stored spec does not
/// parse is left out and logged.
async fn track_boards(state: &AppState, now: i64) -> Result<Vec<TrackBoard>, StoreError> {
    let mut boards = Vec::new();
    for record in state.store.list_challenges(false).await? {
        let spec = match spec_of(&record) {
            Ok(spec) => spec,
            Err(e) => {
                tracing::error!(error = ?e, "challenge left out of the scoreboard");
                continue;
            }
        };
        let tracks = tracks_of(&spec);
        if tracks.is_empty() {
            continue;
        }
        let cells: Arc<[Evaluation]> = state.store.evaluations(record.id).await?.into();
        for track in tracks {
            boards.push(TrackBoard {
                challenge: record.slug.clone(),
                track,
                split: shown_split(&record, &spec, track, now),
                scored: state
                    .store
                    .challenge_submissions(record.id, track, SubmissionStatus::Scored)
                    .await?,
                cells: cells.clone(),
            });
        }
    }
    Ok(boards)
}

fn svg_response(body: String) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ))
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

// ---------------------------------------------------------------------------
// Handlers

#[tracing::instrument(skip_all, fields(slug = %slug))]
async fn matrix_svg(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = visible(&state, visitor.user(), &slug)
        .await?
        .ok_or_else(PageError::not_found)?;
    let spec = spec_of(&record).map_err(PageError::internal)?;
    Ok(svg_response(matrix_drawing(&state, &record, &spec).await?))
}

/// The matrix of a challenge as SVG text, for its own route and drawn inline on
/// the leaderboard page (inline, so a cell's tooltip shows on hover).
pub(crate) async fn matrix_drawing(
    state: &AppState,
    record: &ChallengeRecord,
    spec: &ChallengeSpec,
) -> Result<String, StoreError> {
    let attacks = state
        .store
        .challenge_submissions(record.id, Track::Attack, SubmissionStatus::Scored)
        .await?;
    let defenses = state
        .store
        .challenge_submissions(record.id, Track::Defense, SubmissionStatus::Scored)
        .await?;
    let cells = state.store.evaluations(record.id).await?;
    let team_names = team_names(state).await?;
    let map = matrix(&MatrixInput {
        spec,
        attacks: &attacks,
        defenses: &defenses,
        cells: &cells,
        split: matrix_split(record, spec, state.clock.now()),
        team_names: &team_names,
    });
    Ok(svg::heatmap(&map))
}

/// One solve on a flag challenge's board.
pub struct SolveRow {
    pub place: usize,
    pub team: String,
    /// RFC 3339 (UTC); pages show it in the reader's time zone.
    pub at: String,
    pub points: u64,
}

/// A flag challenge's solves, first first. Every solver holds the challenge's
/// current value (CTFd's dynamic scoring), so each row shows that value.
pub(crate) async fn solve_rows(
    state: &AppState,
    record: &ChallengeRecord,
    flag: &riposte_core::challenge::FlagSpec,
) -> Result<Vec<SolveRow>, StoreError> {
    let solves = state.store.solves(record.id).await?;
    let names = team_names(state).await?;
    let points = flag.value_after(u64::try_from(solves.len()).unwrap_or(u64::MAX));
    Ok(solves
        .iter()
        .enumerate()
        .map(|(i, s)| SolveRow {
            place: i + 1,
            team: names.get(&s.team_id).cloned().unwrap_or_default(),
            at: view::datetime(s.created_at),
            points,
        })
        .collect())
}

/// One row of the scoreboard page.
pub struct ScoreRow {
    pub rank: usize,
    pub team: String,
    pub score: String,
    pub parts: String,
    pub reached: String,
}

#[derive(Template)]
#[template(path = "scoreboard.html")]
struct ScoreboardPage {
    layout: Layout,
    rows: Vec<ScoreRow>,
}

#[tracing::instrument(skip_all)]
async fn page_scoreboard(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PageError> {
    let boards = track_boards(&state, state.clock.now()).await?;
    let names = team_names(&state).await?;
    let rows = scoreboard(&boards)
        .into_iter()
        .enumerate()
        .map(|(i, t)| ScoreRow {
            rank: i + 1,
            team: names.get(&t.team_id).cloned().unwrap_or_default(),
            score: format!("{:.4}", t.score),
            parts: t
                .parts
                .iter()
                .map(|p| format!("{} {} {:.4}", p.challenge, p.track.as_str(), p.score))
                .collect::<Vec<_>>()
                .join(" · "),
            reached: view::datetime(t.reached_at),
        })
        .collect();
    render(
        StatusCode::OK,
        &ScoreboardPage {
            layout: Layout::new(&state, &visitor),
            rows,
        },
    )
}

#[tracing::instrument(skip_all)]
async fn history_svg(state: web::Data<AppState>) -> Result<HttpResponse, PageError> {
    let now = state.clock.now();
    let boards = track_boards(&state, now).await?;
    let names = team_names(&state).await?;
    let mut steps = history(&boards);
    let series: Vec<svg::Series> = scoreboard(&boards)
        .into_iter()
        .take(CHART_TEAMS)
        .map(|t| svg::Series {
            name: names.get(&t.team_id).cloned().unwrap_or_default(),
            steps: steps.remove(&t.team_id).unwrap_or_default(),
        })
        .collect();
    let start = series
        .iter()
        .filter_map(|s| s.steps.first().map(|p| p.0))
        .min()
        .unwrap_or(now - 1)
        .min(now - 1);
    // RFC 3339 cut to minutes, or to seconds when the chart spans less than an hour.
    let cut = if now - start < 3600 { 19 } else { 16 };
    let label = |t: i64| {
        view::datetime(t)
            .chars()
            .take(cut)
            .collect::<String>()
            .replace('T', " ")
    };
    Ok(svg_response(svg::line_chart(&series, start, now, label)))
}

#[tracing::instrument(skip_all)]
async fn api_scoreboard(
    state: web::Data<AppState>,
    _user: ApiUser,
) -> Result<HttpResponse, ApiError> {
    let boards = track_boards(&state, state.clock.now()).await?;
    let names = team_names(&state).await?;
    let mut steps = history(&boards);
    let rows: Vec<serde_json::Value> = scoreboard(&boards)
        .into_iter()
        .enumerate()
        .map(|(i, t)| {
            let history: Vec<serde_json::Value> = steps
                .remove(&t.team_id)
                .unwrap_or_default()
                .into_iter()
                .map(|(at, score)| serde_json::json!({ "at": view::datetime(at), "score": score }))
                .collect();
            serde_json::json!({
                "rank": i + 1,
                "team": names.get(&t.team_id).cloned().unwrap_or_default(),
                "score": t.score,
                "reached_at": view::datetime(t.reached_at),
                "parts": t.parts,
                "history": history,
            })
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "rows": rows })))
}

#[tracing::instrument(skip_all, fields(submission = path.0, index = path.1))]
async fn preview_image(
    state: web::Data<AppState>,
    visitor: Visitor,
    path: web::Path<(i64, usize, String)>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    let (id, index, picture) = path.into_inner();
    let picture = Picture::parse(&picture).ok_or_else(PageError::not_found)?;
    // Same rule as the submission page: the submitting team or an organizer.
    let submission = state
        .store
        .submission(id)
        .await?
        .filter(|s| Some(s.team_id) == user.team_id || user.role.can_organize())
        .filter(|s| s.track == Track::Attack && s.status == SubmissionStatus::Scored)
        .ok_or_else(PageError::not_found)?;
    let preview: crate::worker::Preview =
        serde_json::from_str(&submission.details).unwrap_or_default();
    if !preview.examples.iter().any(|e| e.index == index) {
        return Err(PageError::not_found());
    }
    let record = state
        .store
        .list_challenges(true)
        .await?
        .into_iter()
        .find(|c| c.id == submission.challenge_id)
        .ok_or_else(PageError::not_found)?;
    let spec = spec_of(&record).map_err(PageError::internal)?;
    let (Some(task), Some(eval)) = (spec.task, spec.eval) else {
        return Err(PageError::not_found());
    };
    let shape = ImageShape::of(&task.input_shape).ok_or_else(|| {
        PageError::new(
            StatusCode::NOT_FOUND,
            format!("inputs of shape {:?} have no picture", task.input_shape),
        )
    })?;
    let artifacts: HashMap<String, String> =
        serde_json::from_str(&state.store.challenge_artifacts(record.id).await?)
            .context("stored artifacts")
            .map_err(PageError::internal)?;
    let inputs_key = eval.inputs.to_string_lossy().replace('\\', "/");
    let clean_sha = artifacts.get(&inputs_key).cloned().ok_or_else(|| {
        PageError::internal(anyhow::anyhow!(
            "the eval inputs {inputs_key} were not imported"
        ))
    })?;
    let blobs = state.blobs.clone();
    let span = tracing::Span::current();
    let png = web::block(move || {
        let _entered = span.enter();
        picture_png(
            &blobs,
            &clean_sha,
            &inputs_key,
            &submission,
            index,
            picture,
            shape,
            task.value_range,
        )
    })
    .await
    .map_err(|e| PageError::internal(anyhow::anyhow!("{e}")))?
    .map_err(PageError::internal)?;
    Ok(HttpResponse::Ok()
        .content_type("image/png")
        .insert_header(("Cache-Control", "private, max-age=3600"))
        .body(png))
}

/// Read the clean and adversarial example `index` and draw `picture` (blocking).
#[allow(clippy::too_many_arguments)]
fn picture_png(
    blobs: &crate::blobs::BlobDir,
    clean_sha: &str,
    inputs_name: &str,
    submission: &Submission,
    index: usize,
    picture: Picture,
    shape: ImageShape,
    range: (f32, f32),
) -> anyhow::Result<Vec<u8>> {
    let limits = riposte_eval::tensor::Limits::default();
    let clean =
        riposte_eval::tensor::read_tensor(&blobs.read(clean_sha)?, Some(inputs_name), &limits)
            .context("reading the eval inputs")?;
    let adversarial =
        crate::worker::decode(&blobs.read(&submission.blob_sha256)?, &submission.filename)
            .context("the scored attack file no longer decodes")?;
    let clean = clean
        .example(index)
        .context("the preview index is outside the eval inputs")?;
    let adversarial = adversarial
        .example(index)
        .context("the preview index is outside the attack file")?;
    preview_png::encode(
        shape,
        &preview_png::intensities(picture, clean, adversarial, range),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sub(id: i64, team: TeamId, track: Track, at: i64) -> Submission {
        Submission {
            id,
            challenge_id: 1,
            team_id: team,
            user_id: team,
            track,
            blob_sha256: String::new(),
            filename: String::new(),
            size: 0,
            status: SubmissionStatus::Scored,
            message: String::new(),
            gate_accuracy: None,
            created_at: at,
            finished_at: Some(at),
            details: String::new(),
            chosen: false,
            queries_used: None,
        }
    }

    fn cell(
        attacker: Party,
        defender: Party,
        split: Split,
        total: i64,
        fooled: i64,
        at: i64,
    ) -> Evaluation {
        Evaluation {
            attacker,
            defender,
            split,
            total,
            fooled,
            created_at: at,
        }
    }

    /// Team 1 attacks (#1 at t=10, #3 at t=30); team 2 defends (#4 at t=5) and attacks (#2 at t=20).
    fn example() -> Vec<TrackBoard> {
        use Party::{Organizer as Org, Reference, Submission as S};
        let org = |n: &str| Org(n.to_owned());
        let pb = Split::Public;
        let cells: Arc<[Evaluation]> = vec![
            cell(Reference("square".into()), S(4), pb, 20, 15, 6),
            cell(S(1), org("mlp"), pb, 10, 5, 12),
            cell(S(1), org("cnn"), pb, 10, 2, 12),
            cell(S(1), S(4), pb, 10, 4, 12),
            cell(S(1), org("mlp"), Split::Private, 20, 20, 12),
            cell(S(1), org("rnn"), pb, 0, 0, 12),
            cell(S(2), org("mlp"), pb, 10, 10, 25),
            cell(S(2), S(4), pb, 10, 10, 25),
            cell(S(3), org("mlp"), pb, 10, 9, 31),
            cell(S(3), org("cnn"), pb, 10, 4, 31),
            cell(S(3), S(4), pb, 10, 3, 31),
        ]
        .into();
        vec![
            TrackBoard {
                challenge: "c".into(),
                track: Track::Attack,
                split: pb,
                scored: vec![
                    sub(1, 1, Track::Attack, 10),
                    sub(2, 2, Track::Attack, 20),
                    sub(3, 1, Track::Attack, 30),
                ],
                cells: cells.clone(),
            },
            TrackBoard {
                challenge: "c".into(),
                track: Track::Defense,
                split: pb,
                scored: vec![sub(4, 2, Track::Defense, 5)],
                cells,
            },
        ]
    }

    fn assert_steps(got: &[(i64, f64)], want: &[(i64, f64)]) {
        assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(g.0, w.0, "{got:?} vs {want:?}");
            assert!((g.1 - w.1).abs() < 1e-12, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn history_matches_hand_computed_steps() {
        let h = history(&example());
        // team 1: #1 enters at 10 (0); at 12 it fools 5/10 + 2/10 + 4/10 = 1.1 (the
        // private and the empty cell do not count); #3 reaches 0.9 + 0.4 + 0.3 = 1.6 at 31.
        assert_steps(&h[&1], &[(10, 0.0), (12, 1.1), (31, 1.6)]);
        // team 2: defense #4 enters at 5; keeps 5/20 of the reference at 6 (0.25), 6/10
        // of #1 at 12 (0.85); attack #2 scores 1 + 1 = 2 at 25 (2.85); #4 keeps 7/10 of
        // #3 at 31 (1.55 + 2 = 3.55). #2 entering at 20 changes nothing: no step.
        assert_steps(
            &h[&2],
            &[(5, 0.0), (6, 0.25), (12, 0.85), (25, 2.85), (31, 3.55)],
        );

        // Team 1 chose #1: #3 (made later, better) no longer counts.
        let mut boards = example();
        boards[0].scored[0].chosen = true;
        assert_steps(&history(&boards)[&1], &[(10, 0.0), (12, 1.1)]);
        // Team 1 chose #3 (uploaded at 30, scored at 31): #1 counts until #3 is scored.
        let mut boards = example();
        boards[0].scored[2].chosen = true;
        boards[0].scored[2].finished_at = Some(31);
        assert_steps(&history(&boards)[&1], &[(10, 0.0), (12, 1.1), (31, 1.6)]);
        // A chosen submission worse than the best so far makes the score drop.
        let mut boards = example();
        boards[0].scored.push(sub(5, 1, Track::Attack, 35));
        boards[0].scored[3].chosen = true;
        assert_steps(
            &history(&boards)[&1],
            &[(10, 0.0), (12, 1.1), (31, 1.6), (35, 0.0)],
        );
    }

    #[test]
    fn history_agrees_with_the_scoreboard_on_every_prefix() {
        let plain = example();
        let mut chose_worse = example();
        chose_worse[0].scored[0].chosen = true;
        let mut chose_later = example();
        chose_later[0].scored[2].chosen = true;
        let mut scored_later = chose_later.clone();
        scored_later[0].scored[2].finished_at = Some(31);
        for boards in [plain, chose_worse, chose_later, scored_later] {
            prefixes_agree(&boards);
        }
    }

    fn prefixes_agree(boards: &[TrackBoard]) {
        let h = history(boards);
        let times: Vec<i64> = (0..=40).collect();
        for t in times {
            let cut: Vec<TrackBoard> = boards
                .iter()
                .map(|b| TrackBoard {
                    scored: b
                        .scored
                        .iter()
                        .filter(|s| scored_at(s) <= t)
                        .cloned()
                        .collect(),
                    cells: b
                        .cells
                        .iter()
                        .filter(|c| c.created_at <= t)
                        .cloned()
                        .collect::<Vec<_>>()
                        .into(),
                    ..b.clone()
                })
                .collect();
            for team in scoreboard(&cut) {
                let at_t = h[&team.team_id]
                    .iter()
                    .rev()
                    .find(|s| s.0 <= t)
                    .map(|s| s.1)
                    .unwrap();
                assert!(
                    (at_t - team.score).abs() < 1e-12,
                    "team {} at {t}: {at_t} vs {}",
                    team.team_id,
                    team.score
                );
            }
        }
    }

    #[test]
    fn scoreboard_sums_tracks_and_breaks_ties_by_time() {
        let ranked = scoreboard(&example());
        assert_eq!(ranked.iter().map(|t| t.team_id).collect::<Vec<_>>(), [2, 1]);
        assert!((ranked[0].score - 3.55).abs() < 1e-12);
        assert_eq!(ranked[0].reached_at, 20, "the later of #2 (20) and #4 (5)");
        assert_eq!(ranked[0].parts.len(), 2);
        assert_eq!(ranked[1].parts[0].submission, 3);

        // equal totals: the team whose counted submission came first wins
        let cells: Arc<[Evaluation]> = vec![
            cell(
                Party::Submission(1),
                Party::Organizer("m".into()),
                Split::Public,
                10,
                5,
                100,
            ),
            cell(
                Party::Submission(2),
                Party::Organizer("m".into()),
                Split::Public,
                10,
                5,
                50,
            ),
        ]
        .into();
        let tie = [TrackBoard {
            challenge: "c".into(),
            track: Track::Attack,
            split: Split::Public,
            scored: vec![sub(1, 7, Track::Attack, 40), sub(2, 9, Track::Attack, 45)],
            cells,
        }];
        assert_eq!(
            scoreboard(&tie)
                .iter()
                .map(|t| t.team_id)
                .collect::<Vec<_>>(),
            [7, 9]
        );
    }

    #[test]
    fn matrix_rows_columns_and_cells() {
        let spec: ChallengeSpec = serde_json::from_value(serde_json::json!({
            "slug": "c", "title": "C", "kind": "evasion", "difficulty": "easy", "tags": [], "points": 1,
            "summary": "", "task": null, "threat": {"norm": null, "epsilon": null, "targeted": false},
            "targets": [{"name": "mlp", "model": "public/mlp.onnx"}], "eval": null, "attack": null,
            "defense": {"window": {"opens": 0, "closes": 1, "submissions_per_day": 1, "max_upload_bytes": 1},
                "gate_clean_accuracy": 0.5, "hidden_inputs": "a", "hidden_labels": "b", "reference_attacks": ["square"]}
        }))
        .unwrap();
        let boards = example();
        let names: HashMap<TeamId, String> = [(1, "red".to_owned()), (2, "blue".to_owned())].into();
        let map = matrix(&MatrixInput {
            spec: &spec,
            attacks: &boards[0].scored,
            defenses: &boards[1].scored,
            cells: &boards[0].cells,
            split: Split::Public,
            team_names: &names,
        });
        let labels = |axes: &[svg::Axis]| axes.iter().map(|a| a.label.clone()).collect::<Vec<_>>();
        // best attack first: #2 (2.0), #3 (1.6), #1 (1.1); then the reference attack
        assert_eq!(
            labels(&map.rows),
            ["blue #2", "red #3", "red #1", "square (reference)"]
        );
        assert_eq!(labels(&map.columns), ["mlp", "blue #4"]);
        assert_eq!(
            map.cells[2][0],
            Some(svg::Count { hits: 5, total: 10 }),
            "public, not the private 20/20"
        );
        assert_eq!(
            map.cells[3][1],
            Some(svg::Count {
                hits: 15,
                total: 20
            })
        );
        assert_eq!(
            map.cells[3][0], None,
            "the reference attack never meets the targets"
        );
    }

    #[test]
    fn matrix_split_turns_private_when_every_track_shows_private() {
        let mut spec: ChallengeSpec = serde_json::from_value(serde_json::json!({
            "slug": "c", "title": "C", "kind": "evasion", "difficulty": "easy", "tags": [], "points": 1,
            "summary": "", "task": null, "threat": {"norm": null, "epsilon": null, "targeted": false},
            "targets": [], "eval": null, "attack": {"opens": 0, "closes": 10, "submissions_per_day": 1, "max_upload_bytes": 1},
            "defense": {"window": {"opens": 0, "closes": 20, "submissions_per_day": 1, "max_upload_bytes": 1},
                "gate_clean_accuracy": 0.5, "hidden_inputs": "a", "hidden_labels": "b", "reference_attacks": []}
        }))
        .unwrap();
        let mut record = ChallengeRecord {
            id: 1,
            slug: "c".into(),
            title: "C".into(),
            kind: "evasion".into(),
            difficulty: "easy".into(),
            tags: vec![],
            points: 1,
            summary: String::new(),
            readme: String::new(),
            spec_json: String::new(),
            files: vec![],
            hidden: false,
            revealed: false,
            updated_at: 0,
        };
        assert_eq!(matrix_split(&record, &spec, 15), Split::Public);
        assert_eq!(
            shown_split(&record, &spec, Track::Attack, 15),
            Split::Private
        );
        assert_eq!(matrix_split(&record, &spec, 20), Split::Private);
        record.revealed = true;
        assert_eq!(matrix_split(&record, &spec, 0), Split::Private);
        record.revealed = false;
        spec.defense = None;
        assert_eq!(matrix_split(&record, &spec, 10), Split::Private);
    }
}
