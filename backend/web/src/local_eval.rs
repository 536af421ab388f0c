//! `riposte eval`, `riposte replay` and `riposte report`: the workers' own
//! scorer, run from the command line.
//!
//! `eval` and `report` import the bundle into a throwaway SQLite database and
//! blob folder, enter the file as a submission of a local team and let an
//! in-process worker score it exactly as a server's would (the gate, the matrix,
//! the reference attack, the background battery); nothing else computes a score.
//! `replay` runs the scorer again on a submission of the configured database
//! and compares every number with what was stored.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use riposte_core::challenge::{Bundle, ChallengeSpec, RankBy};
use riposte_core::leaderboard;
use riposte_core::store::prelude::*;
use riposte_core::store::{
    BatteryState, Evaluation, NewSubmission, Split, Submission, SubmissionStatus, Track,
};
use riposte_db::SqlStore;
use riposte_db::blobs::BlobStore;
use serde::Serialize;

use crate::settings::Settings;
use crate::startup;

/// `riposte eval`: score an attack file or a defense model locally.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("submission").required(true).args(["attack", "defense"])))]
pub struct EvalArgs {
    /// The challenge bundle folder (with challenge.toml).
    #[arg(long)]
    pub challenge: PathBuf,
    /// An attack file (adversarial examples, stolen model, scores, ... as the challenge asks).
    #[arg(long)]
    pub attack: Option<PathBuf>,
    /// A defense model (.onnx).
    #[arg(long)]
    pub defense: Option<PathBuf>,
    /// Queries per example of the reference attack (the server's
    /// `reference_attack_queries`).
    #[arg(long, default_value_t = 100)]
    pub queries: u32,
    /// Eval examples the reference attack covers, the first N (the server's
    /// `reference_attack_examples`).
    #[arg(long, default_value_t = 100)]
    pub attack_examples: usize,
    /// Skip the background battery a defense would meet on the server.
    #[arg(long)]
    pub no_battery: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `riposte report`: a model's risk report.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// The model (.onnx), scored as a defense of the challenge.
    pub model: PathBuf,
    /// The challenge bundle folder (with challenge.toml).
    #[arg(long)]
    pub challenge: PathBuf,
    /// Where to write the report; the extension picks the format (.html, .json, .md).
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
    /// Attack files (the challenge's format) to include in the matrix.
    #[arg(long = "attack")]
    pub attacks: Vec<PathBuf>,
    /// Queries per example of the reference attack.
    #[arg(long, default_value_t = 100)]
    pub queries: u32,
    /// Eval examples the reference attack covers.
    #[arg(long, default_value_t = 100)]
    pub attack_examples: usize,
}

/// A throwaway platform: one challenge, one team, an in-process worker.
struct Local {
    _dir: tempfile::TempDir,
    store: Arc<dyn Store>,
    sql: SqlStore,
    blobs: BlobStore,
    evaluator: riposte_evaluator::Evaluator,
    challenge: i64,
    spec: ChallengeSpec,
    team: i64,
    user: i64,
}

impl Local {
    async fn open(bundle_dir: &Path, queries: u32, examples: usize) -> anyhow::Result<Self> {
        let bundle = Bundle::load(bundle_dir)
            .map_err(|p| anyhow::anyhow!("{}: {p}", bundle_dir.display()))?;
        let dir = tempfile::tempdir().context("making a scratch folder")?;
        let mut settings = Settings {
            data_dir: dir.path().to_owned(),
            reference_attack_queries: queries,
            reference_attack_examples: examples,
            ..Settings::default()
        };
        settings.blob_store = String::new();
        let (sql, blobs) = startup::open_storage(&settings).await?;
        let store: Arc<dyn Store> = Arc::new(sql.clone());
        let clock = Arc::new(riposte_core::Clock::with_offset(0));
        let now = clock.now();
        crate::import::import_bundle(&sql, &blobs, &bundle, now).await?;
        let record = store
            .challenge_by_slug(&bundle.spec.slug)
            .await?
            .context("the imported challenge is missing")?;
        let user = store
            .create_user(
                "local",
                "local",
                "!",
                riposte_core::account::Role::Competitor,
                now,
            )
            .await?;
        let team = store
            .create_team(user.id, "local", "local", "local-invite", now)
            .await?;
        let evaluator = startup::evaluator(
            &settings,
            store.clone(),
            blobs.clone(),
            0,
            Arc::new(tokio::sync::Notify::new()),
            clock,
        )?;
        Ok(Self {
            _dir: dir,
            spec: record.spec.clone(),
            challenge: record.id,
            store,
            sql,
            blobs,
            evaluator,
            team: team.id,
            user: user.id,
        })
    }

