//! Public pages, accounts and the challenge catalog.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use riposte_core::account::{NewPassword, name_key};
use riposte_core::challenge::{ChallengeKind, ChallengeSpec, Difficulty, OutputMode};
use riposte_core::store::{ChallengeRecord, Counts, NewSession, Party};
use serde::Deserialize;

use super::{Layout, render, see_other};
use crate::auth::{self, Visitor};
use crate::error::PageError;
use crate::services::accounts::{self, RegisterError};
use crate::startup::AppState;
use crate::view;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home))
        .route("/register", web::get().to(register_form))
        .route("/register", web::post().to(register))
        .route("/login", web::get().to(login_form))
        .route("/login", web::post().to(login))
        .route("/logout", web::post().to(logout))
        .route("/challenges", web::get().to(challenges))
        .route("/learn", web::get().to(learn))
        .route("/challenges/{slug}/playground", web::get().to(playground))
        .route("/challenges/{slug}", web::get().to(challenge))
        .route("/account", web::get().to(account))
        .route("/account/tokens", web::post().to(create_token))
        .route("/account/password", web::post().to(change_password))
        .route("/account/tokens/{id}/revoke", web::post().to(revoke_token));
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage {
    layout: Layout,
    counts: Counts,
    starts: Option<String>,
    ends: Option<String>,
}

#[tracing::instrument(skip_all)]
async fn home(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    let page = HomePage {
        layout: Layout::new(&state, &visitor),
        counts: state.store.counts().await?,
        starts: state.settings.event_starts.clone(),
        ends: state.settings.event_ends.clone(),
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "auth_form.html")]
struct AuthForm {
    layout: Layout,
    heading: &'static str,
    action: &'static str,
    register: bool,
    username: String,
    error: Option<String>,
}

impl AuthForm {
    fn register(layout: Layout) -> Self {
        Self {
            layout,
            heading: "Create an account",
            action: "/register",
            register: true,
            username: String::new(),
            error: None,
        }
    }

    fn login(layout: Layout) -> Self {
        Self {
            layout,
            heading: "Log in",
            action: "/login",
            register: false,
            username: String::new(),
            error: None,
        }
    }

    fn failed(mut self, username: &str, error: String) -> Self {
        self.username = username.chars().take(64).collect();
        self.error = Some(error);
        self
    }
}

#[derive(Deserialize)]
struct CredentialsForm {
    username: String,
    password: String,
    #[serde(default)]
    csrf_token: String,
}

