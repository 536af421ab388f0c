//! Boards beyond one track's leaderboard: a challenge's attack x defense matrix
//! (SVG), the overall scoreboard with its score-over-time chart (page, SVG, JSON),
//! and the pictures of an attack's preview examples (PNG, own team only).
//!
//! The event math is `riposte_core::history` ([`scoreboard`], [`history`]); the
//! matrix's is here ([`matrix`]); handlers gather the store's rows and draw with
//! [`crate::svg`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{HttpRequest, HttpResponse, web};
use anyhow::Context;
use askama::Template;
use riposte_core::challenge::{ChallengeKind, ChallengeSpec};
use riposte_core::history::{TrackBoard, history, scoreboard};
use riposte_core::leaderboard::{EventScore, FlagStanding};
use riposte_core::store::{
    ChallengeRecord, Evaluation, Party, Split, Store, StoreError, Submission, SubmissionStatus,
    TeamId, Track,
};

use super::board_builds::{self, Listed};
use super::submissions::shown_split;
use super::{Layout, render};
use crate::auth::{ApiUser, Visitor};
use crate::board_cache;
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

/// Boards recompute the event: an anonymous visitor gets
/// `anonymous_board_requests_per_second` of them per client network (signed-in
/// users' requests are attributable and not limited here).
pub(crate) fn anonymous_limit(
    state: &AppState,
    req: &HttpRequest,
    visitor: &Visitor,
) -> Result<(), PageError> {
    if visitor.user().is_some() {
        return Ok(());
    }
    state.board_throttle.check(req).map_err(|wait| {
        PageError::too_many(
            wait,
            format!(
                "Too many board requests from your network: try again in {wait} s, or sign in."
            ),
        )
    })
}

/// Teams drawn on the score-over-time chart.
pub(super) const CHART_TEAMS: usize = 10;
/// Most attacks (rows) and defenders (columns) drawn in a matrix; the best are kept.
/// `matrix.svg`: at most this many attacks (rows) and defenders (columns), the best.
pub(super) const MATRIX_SVG: (usize, usize) = (40, 24);
/// The matrix drawn inline on the leaderboard page (it links `matrix.svg`).
pub(super) const MATRIX_INLINE: (usize, usize) = (20, 12);

// ---------------------------------------------------------------------------
// The matrix (the scoreboard and its history are `riposte_core::history`)

/// What a matrix is drawn from.
pub struct MatrixInput<'a> {
    pub spec: &'a ChallengeSpec,
    /// The best scored attacks on `split`, best first (at least as many as drawn).
    pub attacks: &'a [Submission],
    /// The best scored defenses on `split`, best first.
    pub defenses: &'a [Submission],
    /// How many attacks and defenses are scored in all (for the caption).
    pub scored: (usize, usize),
    /// At least the cells between the drawn attacks and defenders.
    pub cells: &'a [Evaluation],
    pub split: Split,
    pub team_names: &'a HashMap<TeamId, String>,
    /// Most attacks (rows) and defenders (columns) drawn; the best are kept.
    pub size: (usize, usize),
}