    /// Enter `file` on `track` and score it (and, with `battery`, its battery).
    async fn submit(&self, track: Track, file: &Path, battery: bool) -> anyhow::Result<Submission> {
        let bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
        let size = i64::try_from(bytes.len()).unwrap_or(i64::MAX);
        let sha = self.blobs.put_bytes(bytes).await?;
        let filename = file
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("upload")
            .to_owned();
        let submission = self
            .store
            .create_submission(NewSubmission {
                challenge_id: self.challenge,
                team_id: self.team,
                user_id: self.user,
                track,
                blob_sha256: &sha,
                filename: &filename,
                size,
                now: self.evaluator.clock.now(),
                limit: i64::MAX,
                limit_since: 0,
            })
            .await?;
        self.drain(battery).await?;
        self.store
            .submission(submission.id)
            .await?
            .context("the submission is gone")
    }

    /// Run jobs until none is left (batteries only when `battery`).
    async fn drain(&self, battery: bool) -> anyhow::Result<()> {
        loop {
            let now = self.evaluator.clock.now();
            if self.store.scoring_jobs_waiting(now + 3600).await? == 0 && !battery {
                return Ok(());
            }
            match self.evaluator.step().await? {
                riposte_evaluator::StepOutcome::Idle => {
                    if self.store.queue_depth().await? == 0 {
                        return Ok(());
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                riposte_evaluator::StepOutcome::GaveBack(_, reason) => {
                    eprintln!("note: a job will be retried: {reason}");
                }
                _ => {}
            }
        }
    }

    async fn close(self) {
        self.sql.close().await;
    }
}

/// One row of `riposte eval`'s table: an opponent on one split.
#[derive(Debug, Serialize)]
struct CellRow {
    attacker: String,
    defender: String,
    split: &'static str,
    total: i64,
    fooled: i64,
}

#[derive(Debug, Serialize)]
struct EvalOutput {
    submission: i64,
    track: &'static str,
    status: String,
    message: String,
    gate_accuracy: Option<f64>,
    details: serde_json::Value,
    cells: Vec<CellRow>,
    /// Per split: the score the board ranks by, the sum, the worst case.
    scores: Vec<SplitScore>,
    battery: Option<riposte_core::store::BatterySummary>,
}

#[derive(Debug, Serialize)]
struct SplitScore {
    split: &'static str,
    score: f64,
    sum: f64,
    worst_case: Option<f64>,
    opponents: usize,
}

/// `riposte eval`; the exit code is 0 when the file was scored, 1 when it was
/// refused or failed.
pub async fn eval(args: EvalArgs) -> anyhow::Result<i32> {
    let (track, file) = match (&args.attack, &args.defense) {
        (Some(f), None) => (Track::Attack, f.clone()),
        (None, Some(f)) => (Track::Defense, f.clone()),
        _ => bail!("give exactly one of --attack FILE or --defense MODEL"),
    };
    let local = Local::open(&args.challenge, args.queries, args.attack_examples).await?;
    let result = eval_in(&local, track, &file, !args.no_battery).await;
    local.close().await;
    let out = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print_eval(&out);
    }
    Ok(i32::from(out.status != SubmissionStatus::Scored.as_str()))
}

async fn eval_in(
    local: &Local,
    track: Track,
    file: &Path,
    battery: bool,
) -> anyhow::Result<EvalOutput> {
    let s = local.submit(track, file, battery).await?;
    let cells: Vec<Evaluation> = local.store.evaluations(local.challenge).await?;
    let me = riposte_core::store::Party::Submission(s.id);
    let rule = local
        .spec
        .defense
        .as_ref()
        .map_or(RankBy::Sum, |d| d.rank_by);
    let scored = [s.clone()];
    let scores = [Split::Public, Split::Private]
        .into_iter()
        .filter_map(|split| {
            let standing = leaderboard::rank(track, split, rule, &scored, &cells)
                .into_iter()
                .next()?;
            Some(SplitScore {
                split: split.as_str(),
                score: standing.score,
                sum: standing.sum,
                worst_case: standing.worst_case,
                opponents: standing.opponents,
            })
        })
        .collect();
    let battery = match local.store.battery_state(s.id).await? {
        BatteryState::Done(summary) => Some(summary),
        _ => None,
    };
    Ok(EvalOutput {
        submission: s.id,
        track: track.as_str(),
        status: s.status.as_str().to_owned(),
        message: s.message.clone(),
        gate_accuracy: s.gate_accuracy,
        details: serde_json::from_str(&s.details.to_json()).unwrap_or_default(),
        cells: cells
            .iter()
            .filter(|c| c.attacker == me || c.defender == me)
            .map(|c| CellRow {
                attacker: c.attacker.key(),
                defender: c.defender.key(),
                split: c.split.as_str(),
                total: c.total,
                fooled: c.fooled,
            })
            .collect(),
        scores: if s.status == SubmissionStatus::Scored {
            scores
        } else {
            vec![]
        },
        battery,
    })
}

fn print_eval(out: &EvalOutput) {
    println!("{} #{}: {}", out.track, out.submission, out.status);
    if !out.message.is_empty() {
        println!("  {}", out.message);
    }
    if let Some(g) = out.gate_accuracy {
        println!("gate accuracy {g:.4}");
    }
    if !out.cells.is_empty() {
        println!(
            "{:<28} {:<28} {:<8} {:>7} {:>7} {:>7}",
            "attacker", "defender", "split", "total", "fooled", "rate"
        );
        for c in &out.cells {
            println!(
                "{:<28} {:<28} {:<8} {:>7} {:>7} {:>6.1}%",
                c.attacker,
                c.defender,
                c.split,
                c.total,
                c.fooled,
                100.0 * c.fooled as f64 / c.total.max(1) as f64
            );
        }
    }
    for s in &out.scores {
        let worst = s
            .worst_case
            .map_or_else(|| "-".to_owned(), |w| format!("{w:.4}"));
        println!(
            "{} split: score {:.4} (sum {:.4} over {} opponents, worst case {worst})",
            s.split, s.score, s.sum, s.opponents
        );
    }
    if let Some(b) = &out.battery {
        println!(
            "battery: {} of {} examples broken, {} queries used (budget {} per example{}), {:.1} s",
            b.fooled,
            b.examples,
            b.queries_used,
            b.queries_per_example,
            if b.cut_short { ", cut short" } else { "" },
            b.seconds
        );
    }
}

/// `riposte replay ID`: 0 when every number matches, 1 when one differs.
pub async fn replay(settings: &Settings, id: i64, json: bool) -> anyhow::Result<i32> {
    let (sql, blobs) = startup::open_storage(settings).await?;
    let store: Arc<dyn Store> = Arc::new(sql.clone());
    let evaluator = startup::evaluator(
        settings,
        store,
        blobs,
        0,
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(riposte_core::Clock::with_offset(
            settings.clock_offset_seconds,
        )),
    )?;
    let report = riposte_evaluator::replay::replay(&evaluator, id).await;
    drop(evaluator);
    sql.close().await;
    let report = report?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.to_text());
    }
    Ok(i32::from(!report.identical))
}