async fn register_form(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PageError> {
    render(
        StatusCode::OK,
        &AuthForm::register(Layout::new(&state, &visitor)),
    )
}

async fn login_form(
    state: web::Data<AppState>,
    visitor: Visitor,
) -> Result<HttpResponse, PageError> {
    render(
        StatusCode::OK,
        &AuthForm::login(Layout::new(&state, &visitor)),
    )
}

fn throttled(state: &AppState, req: &HttpRequest) -> Result<(), PageError> {
    state.throttle.check(req).map_err(|wait| {
        PageError::too_many(
            wait,
            format!("Too many attempts from your address. Try again in {wait} s."),
        )
    })
}

/// Start a fresh session for `user` (a new id every login), replacing `previous`.
async fn start_session(
    state: &AppState,
    user_id: i64,
    previous: Option<&str>,
) -> Result<HttpResponse, PageError> {
    start_session_to(state, user_id, previous, "/challenges").await
}

async fn start_session_to(
    state: &AppState,
    user_id: i64,
    previous: Option<&str>,
    then: &str,
) -> Result<HttpResponse, PageError> {
    if let Some(old) = previous {
        state.store.delete_session(old).await?;
    }
    let secret = auth::random_secret();
    let now = state.clock.now();
    state
        .store
        .create_session(NewSession {
            id_hash: &auth::sha256_hex(&secret),
            user_id,
            csrf_token: &auth::random_secret(),
            now,
            expires_at: now + state.settings.session_absolute_hours * 3600,
        })
        .await?;
    let mut response = see_other(then);
    response
        .add_cookie(&auth::session_cookie(secret, state))
        .map_err(|e| PageError::internal(anyhow::Error::new(e)))?;
    Ok(response)
}

#[tracing::instrument(skip_all)]
async fn register(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, PageError> {
    visitor.check_csrf(&form.csrf_token)?;
    throttled(&state, &req)?;
    let fail = |status, msg: String| {
        render(
            status,
            &AuthForm::register(Layout::new(&state, &visitor)).failed(&form.username, msg),
        )
    };
    let registered = accounts::register(
        state.store.as_ref(),
        &form.username,
        &form.password,
        state.clock.now(),
    )
    .await;
    let user = match registered {
        Ok(user) => user,
        Err(RegisterError::Store(e)) => return Err(e.into()),
        Err(RegisterError::Internal(e)) => return Err(PageError::internal(e)),
        Err(e @ RegisterError::Invalid(_)) => return fail(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ (RegisterError::LooksLike { .. } | RegisterError::Taken(_))) => {
            return fail(StatusCode::CONFLICT, e.to_string());
        }
    };
    tracing::info!(user = user.id, "registered");
    start_session(&state, user.id, visitor.session_hash()).await
}

#[tracing::instrument(skip_all)]
async fn login(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<CredentialsForm>,
) -> Result<HttpResponse, PageError> {
    visitor.check_csrf(&form.csrf_token)?;
    throttled(&state, &req)?;
    match check_credentials(
        &state,
        &auth::client_key(&req),
        &form.username,
        &form.password,
    )
    .await
    {
        Ok(user_id) => start_session(&state, user_id, visitor.session_hash()).await,
        Err(LoginRefusal::TooMany(wait)) => Err(PageError::too_many(
            wait,
            "Too many failed logins for this account from your network in the last hour. Try again later.",
        )),
        Err(LoginRefusal::Banned) => Err(PageError::forbidden("This account has been suspended.")),
        Err(LoginRefusal::Wrong) => render(
            StatusCode::UNAUTHORIZED,
            &AuthForm::login(Layout::new(&state, &visitor))
                .failed(&form.username, "Wrong username or password.".to_owned()),
        ),
        Err(LoginRefusal::Internal(e)) => Err(PageError::internal(e)),
    }
}

pub enum LoginRefusal {
    Wrong,
    Banned,
    /// Seconds to wait.
    TooMany(u64),
    Internal(anyhow::Error),
}

impl From<riposte_core::store::StoreError> for LoginRefusal {
    fn from(e: riposte_core::store::StoreError) -> Self {
        LoginRefusal::Internal(anyhow::Error::new(e))
    }
}

/// The shared login rule for the form and `POST /api/v1/auth/token`.
///
/// Failures count per (account, client) as OWASP recommends: whoever guesses at an
/// account from one network is throttled there, and the owner elsewhere is not.
/// Guessing from many networks is bounded per network by `auth_attempts_per_ip_per_minute`.
pub async fn check_credentials(
    state: &AppState,
    client: &str,
    username: &str,
    password: &str,
) -> Result<i64, LoginRefusal> {
    const HOUR: i64 = 3600;
    if username.len() > 256 || password.len() > 1024 {
        return Err(LoginRefusal::Wrong);
    }
    let creds = state.store.credentials_by_key(&name_key(username)).await?;
    let now = state.clock.now();
    if let Some(c) = &creds {
        let failures = state
            .store
            .login_failures_since(c.user.id, client, now - HOUR)
            .await?;
        if failures >= state.settings.login_failures_per_hour {
            return Err(LoginRefusal::TooMany(HOUR as u64));
        }
    }
    let ok = auth::verify_password(
        password.to_owned(),
        creds.as_ref().map(|c| c.password_hash.clone()),
    )
    .await
    .map_err(LoginRefusal::Internal)?;
    match creds {
        Some(c) if ok && c.user.banned => Err(LoginRefusal::Banned),
        Some(c) if ok => Ok(c.user.id),
        Some(c) => {
            state
                .store
                .record_login_failure(c.user.id, client, now)
                .await?;
            Err(LoginRefusal::Wrong)
        }
        None => Err(LoginRefusal::Wrong),
    }
}

#[derive(Deserialize)]
pub struct CsrfOnly {
    #[serde(default)]
    pub csrf_token: String,
}

async fn logout(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    visitor.check_csrf(&form.csrf_token)?;
    if let Some(hash) = visitor.session_hash() {
        state.store.delete_session(hash).await?;
    }
    let mut response = see_other("/");
    response
        .add_cookie(&auth::expired_session_cookie(&state))
        .map_err(|e| PageError::internal(anyhow::Error::new(e)))?;
    Ok(response)
}

#[derive(Template)]
#[template(path = "challenges.html")]
struct ChallengesPage {
    layout: Layout,
    /// Each challenge with how far the visitor's team got on it.
    challenges: Vec<(ChallengeRecord, Option<Progress>)>,
    kinds: Vec<&'static str>,
    difficulties: Vec<&'static str>,
    kind: String,
    difficulty: String,
}

#[derive(Deserialize)]
struct CatalogFilter {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    difficulty: String,
}

#[tracing::instrument(skip_all)]
async fn challenges(
    state: web::Data<AppState>,
    visitor: Visitor,
    filter: web::Query<CatalogFilter>,
) -> Result<HttpResponse, PageError> {
    let kind = ChallengeKind::parse(&filter.kind);
    let difficulty = Difficulty::parse(&filter.difficulty);
    let challenges = state
        .store
        .list_challenges(false)
        .await?
        .into_iter()
        .filter(|c| kind.is_none_or(|k| c.kind == k))
        .filter(|c| difficulty.is_none_or(|d| c.difficulty == d));
    let team = visitor.user().and_then(|u| u.team_id);
    let mut marked = Vec::new();
    for c in challenges {
        let progress = match team {
            Some(team) => progress(&state, team, &c).await?,
            None => None,
        };
        marked.push((c, progress));
    }
    let page = ChallengesPage {
        layout: Layout::new(&state, &visitor),
        challenges: marked,
        kinds: ChallengeKind::ALL.iter().map(|k| k.as_str()).collect(),
        difficulties: Difficulty::ALL.iter().map(|d| d.as_str()).collect(),
        kind: kind.map_or("", ChallengeKind::as_str).to_owned(),
        difficulty: difficulty.map_or("", Difficulty::as_str).to_owned(),
    };
    render(StatusCode::OK, &page)
}

/// One challenge on the learning path.
struct Step {
    slug: String,
    title: String,
    summary: String,
    difficulty: &'static str,
    progress: Option<Progress>,
    /// `done`, `open`, or `locked` (a challenge it comes after is not done).
    state: &'static str,
    /// (slug, title) of the listed challenges it comes after.
    requires: Vec<(String, String)>,
}

/// One threat family's path.
struct Family {
    kind: &'static str,
    name: &'static str,
    lesson: &'static str,
    steps: Vec<Step>,
}

#[derive(Template)]
#[template(path = "learn.html")]
struct LearnPage {
    layout: Layout,
    families: Vec<Family>,
    done: usize,
    total: usize,
}

/// `/learn`: the listed challenges as one path per threat family, by the
/// bundles' `order`, then difficulty, then title; each marked with the team's
/// progress, and locked (advice, not a gate) while a challenge it `requires`
/// is not done.
#[tracing::instrument(skip_all)]
async fn learn(state: web::Data<AppState>, visitor: Visitor) -> Result<HttpResponse, PageError> {
    let mut listed = state.store.list_challenges(false).await?;
    listed.sort_by(|a, b| {
        (a.spec.order, a.difficulty, &a.title).cmp(&(b.spec.order, b.difficulty, &b.title))
    });
    let team = visitor.user().and_then(|u| u.team_id);
    let mut progress_of = std::collections::HashMap::new();
    for c in &listed {
        let p = match team {
            Some(team) => progress(&state, team, c).await?,
            None => None,
        };
        progress_of.insert(c.slug.clone(), p);
    }
    let titles: std::collections::HashMap<&str, &str> = listed
        .iter()
        .map(|c| (c.slug.as_str(), c.title.as_str()))
        .collect();
    let mut families = Vec::new();
    for kind in ChallengeKind::ALL {
        let rules = kind.rules();
        let steps: Vec<Step> = listed
            .iter()
            .filter(|c| c.kind == kind)
            .map(|c| {
                let requires: Vec<(String, String)> = c
                    .spec
                    .requires
                    .iter()
                    .filter_map(|r| titles.get(r.as_str()).map(|t| (r.clone(), (*t).to_owned())))
                    .collect();
                let progress = progress_of.get(&c.slug).copied().flatten();
                let waiting = requires
                    .iter()
                    .any(|(r, _)| progress_of.get(r).copied().flatten().is_none());
                Step {
                    slug: c.slug.clone(),
                    title: c.title.clone(),
                    summary: c.summary.clone(),
                    difficulty: c.difficulty.as_str(),
                    progress,
                    state: match (progress, waiting) {
                        (Some(_), _) => "done",
                        (None, true) => "locked",
                        (None, false) => "open",
                    },
                    requires,
                }
            })
            .collect();
        if !steps.is_empty() {
            families.push(Family {
                kind: kind.as_str(),
                name: rules.family,
                lesson: rules.lesson,
                steps,
            });
        }
    }
    let done = progress_of.values().filter(|p| p.is_some()).count();
    let page = LearnPage {
        layout: Layout::new(&state, &visitor),
        total: listed.len(),
        done,
        families,
    };
    render(StatusCode::OK, &page)
}

#[derive(Template)]
#[template(path = "playground.html")]
struct PlaygroundPage {
    layout: Layout,
    slug: String,
    title: String,
    norm: &'static str,
    epsilon: f64,
    /// The noise slider's start: the L-inf budget, or a visible amount.
    epsilon_for_slider: String,
    budget: i64,
    /// The challenge serves its digits (`public/eval_x.npy`) to load.
    has_digits: bool,
    /// The MLP's weights are public (`public/mlp_weights.npz`): FGSM and PGD
    /// steps run in the browser.
    has_weights: bool,
}

/// `/challenges/{slug}/playground`: draw or load a digit, perturb it, measure
/// it against the budget, ask the white-box targets, download it (see
/// `frontend/static/playground.js`). 404 for a challenge without a white-box
/// image model.
async fn playground(
    state: web::Data<AppState>,
    visitor: Visitor,
    slug: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let record = super::visible_challenge(&state, visitor.user(), &slug)
        .await?
        .ok_or_else(PageError::not_found)?;
    if super::query::playground_targets(&record.spec).is_empty() {
        return Err(PageError::not_found());
    }
    let threat = &record.spec.threat;
    let epsilon = threat.epsilon.unwrap_or(0.0);
    let norm = match threat.norm {
        Some(riposte_core::task::Norm::L2) => "l2",
        Some(riposte_core::task::Norm::Linf) => "linf",
        Some(riposte_core::task::Norm::L1) => "l1",
        Some(riposte_core::task::Norm::L0) => "l0",
        None => "",
    };
    let slider = if norm == "linf" {
        epsilon.min(1.0)
    } else {
        0.3
    };
    let page = PlaygroundPage {
        layout: Layout::new(&state, &visitor),
        has_digits: record.files.iter().any(|f| f.name == "eval_x.npy"),
        has_weights: record.files.iter().any(|f| f.name == "mlp_weights.npz"),
        slug: record.slug.clone(),
        title: record.title.clone(),
        norm,
        epsilon,
        epsilon_for_slider: format!("{slider:.2}"),
        budget: super::query::PLAYGROUND_BUDGET,
    };
    render(StatusCode::OK, &page)
}

/// How far a team got on a challenge, marked on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// The team found the flag.
    Solved,
    /// The team has a scored submission on a track (it is on the leaderboard).
    Scored,
}

impl Progress {
    pub fn word(self) -> &'static str {
        match self {
            Progress::Solved => "solved",
            Progress::Scored => "scored",
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Progress::Solved => "Your team found the flag",
            Progress::Scored => "Your team has a scored submission on the leaderboard",
        }
    }
}