/// Lay out the matrix: rows are the scored attacks (best first, as
/// `team #id`) then the reference attacks; columns the organizer targets then the
/// accepted defenses (best first). Cells are the counts on `split`.
// Long on purpose: rows, columns, the drawn cells and the caption share the
// one layout; split, each part would take the whole input again.
pub fn matrix(input: &MatrixInput<'_>) -> svg::Heatmap {
    let (max_rows, max_columns) = input.size;
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
    let (attacks, defenses) = (input.attacks, input.defenses);
    let mut rows: Vec<svg::Axis> = attacks.iter().take(max_rows).map(&label).collect();
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
            .take(max_columns.saturating_sub(columns.len()))
            .map(&label),
    );

    // Only the drawn cells: a large event has a million.
    let drawn_rows = Drawn::new(&rows);
    let drawn_columns = Drawn::new(&columns);
    let counts: HashMap<(String, String), svg::Count> = input
        .cells
        .iter()
        .filter(|c| c.split == input.split)
        .filter(|c| drawn_rows.contains(&c.attacker) && drawn_columns.contains(&c.defender))
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
    if input.scored.0 > max_rows {
        caption.push_str(&format!(
            " The best {max_rows} of {} attacks are shown.",
            input.scored.0
        ));
    }
    let shown_defenses = max_columns.saturating_sub(input.spec.targets.len());
    if input.scored.1 > shown_defenses {
        caption.push_str(&format!(
            " The best {shown_defenses} of {} defenses are shown.",
            input.scored.1
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

/// The parties drawn on one axis of a matrix.
struct Drawn<'a> {
    submissions: HashSet<i64>,
    others: HashSet<&'a str>,
}

impl<'a> Drawn<'a> {
    fn new(axes: &'a [svg::Axis]) -> Self {
        let mut drawn = Drawn {
            submissions: HashSet::new(),
            others: HashSet::new(),
        };
        for axis in axes {
            match Party::parse(&axis.key) {
                Some(Party::Submission(id)) => {
                    drawn.submissions.insert(id);
                }
                _ => {
                    drawn.others.insert(axis.key.as_str());
                }
            }
        }
        drawn
    }

    /// Submissions (the most numerous parties) are looked up without building
    /// their key.
    fn contains(&self, party: &Party) -> bool {
        match party {
            Party::Submission(id) => self.submissions.contains(id),
            other => self.others.contains(other.key().as_str()),
        }
    }
}

/// What a cell of a `kind` challenge counts, and the caption's words for it (a
/// stored cell's `fooled` is agreement for extraction, members caught for
/// membership inference: each kind's `CellWords`).
fn measure_of(kind: ChallengeKind) -> (svg::Measure, &'static str) {
    let words = kind.rules().cells;
    (
        svg::Measure {
            name: words.name,
            hits: words.hits,
        },
        words.caption,
    )
}

/// Submissions by their score on `split`, best first; ties to the earlier (the
/// order `Store::best_submissions` reads from the maintained scores).
pub(super) fn best_first<'a>(
    track: Track,
    subs: &'a [Submission],
    split: Split,
    cells: &[Evaluation],
) -> Vec<&'a Submission> {
    let scores = riposte_core::leaderboard::submission_scores(track, split, cells);
    let mut scored: Vec<(f64, &Submission)> = subs
        .iter()
        .map(|s| (scores.get(&s.id).map_or(0.0, |v| v.0), s))
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

use riposte_core::visibility::matrix_split;
pub(super) use riposte_core::visibility::tracks_of;

/// What the event scoreboard and its history are computed from: every
/// submission and cell (the history replays them).
pub(super) struct EventInputs {
    boards: Vec<TrackBoard>,
    flags: Vec<FlagStanding>,
    /// Hints unlocked on the listed challenges, at their costs.
    hints: Vec<riposte_core::leaderboard::HintCost>,
    /// Teams that count (`Store::counted_teams`).
    counted: HashSet<TeamId>,
}

impl EventInputs {
    /// The inputs as they stood at `at` (`history::as_of`): a frozen board's.
    pub(super) fn as_of(&self, at: i64) -> EventInputs {
        let (boards, flags) = riposte_core::history::as_of(&self.boards, &self.flags, at);
        EventInputs {
            boards,
            flags,
            hints: self.hints.iter().filter(|h| h.at <= at).cloned().collect(),
            counted: self.counted.clone(),
        }
    }

    /// The tracks of challenge `slug`.
    pub(super) fn boards_of<'a>(&'a self, slug: &'a str) -> impl Iterator<Item = &'a TrackBoard> {
        self.boards.iter().filter(move |b| b.challenge == slug)
    }

    pub(super) fn counts(&self, team: TeamId) -> bool {
        self.counted.contains(&team)
    }

    pub(super) fn scoreboard(&self) -> Vec<EventScore> {
        riposte_core::leaderboard::with_hint_costs(
            scoreboard(&self.boards, &self.flags, &self.counted),
            &self.hints,
            &self.counted,
        )
    }

    pub(super) fn history(&self) -> BTreeMap<TeamId, Vec<(i64, f64)>> {
        riposte_core::history::with_hint_steps(
            history(&self.boards, &self.flags, &self.counted),
            &self.hints,
            &self.counted,
        )
    }
}

/// Every track and flag of the listed challenges (hidden challenges never
/// count, so the scoreboard is the same for everyone).
pub(super) async fn event_inputs(
    store: &dyn Store,
    listed: &Listed,
    now: i64,
) -> Result<EventInputs, StoreError> {
    let mut boards = Vec::new();
    let mut flags = Vec::new();
    for (record, spec) in &listed.challenges {
        if let Some(flag) = &spec.flag {
            let solves = store.solves(record.id).await?;
            flags.push(FlagStanding::new(&record.slug, flag, &solves));
        }
        let tracks = tracks_of(spec);
        if tracks.is_empty() {
            continue;
        }
        // Only the split the tracks show (both, while they show different ones).
        let splits: HashSet<Split> = tracks
            .iter()
            .map(|&t| shown_split(record, spec, t, now))
            .collect();
        let cells: Arc<[Evaluation]> = match splits.iter().next() {
            Some(&split) if splits.len() == 1 => store.split_evaluations(record.id, split).await?,
            _ => store.evaluations(record.id).await?,
        }
        .into();
        for track in tracks {
            boards.push(TrackBoard {
                challenge: record.slug.clone(),
                track,
                points: spec.points,
                split: shown_split(record, spec, track, now),
                rule: spec
                    .defense
                    .as_ref()
                    .map_or(riposte_core::challenge::RankBy::Sum, |d| d.rank_by),
                scored: store
                    .challenge_submissions(record.id, track, SubmissionStatus::Scored)
                    .await?,
                cells: cells.clone(),
            });
        }
    }
    let counted = store.counted_teams().await?.into_iter().collect();
    Ok(EventInputs {
        boards,
        flags,
        hints: hint_costs(store, listed).await?,
        counted,
    })
}

/// Every hint unlocked on a listed challenge, at the cost paid (hidden
/// challenges never count, as for tracks and flags).
pub(super) async fn hint_costs(
    store: &dyn Store,
    listed: &Listed,
) -> Result<Vec<riposte_core::leaderboard::HintCost>, StoreError> {
    let slugs: HashMap<i64, &str> = listed
        .challenges
        .iter()
        .map(|(r, _)| (r.id, r.slug.as_str()))
        .collect();
    Ok(store
        .hint_unlocks()
        .await?
        .into_iter()
        .filter_map(|u| {
            Some(riposte_core::leaderboard::HintCost {
                challenge: (*slugs.get(&u.challenge_id)?).to_owned(),
                team_id: u.team_id,
                cost: u64::try_from(u.cost).unwrap_or(0),
                at: u.created_at,
            })
        })
        .collect())
}

/// An SVG (or any cached board) with its validator: `304 Not Modified` when the
/// client holds it already; `no-cache`, so clients revalidate every time.
pub(super) fn cached(
    req: &HttpRequest,
    etag: String,
    content_type: &'static str,
    body: Bytes,
    private: bool,
) -> HttpResponse {
    let cache_control = if private {
        "private, no-cache"
    } else {
        "public, no-cache"
    };
    let not_modified = holds(req, &etag);
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if content_type.starts_with("image/svg") {
        response.insert_header((
            "Content-Security-Policy",
            "default-src 'none'; style-src 'unsafe-inline'",
        ));
    }
    if not_modified {
        return response.finish();
    }
    response.content_type(content_type).body(body)
}

/// `If-None-Match` names `etag` (or `*`); weak validators compare equal.
pub(super) fn holds(req: &HttpRequest, etag: &str) -> bool {
    req.headers()
        .get_all(header::IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

// ---------------------------------------------------------------------------
// Handlers

#[tracing::instrument(skip_all, fields(slug = %slug))]
async fn matrix_svg(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    slug: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    anonymous_limit(&state, &req, &visitor)?;
    let (key, listed) = board_builds::board_key(&state).await?;
    let (record, spec) = board_builds::board_challenge(&state, &listed, visitor.user(), &slug)
        .await?
        .ok_or_else(PageError::not_found)?;
    let hidden = record.hidden;
    let frozen = board_builds::frozen_for(&state, visitor.user());
    let drawing = board_builds::matrix(&state, (key, &listed), record, spec, frozen).await?;
    Ok(cached(
        &req,
        drawing.key.etag(("matrix", frozen)),
        "image/svg+xml; charset=utf-8",
        drawing.svg.clone(),
        hidden,
    ))
}

/// Draw a challenge's matrix from its scored submissions and cells, bounded
/// (the best rows and columns): as `matrix.svg`, and smaller for the page.
pub(super) async fn matrix_svg_text(
    store: Arc<dyn Store>,
    record: ChallengeRecord,
    spec: ChallengeSpec,
    now: i64,
) -> Result<(String, String), StoreError> {
    // Only the best rows and columns are drawn: read those and their cells.
    let split = matrix_split(&record, &spec, now);
    let (attacks, scored_attacks) = store
        .best_submissions(record.id, Track::Attack, split, MATRIX_SVG.0)
        .await?;
    let (defenses, scored_defenses) = store
        .best_submissions(record.id, Track::Defense, split, MATRIX_SVG.1)
        .await?;
    let attackers: Vec<String> = attacks
        .iter()
        .map(|s| Party::Submission(s.id).key())
        .chain(
            spec.defense
                .iter()
                .flat_map(|d| &d.reference_attacks)
                .map(|name| Party::Reference(name.clone()).key()),
        )
        .collect();
    let cells = store
        .cells_of_attackers(record.id, split, &attackers)
        .await?;
    let team_names = super::team_names_in(&*store).await?;
    board_cache::compute(move || {
        let draw = |size| {
            svg::heatmap(&matrix(&MatrixInput {
                spec: &spec,
                attacks: &attacks,
                defenses: &defenses,
                scored: (scored_attacks, scored_defenses),
                cells: &cells,
                split,
                team_names: &team_names,
                size,
            }))
        };
        (draw(MATRIX_SVG), draw(MATRIX_INLINE))
    })
    .await
}

/// One solve on a flag challenge's board.
pub struct SolveRow {
    /// Place among counted solves; `None` for a solve that does not count.
    pub place: Option<usize>,
    pub team: String,
    /// RFC 3339 (UTC); pages show it in the reader's time zone.
    pub at: String,
    /// The value the solver holds now (0 for a solve that does not count).
    pub points: u64,
    /// The team counts (`Store::counted_teams`): staff-only, banned and hidden
    /// teams' solves are listed for organizers but earn nothing and do not lower
    /// the value.
    pub counted: bool,
}

/// A flag challenge's solves, first first, counted or not (pages show the
/// uncounted ones to organizers only, marked). Every counted solver holds the
/// challenge's current value (CTFd's dynamic scoring, counted solves only, as
/// the event scoreboard).
pub(super) fn solve_rows(
    record: &ChallengeRecord,
    flag: &riposte_core::challenge::FlagSpec,
    solves: &[riposte_core::store::Solve],
    names: &HashMap<TeamId, String>,
) -> Vec<SolveRow> {
    let points = FlagStanding::new(&record.slug, flag, solves).value();
    let mut place = 0;
    solves
        .iter()
        .map(|s| {
            if s.counted {
                place += 1;
            }
            SolveRow {
                place: s.counted.then_some(place),
                team: names.get(&s.team_id).cloned().unwrap_or_default(),
                at: view::datetime(s.created_at),
                points: if s.counted { points } else { 0 },
                counted: s.counted,
            }
        })
        .collect()
}

/// One row of the scoreboard page.
pub struct ScoreRow {
    pub rank: usize,
    pub team: String,
    pub score: String,
    pub parts: Vec<PartRow>,
    pub reached: String,
}

/// One part of a team's event score, as the page shows it.
pub struct PartRow {
    pub challenge: String,
    pub kind: &'static str,
    /// "1.5000 of 2.0000" for a track, the value for a flag.
    pub detail: String,
    pub points: String,
}

/// Rows one scoreboard page shows.
const PAGE_ROWS: usize = 100;

#[derive(Template)]
#[template(path = "scoreboard.html")]
struct ScoreboardPage<'a> {
    layout: Layout,
    rows: &'a [ScoreRow],
    /// The viewer's own team's row, when it is ranked but not on this page.
    own: Option<&'a ScoreRow>,
    /// 1-based page, the number of pages and the teams ranked.
    page: usize,
    pages: usize,
    teams: usize,
    /// The freeze, when one lasts ([`board_builds::freeze_note`]).
    frozen_note: Option<String>,
}

/// `?page=` of a board page, read as text so that a bad one gets a clear answer.
#[derive(Debug, serde::Deserialize)]
pub(super) struct PageNumber {
    page: Option<String>,
}

impl PageNumber {
    /// The 1-based page asked for (1 when none); past the last shows the last.
    pub(super) fn get(&self) -> Result<usize, PageError> {
        whole("page", self.page.as_deref())
            .map(|p| p.unwrap_or(1).max(1))
            .map_err(PageError::bad_request)
    }
}

/// A whole number from a query string, or what was wrong with it.
pub(super) fn whole(name: &str, raw: Option<&str>) -> Result<Option<usize>, String> {
    raw.map(|r| {
        r.trim().parse::<usize>().map_err(|_| {
            let shown: String = r.chars().take(40).collect();
            format!("{name} {shown:?} is not a whole number: expected 0, 1, 2, ...")
        })
    })
    .transpose()
}

#[tracing::instrument(skip_all)]
async fn page_scoreboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
    query: web::Query<PageNumber>,
) -> Result<HttpResponse, PageError> {
    anonymous_limit(&state, &req, &visitor)?;
    let (key, listed) = board_builds::board_key(&state).await?;
    let frozen = board_builds::frozen_for(&state, visitor.user());
    let board = board_builds::scoreboard(&state, key, listed, frozen).await?;
    let teams = board.rows.len();
    let pages = teams.div_ceil(PAGE_ROWS).max(1);
    let page = query.get()?.min(pages);
    let shown = (page - 1) * PAGE_ROWS..(page * PAGE_ROWS).min(teams);
    let own = visitor
        .user()
        .and_then(|u| u.team_id)
        .and_then(|team| board.index.get(&team).copied())
        .filter(|i| !shown.contains(i))
        .and_then(|i| board.rows.get(i));
    render(
        StatusCode::OK,
        &ScoreboardPage {
            layout: Layout::new(&state, &visitor),
            rows: board.rows.get(shown).unwrap_or_default(),
            own,
            page,
            pages,
            teams,
            frozen_note: board_builds::freeze_note(&state, visitor.user()),
        },
    )
}

#[tracing::instrument(skip_all)]
async fn history_svg(
    state: web::Data<AppState>,
    req: HttpRequest,
    visitor: Visitor,
) -> Result<HttpResponse, PageError> {
    anonymous_limit(&state, &req, &visitor)?;
    let (key, listed) = board_builds::board_key(&state).await?;
    let frozen = board_builds::frozen_for(&state, visitor.user());
    let history = board_builds::history(&state, key, listed, frozen).await?;
    Ok(cached(
        &req,
        history.key.etag(("history.svg", frozen)),
        "image/svg+xml; charset=utf-8",
        history.svg.clone(),
        false,
    ))
}

/// The score-over-time chart of `top` (name, steps), up to `now`.
pub(super) fn chart_svg(top: Vec<(String, Vec<(i64, f64)>)>, now: i64) -> String {
    let series: Vec<svg::Series> = top
        .into_iter()
        .map(|(name, steps)| svg::Series { name, steps })
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
    svg::line_chart(&series, start, now, label)
}

/// `?limit=&offset=` of `GET /api/v1/scoreboard`.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Rows, 1 to 1,000 (default 100).
    #[param(value_type = Option<u64>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
    /// Rows to skip (default 0).
    #[param(value_type = Option<u64>)]
    offset: Option<String>,
}