/// `riposte report MODEL --challenge DIR`.
pub async fn report(args: ReportArgs) -> anyhow::Result<i32> {
    let ext = args
        .out
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !["json", "md", "markdown", "html", "htm"].contains(&ext.as_str()) {
        eprintln!(
            "refused: --out {}: {:?} is not a report format: expected a name ending in .html, .json or .md",
            args.out.display(),
            ext
        );
        return Ok(1);
    }
    let local = Local::open(&args.challenge, args.queries, args.attack_examples).await?;
    let result = report_in(&local, &args).await;
    local.close().await;
    let (report, defense) = result?;
    let Some(report) = report else {
        eprintln!("refused: {}", defense.message);
        return Ok(1);
    };
    let body = match ext.as_str() {
        "json" => report.to_json(),
        "md" | "markdown" => report.to_markdown(),
        _ => report.to_html()?,
    };
    write_whole(&args.out, body.as_bytes())
        .with_context(|| format!("writing {}", args.out.display()))?;
    println!("wrote {}", args.out.display());
    Ok(0)
}

async fn report_in(
    local: &Local,
    args: &ReportArgs,
) -> anyhow::Result<(Option<crate::report::RiskReport>, Submission)> {
    if local.spec.kind != riposte_core::challenge::ChallengeKind::Evasion {
        bail!(
            "a risk report is made for evasion challenges; {} is a {} challenge",
            local.spec.slug,
            local.spec.kind.as_str()
        );
    }
    for attack in &args.attacks {
        let s = local.submit(Track::Attack, attack, false).await?;
        if s.status != SubmissionStatus::Scored {
            bail!("{}: {}", attack.display(), s.message);
        }
    }
    let defense = local.submit(Track::Defense, &args.model, true).await?;
    if defense.status != SubmissionStatus::Scored {
        return Ok((None, defense));
    }
    // The organizer targets meet the attacks too, but the report is the model's:
    // every split, as an organizer sees it.
    let report = crate::report::build(
        &*local.store,
        &local.blobs,
        crate::report::Subject::Defense(&defense),
        &local.spec,
        &[Split::Public, Split::Private],
    )
    .await?;
    Ok((Some(report), defense))
}

/// Write `bytes` to `path` whole or not at all: a temporary file beside it, then a rename.
fn write_whole(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