async fn progress(
    state: &AppState,
    team: riposte_core::store::TeamId,
    challenge: &ChallengeRecord,
) -> Result<Option<Progress>, PageError> {
    let done = crate::services::challenges::done(state.store.as_ref(), team, challenge).await?;
    Ok(done.map(|flag| {
        if flag {
            Progress::Solved
        } else {
            Progress::Scored
        }
    }))
}

#[derive(Template)]
#[template(path = "challenge.html")]
struct ChallengePage {
    layout: Layout,
    c: ChallengeRecord,
    description_html: String,
    threat_rows: Vec<(&'static str, String)>,
    tracks: Vec<view::TrackRow>,
    /// The phases (event, defense, attack) on one axis, as inline SVG.
    timeline: Option<String>,
    /// The challenge has a playground (a white-box image model).
    playground: bool,
    /// How far the viewer's team got (marked as on the list and the path).
    progress: Option<Progress>,
    /// The challenge's hints as the viewer's team sees them; `(hint, html)`,
    /// the text rendered only once unlocked.
    hints: Vec<(crate::services::hints::HintView, Option<String>)>,
    /// Write-ups: published yet, the organizers' solution (HTML), the teams'
    /// (team, HTML, when) and the viewer's team's own (markdown, to edit).
    writeups_published: bool,
    solution_html: Option<String>,
    writeups: Vec<(String, String, String)>,
    own_writeup: Option<String>,
    mine: Vec<riposte_core::store::Submission>,
    flag: Option<FlagPanel>,
    query: Option<QueryPanel>,
}

/// The query API card: limits, the team's remaining budget, and ready-to-run snippets.
pub struct QueryPanel {
    pub output: &'static str,
    pub budget: u64,
    pub max_batch: usize,
    /// Target name and the team's queries left on it (`None` when logged out).
    pub targets: Vec<(String, Option<i64>)>,
    pub defenses: bool,
    pub curl: String,
    pub python: String,
}

fn query_panel_snippets(base: &str, spec: &ChallengeSpec, target: &str) -> (String, String) {
    let url = format!("{base}/api/v1/challenges/{}/query", spec.slug);
    if spec.completion.is_some() {
        let curl = format!(
            "curl -s -X POST '{url}' \\\n  -H \"Authorization: Bearer $RIPOSTE_TOKEN\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{{\"prompt\": \"hello \", \"max_chars\": 32, \"target\": \"{target}\"}}'"
        );
        let python = format!(
            "import os, requests\n\nr = requests.post(\n    \"{url}\",\n    headers={{\"Authorization\": f\"Bearer {{os.environ['RIPOSTE_TOKEN']}}\"}},\n    json={{\"prompt\": \"hello \", \"max_chars\": 32, \"target\": \"{target}\"}},\n)\nr.raise_for_status()\nprint(r.json()[\"completion\"], r.headers[\"X-Queries-Remaining\"])"
        );
        return (curl, python);
    }
    let shape = spec
        .task
        .as_ref()
        .map(|t| {
            t.input_shape
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let curl = format!(
        "# batch.npy: float32, shape (N, {shape})\ncurl -s -X POST '{url}?target={target}' \\\n  -H \"Authorization: Bearer $RIPOSTE_TOKEN\" \\\n  -H 'Content-Type: application/x-npy' \\\n  --data-binary @batch.npy"
    );
    let python = format!(
        "import os, numpy as np, requests\n\nx = np.zeros((1, {shape}), dtype=np.float32)  # your inputs\nr = requests.post(\n    \"{url}\",\n    headers={{\"Authorization\": f\"Bearer {{os.environ['RIPOSTE_TOKEN']}}\"}},\n    json={{\"inputs\": x.tolist(), \"target\": \"{target}\"}},\n)\nr.raise_for_status()\nanswer = r.json()  # labels, confidences or probabilities\nprint(answer, r.headers[\"X-Queries-Remaining\"])"
    );
    (curl, python)
}

/// What the page says about a flag challenge.
pub struct FlagPanel {
    pub value: u64,
    pub solves: usize,
    pub first_blood: Option<String>,
    pub solved: bool,
    pub notice: Option<(&'static str, &'static str)>,
}

#[derive(Deserialize)]
struct ChallengeQuery {
    #[serde(default)]
    flag: String,
}

#[tracing::instrument(skip_all, fields(slug = %slug))]
async fn challenge(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    slug: web::Path<String>,
    query: web::Query<ChallengeQuery>,
) -> Result<HttpResponse, PageError> {
    let record = super::visible_challenge(&state, visitor.user(), &slug)
        .await?
        .ok_or_else(PageError::not_found)?;
    let spec: ChallengeSpec = record.spec.clone();
    let team = visitor.user().and_then(|u| u.team_id);
    let flag = match &spec.flag {
        Some(flag) => {
            let frozen = super::board_builds::frozen_for(&state, visitor.user());
            let viewer = (team, frozen);
            Some(flag_panel(&state, &record, flag, viewer, &query.flag).await?)
        }
        None => None,
    };
    let mine = match visitor.user().and_then(|u| u.team_id) {
        Some(team) => state.store.team_submissions(team, record.id).await?,
        None => Vec::new(),
    };
    let query_panel = match &spec.query {
        Some(q) => Some(query_panel(&state, &req, &record, &spec, q, team).await?),
        None => None,
    };
    let shown = crate::services::writeups::shown(
        state.store.as_ref(),
        visitor.user(),
        &record,
        (&state.timeline.get(), state.clock.now()),
    )
    .await?;
    let page = ChallengePage {
        query: query_panel,
        flag,
        mine,
        layout: Layout::new(&state, &visitor),
        description_html: view::markdown(view::without_title(&record.readme, &record.title)),
        threat_rows: view::threat_rows(&spec),
        tracks: view::track_rows(&spec, state.clock.now()),
        timeline: view::phases_svg(&spec, &state.timeline.get(), state.clock.now()),
        playground: !super::query::playground_targets(&spec).is_empty(),
        progress: match team {
            Some(team) => progress(&state, team, &record).await?,
            None => None,
        },
        writeups_published: shown.published,
        solution_html: shown.solution.as_deref().map(view::markdown),
        writeups: shown
            .writeups
            .iter()
            .map(|(_, team, w)| {
                (
                    team.clone(),
                    view::markdown(&w.body),
                    view::datetime(w.updated_at),
                )
            })
            .collect(),
        own_writeup: shown.own.map(|w| w.body),
        hints: crate::services::hints::list(state.store.as_ref(), visitor.user(), &record)
            .await?
            .into_iter()
            .map(|h| {
                let html = h.text.as_deref().map(view::markdown);
                (h, html)
            })
            .collect(),
        c: record,
    };
    render(StatusCode::OK, &page)
}

/// The flag panel: the current value, solves, first blood, the team's solve and
/// the notice after an attempt (`?flag=correct|wrong`). While the viewer's
/// boards are frozen, the value and solves are those of the freeze; the team's
/// own solve still shows.
async fn flag_panel(
    state: &AppState,
    record: &ChallengeRecord,
    flag: &riposte_core::challenge::FlagSpec,
    (team, frozen): (Option<riposte_core::store::TeamId>, Option<i64>),
    notice: &str,
) -> Result<FlagPanel, PageError> {
    let mut all = state.store.solves(record.id).await?;
    let solved = team.is_some_and(|t| all.iter().any(|s| s.team_id == t));
    if let Some(at) = frozen {
        all.retain(|s| s.created_at <= at);
    }
    // Only counted solves lower the value and make first blood (as the scoreboard).
    let standing = riposte_core::leaderboard::FlagStanding::new(&record.slug, flag, &all);
    let first_blood = match standing.solvers.first() {
        Some(&(team, _)) => state.store.team(team).await?.map(|t| t.name),
        None => None,
    };
    Ok(FlagPanel {
        value: standing.value(),
        solved,
        solves: standing.solvers.len(),
        first_blood,
        notice: match notice {
            "correct" => Some(("ok", "Correct! The flag is yours.")),
            "wrong" => Some(("error", "That is not the flag.")),
            _ => None,
        },
    })
}

/// The query panel: the answer's form, the budget left per target, and snippets.
async fn query_panel(
    state: &AppState,
    req: &HttpRequest,
    record: &ChallengeRecord,
    spec: &ChallengeSpec,
    q: &riposte_core::challenge::QuerySpec,
    team: Option<riposte_core::store::TeamId>,
) -> Result<QueryPanel, PageError> {
    let budget = i64::try_from(q.budget).unwrap_or(i64::MAX);
    let mut targets = Vec::new();
    for name in &q.targets {
        let left = match team {
            Some(team) => Some(
                budget
                    - state
                        .store
                        .queries_used(record.id, team, &Party::Organizer(name.clone()).key())
                        .await?,
            ),
            None => None,
        };
        targets.push((name.clone(), left));
    }
    let info = req.connection_info();
    let base = format!("{}://{}", info.scheme(), info.host());
    let first = q.targets.first().map_or("defense:<id>", String::as_str);
    let (curl, python) = query_panel_snippets(&base, spec, first);
    Ok(QueryPanel {
        output: match q.output {
            OutputMode::Label => "the predicted label",
            OutputMode::Top1 => "the predicted label and its probability",
            OutputMode::Probabilities => "every class probability",
            OutputMode::Completion => "the model's greedy completion of your prompt",
        },
        budget: q.budget,
        max_batch: q.max_batch,
        targets,
        defenses: q.defenses,
        curl,
        python,
    })
}

pub struct TokenRow {
    pub id: i64,
    pub name: String,
    /// RFC 3339 (UTC), shown in the reader's time zone.
    pub created: String,
    pub last_used: Option<String>,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    tokens: Vec<TokenRow>,
    new_token: Option<String>,
    notice: Option<&'static str>,
    error: Option<String>,
}

/// What the account page shows above its sections.
enum AccountFlash {
    Nothing,
    NewToken(String),
    Notice(&'static str),
    Error(String),
}

async fn account_page(
    state: &AppState,
    visitor: &Visitor,
    status: StatusCode,
    flash: AccountFlash,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    let tokens = state
        .store
        .list_tokens(user.id)
        .await?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            created: view::datetime(t.created_at),
            last_used: t.last_used_at.map(view::datetime),
        })
        .collect();
    let (mut new_token, mut notice, mut error) = (None, None, None);
    match flash {
        AccountFlash::Nothing => {}
        AccountFlash::NewToken(token) => new_token = Some(token),
        AccountFlash::Notice(text) => notice = Some(text),
        AccountFlash::Error(text) => error = Some(text),
    }
    let page = AccountPage {
        layout: Layout::new(state, visitor),
        tokens,
        new_token,
        notice,
        error,
    };
    let mut response = render(status, &page)?;
    // A freshly shown token must not linger in any cache.
    response.headers_mut().insert(
        actix_web::http::header::CACHE_CONTROL,
        actix_web::http::header::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

async fn account(
    state: web::Data<AppState>,
    visitor: Visitor,
    query: web::Query<AccountQuery>,
) -> Result<HttpResponse, PageError> {
    let flash = match query.password.as_deref() {
        Some("changed") => {
            AccountFlash::Notice("Your password was changed; your other sessions were signed out.")
        }
        _ => AccountFlash::Nothing,
    };
    account_page(&state, &visitor, StatusCode::OK, flash).await
}

#[derive(Deserialize)]
struct AccountQuery {
    password: Option<String>,
}

#[derive(Deserialize)]
struct PasswordForm {
    #[serde(default)]
    current_password: String,
    #[serde(default)]
    new_password: String,
    #[serde(default)]
    csrf_token: String,
}

/// Change one's own password: the current one proves it is the owner; every other
/// session ends, this one starts afresh.
async fn change_password(
    state: web::Data<AppState>,
    visitor: Visitor,
    req: HttpRequest,
    form: web::Form<PasswordForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let refuse = |status, msg: &str| {
        account_page(
            &state,
            &visitor,
            status,
            AccountFlash::Error(msg.to_owned()),
        )
    };
    let new = match NewPassword::parse(&form.new_password) {
        Ok(p) => p,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, &capitalized(&e.0)).await,
    };
    let client = auth::client_key(&req);
    match check_credentials(&state, &client, &user.username, &form.current_password).await {
        Ok(id) if id == user.id => {}
        Ok(_) | Err(LoginRefusal::Wrong) | Err(LoginRefusal::Banned) => {
            return refuse(StatusCode::FORBIDDEN, "The current password is wrong.").await;
        }
        Err(LoginRefusal::TooMany(wait)) => {
            return Err(PageError::too_many(
                wait,
                "Too many wrong passwords: try again later.",
            ));
        }
        Err(LoginRefusal::Internal(e)) => return Err(PageError::internal(e)),
    }
    let hash = auth::hash_password(new.expose().to_owned())
        .await
        .map_err(PageError::internal)?;
    state.store.set_password(user.id, &hash).await?;
    tracing::info!(user = user.id, "password changed");
    start_session_to(&state, user.id, None, "/account?password=changed").await
}

#[derive(Deserialize)]
struct TokenForm {
    #[serde(default)]
    name: String,
    #[serde(default)]
    csrf_token: String,
}

async fn create_token(
    state: web::Data<AppState>,
    visitor: Visitor,
    form: web::Form<TokenForm>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    let (status, message) = match auth::issue_api_token(&state, user.id, &form.name).await {
        Ok(token) => {
            return account_page(
                &state,
                &visitor,
                StatusCode::OK,
                AccountFlash::NewToken(token),
            )
            .await;
        }
        Err(auth::TokenRefusal::Invalid(m)) => (StatusCode::BAD_REQUEST, m),
        Err(auth::TokenRefusal::TooMany(m)) => (StatusCode::CONFLICT, m),
        Err(auth::TokenRefusal::Store(e)) => return Err(e.into()),
    };
    let message = capitalized(&message);
    account_page(&state, &visitor, status, AccountFlash::Error(message)).await
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

async fn revoke_token(
    state: web::Data<AppState>,
    visitor: Visitor,
    id: web::Path<i64>,
    form: web::Form<CsrfOnly>,
) -> Result<HttpResponse, PageError> {
    let user = visitor.require()?;
    visitor.check_csrf(&form.csrf_token)?;
    state.store.revoke_token(user.id, *id).await?;
    state.query_models.forget_tokens();
    Ok(see_other("/account"))
}