/// Rows one scoreboard response holds by default, and at most.
const API_ROWS_DEFAULT: usize = 100;
const API_ROWS_MAX: usize = 1000;

/// The event scoreboard as JSON: per team its `score` (the event score), the
/// `parts` it sums (challenge, kind, track score or flag value, the best
/// team's, and the points earned) and its history; `?limit=` rows (1 to 1,000,
/// default 100) from `?offset=`, with the `total`. Served from the cached
/// boards with an `ETag`.
#[utoipa::path(
    get,
    path = "/api/v1/scoreboard",
    operation_id = "get_scoreboard",
    tag = "Boards",
    summary = "The event scoreboard, a page of rows",
    description = "Every challenge on one scale: a flag solve earns the flag's value, a track \
        earns the challenge's points times the team's score over the best team's. Each row \
        lists its parts and its history. Answers with an `ETag` (`304` when unchanged).",
    params(PageQuery),
    responses(
        (status = 200, description = "A page of the scoreboard.", body = super::openapi::Scoreboard,
            headers(("ETag" = String, description = "Send it back in `If-None-Match`."))),
        (status = 304, description = "Unchanged since the `ETag` sent in `If-None-Match`."),
        (status = 400, description = "`limit` or `offset` out of range (code `invalid_input`).", body = super::openapi::ErrorBody),
    ),
)]
#[tracing::instrument(skip_all)]
async fn api_scoreboard(
    state: web::Data<AppState>,
    req: HttpRequest,
    user: ApiUser,
    page: web::Query<PageQuery>,
) -> Result<HttpResponse, ApiError> {
    let limit = whole("limit", page.limit.as_deref())
        .map_err(ApiError::invalid)?
        .unwrap_or(API_ROWS_DEFAULT);
    if !(1..=API_ROWS_MAX).contains(&limit) {
        return Err(ApiError::invalid(format!(
            "limit {limit} is out of range: expected 1 to {API_ROWS_MAX} rows"
        )));
    }
    let offset = whole("offset", page.offset.as_deref())
        .map_err(ApiError::invalid)?
        .unwrap_or(0);
    let (key, listed) = board_builds::board_key(&state).await?;
    let frozen = board_builds::frozen_for(&state, Some(&user.0));
    let board = board_builds::scoreboard(&state, key, listed.clone(), frozen).await?;
    let history = board_builds::history(&state, key, listed, frozen).await?;
    let etag = board.key.etag(("api", history.key, limit, offset, frozen));
    if holds(&req, &etag) {
        return Ok(cached(&req, etag, "application/json", Bytes::new(), true));
    }
    let body = board.page((history.key, limit, offset), || {
        let total = board.json.len();
        let mut body = String::with_capacity(256 * limit.min(total.saturating_sub(offset)) + 64);
        body.push_str("{\"rows\":[");
        for (k, (row, standing)) in board
            .json
            .iter()
            .zip(&board.standings)
            .skip(offset)
            .take(limit)
            .enumerate()
        {
            if k > 0 {
                body.push(',');
            }
            // The row's object with its history added before the closing brace.
            body.push_str(row.strip_suffix('}').unwrap_or(row));
            body.push_str(",\"history\":");
            body.push_str(
                history
                    .json
                    .get(&standing.team_id)
                    .map_or("[]", String::as_str),
            );
            body.push('}');
        }
        let frozen_at = frozen.map_or_else(
            || "null".to_owned(),
            |at| format!("\"{}\"", view::datetime(at)),
        );
        body.push_str(&format!(
            "],\"total\":{total},\"limit\":{limit},\"offset\":{offset},\"frozen_at\":{frozen_at}}}"
        ));
        Bytes::from(body)
    });
    Ok(cached(&req, etag, "application/json", body, true))
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
    let shown = submission.details.preview();
    if !shown.is_some_and(|p| p.examples.iter().any(|e| e.index == index)) {
        return Err(PageError::not_found());
    }
    let record = state
        .store
        .challenge_by_id(submission.challenge_id)
        .await?
        .ok_or_else(PageError::not_found)?;
    let spec = record.spec.clone();
    let (Some(task), Some(eval)) = (spec.task, spec.eval) else {
        return Err(PageError::not_found());
    };
    let shape = ImageShape::of(&task.input_shape).ok_or_else(|| {
        PageError::new(
            StatusCode::NOT_FOUND,
            format!("inputs of shape {:?} have no picture", task.input_shape),
        )
    })?;
    let artifacts = state.store.challenge_artifacts(record.id).await?;
    let inputs_key = eval.inputs.to_string_lossy().replace('\\', "/");
    let clean_sha = artifacts
        .require(&eval.inputs)
        .map_err(|e| PageError::internal(anyhow::anyhow!(e)))?
        .to_owned();
    let clean_bytes = state
        .blobs
        .read(&clean_sha)
        .await
        .map_err(PageError::internal)?;
    let attack_bytes = state
        .blobs
        .read(&submission.blob_sha256)
        .await
        .map_err(PageError::internal)?;
    let span = tracing::Span::current();
    let png = web::block(move || {
        let _entered = span.enter();
        picture_png(
            &clean_bytes,
            &attack_bytes,
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
    clean_bytes: &[u8],
    attack_bytes: &[u8],
    inputs_name: &str,
    submission: &Submission,
    index: usize,
    picture: Picture,
    shape: ImageShape,
    range: (f32, f32),
) -> anyhow::Result<Vec<u8>> {
    let limits = riposte_eval::tensor::Limits::default();
    let clean = riposte_eval::tensor::read_tensor(clean_bytes, Some(inputs_name), &limits)
        .context("reading the eval inputs")?;
    let adversarial = crate::worker::decode(attack_bytes, &submission.filename)
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
    use riposte_core::testing::example_boards as example;

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
        let attacks: Vec<Submission> = best_first(
            Track::Attack,
            &boards[0].scored,
            Split::Public,
            &boards[0].cells,
        )
        .into_iter()
        .cloned()
        .collect();
        let defenses: Vec<Submission> = best_first(
            Track::Defense,
            &boards[1].scored,
            Split::Public,
            &boards[0].cells,
        )
        .into_iter()
        .cloned()
        .collect();
        let map = matrix(&MatrixInput {
            spec: &spec,
            attacks: &attacks,
            defenses: &defenses,
            scored: (attacks.len(), defenses.len()),
            cells: &boards[0].cells,
            split: Split::Public,
            team_names: &names,
            size: MATRIX_SVG,
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
}
