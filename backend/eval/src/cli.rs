//! `riposte model check` and `riposte eval`: score files locally through the same
//! model hosts the server uses.
//!
//! The `riposte` binary flattens [`ModelCommand`] and [`EvalArgs`] into its own clap
//! tree and calls [`run_model`] / [`run_eval`], which return the process exit code:
//! 0 when the model or file passed, 1 when it was refused (the reason is printed).
//! Errors (a missing file, a broken bundle) come back as `anyhow` errors.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use riposte_core::challenge::{Bundle, EvalSet};
use riposte_core::scoring;
use riposte_core::task::{Norm, TaskSpec, ThreatModel};
use serde::Serialize;

use crate::attack::SquareAttack;
use crate::host::{HostCommand, HostLimits, ModelHost};
use crate::score::{self, EvasionSet};
use crate::{onnx, tensor};

/// `riposte model ...`
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ModelCommand {
    /// Check an ONNX model against a challenge: static checks, then a sandboxed load
    /// and a trial inference on the challenge's eval inputs.
    Check {
        /// The .onnx file.
        model: PathBuf,
        /// The challenge bundle folder (with challenge.toml).
        #[arg(long)]
        challenge: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

/// `riposte eval`: score an attack file or a defense model locally.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("submission").required(true).args(["attack", "defense"])))]
pub struct EvalArgs {
    /// The challenge bundle folder (with challenge.toml).
    #[arg(long)]
    pub challenge: PathBuf,
    /// Adversarial examples for the eval inputs (.npy, .npz, safetensors).
    #[arg(long)]
    pub attack: Option<PathBuf>,
    /// A defense model (.onnx) to score for clean and robust accuracy.
    #[arg(long)]
    pub defense: Option<PathBuf>,
    /// Queries per example for the reference attack (with --defense).
    #[arg(long, default_value_t = 100)]
    pub queries: u32,
    /// Attack only the first N eval examples (with --defense).
    #[arg(long, default_value_t = 200)]
    pub attack_examples: usize,
    /// Seed of the reference attack.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs a `riposte model` command with model hosts started as `<this exe> model-host`.
pub fn run_model(cmd: ModelCommand) -> anyhow::Result<i32> {
    run_model_with(cmd, HostCommand::current_exe_model_host()?)
}

/// Runs `riposte eval` with model hosts started as `<this exe> model-host`.
pub fn run_eval(args: EvalArgs) -> anyhow::Result<i32> {
    run_eval_with(args, HostCommand::current_exe_model_host()?)
}

/// [`run_model`] with an explicit host command (tests use the eval crate's binary).
pub fn run_model_with(cmd: ModelCommand, host: HostCommand) -> anyhow::Result<i32> {
    block_on(async move {
        match cmd {
            ModelCommand::Check {
                model,
                challenge,
                json,
            } => check_model(&model, &challenge, json, &host).await,
        }
    })
}

/// [`run_eval`] with an explicit host command.
pub fn run_eval_with(args: EvalArgs, host: HostCommand) -> anyhow::Result<i32> {
    block_on(async move {
        match (&args.attack, &args.defense) {
            (Some(file), None) => eval_attack(&args, file, &host).await,
            (None, Some(model)) => eval_defense(&args, model, &host).await,
            _ => bail!("give exactly one of --attack FILE or --defense MODEL"),
        }
    })
}

/// Runs a future on a private runtime in its own thread, so the caller may or may not
/// be inside a tokio runtime already.
fn block_on<F>(future: F) -> anyhow::Result<i32>
where
    F: std::future::Future<Output = anyhow::Result<i32>> + Send + 'static,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("starting the async runtime")?;
                runtime.block_on(future)
            })
            .join()
            .map_err(|_| anyhow::anyhow!("the evaluation thread panicked"))?
    })
}

/// What the CLI needs from a bundle.
struct Challenge {
    dir: PathBuf,
    task: TaskSpec,
    norm: Option<Norm>,
    epsilon: Option<f64>,
    threat: ThreatModel,
    targets: Vec<(String, PathBuf)>,
    eval: Option<(PathBuf, PathBuf)>,
    eval_spec: Option<EvalSet>,
}

impl Challenge {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let bundle = Bundle::load(dir).map_err(|p| anyhow::anyhow!("{}: {p}", dir.display()))?;
        let spec = bundle.spec;
        let task = spec
            .task
            .with_context(|| format!("challenge {} has no [task]", spec.slug))?;
        Ok(Self {
            targets: spec
                .targets
                .iter()
                .map(|t| (t.name.clone(), bundle.dir.join(&t.model)))
                .collect(),
            eval: spec
                .eval
                .as_ref()
                .map(|e| (bundle.dir.join(&e.inputs), bundle.dir.join(&e.labels))),
            eval_spec: spec.eval.clone(),
            dir: bundle.dir,
            task,
            norm: spec.threat.norm,
            epsilon: spec.threat.epsilon,
            threat: spec.threat,
        })
    }

    /// The eval set as the server's scorer sees it (same checks, same split).
    fn evasion_set(&self) -> anyhow::Result<EvasionSet> {
        let eval = self
            .eval_spec
            .as_ref()
            .with_context(|| format!("{} has no [eval] section", self.dir.display()))?;
        let (x, y) = self.eval_set()?;
        EvasionSet::new(self.task.clone(), &self.threat, eval, x, y)
            .with_context(|| format!("the eval set of {}", self.dir.display()))
    }

    fn eval_set(&self) -> anyhow::Result<(tensor::Tensor, Vec<i64>)> {
        let (inputs, labels) = self
            .eval
            .as_ref()
            .with_context(|| format!("{} has no [eval] inputs and labels", self.dir.display()))?;
        let limits = tensor::Limits {
            max_bytes: 1 << 30,
            max_elements: 1 << 28,
            ..Default::default()
        };
        let x = read_file(inputs)?;
        let x = tensor::read_tensor(&x, file_name(inputs), &limits)
            .with_context(|| format!("reading {}", inputs.display()))?;
        let y = tensor::read_npy_labels(&read_file(labels)?, &limits)
            .with_context(|| format!("reading {}", labels.display()))?;
        if x.num_examples() != y.len() {
            bail!(
                "{} has {} examples but {} has {} labels",
                inputs.display(),
                x.num_examples(),
                labels.display(),
                y.len()
            );
        }
        tensor::validate_examples(&x, &self.task)
            .with_context(|| format!("checking {}", inputs.display()))?;
        Ok((x, y))
    }

    fn limits(&self) -> HostLimits {
        HostLimits::for_task(&self.task)
    }
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

fn predictions(logits: &[f32], classes: usize) -> Vec<Option<usize>> {
    logits
        .chunks(classes.max(1))
        .map(|row| scoring::argmax(row).ok())
        .collect()
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

// ---------------------------------------------------------------- model check

#[derive(Serialize)]
struct CheckReport {
    model: String,
    ok: bool,
    problem: Option<String>,
    opset: Option<i64>,
    nodes: Option<usize>,
    parameters: Option<u64>,
    dynamic_batch: Option<bool>,
    batch_plans: Vec<usize>,
    sandbox: Vec<crate::sandbox::LockdownStep>,
    trial_examples: usize,
    trial_accuracy: Option<f64>,
}

async fn check_model(
    model: &Path,
    challenge: &Path,
    json: bool,
    host: &HostCommand,
) -> anyhow::Result<i32> {
    let challenge = Challenge::load(challenge)?;
    let bytes = read_file(model)?;
    let mut report = CheckReport {
        model: model.display().to_string(),
        ok: false,
        problem: None,
        opset: None,
        nodes: None,
        parameters: None,
        dynamic_batch: None,
        batch_plans: vec![],
        sandbox: vec![],
        trial_examples: 0,
        trial_accuracy: None,
    };
    match onnx::check_model(&bytes, &challenge.task, &onnx::ModelLimits::default()) {
        Ok(r) => {
            report.opset = Some(r.opset);
            report.nodes = Some(r.node_count);
            report.parameters = Some(r.parameter_count);
            report.dynamic_batch = Some(r.dynamic_batch);
        }
        Err(e) => report.problem = Some(e.to_string()),
    }
    if report.problem.is_none() {
        match trial(&challenge, &bytes, host).await {
            Ok((info, examples, accuracy)) => {
                report.batch_plans = info.batch_sizes;
                report.sandbox = info.lockdown.steps;
                report.trial_examples = examples;
                report.trial_accuracy = accuracy;
                report.ok = true;
            }
            Err(e) => report.problem = Some(e),
        }
    }
    if json {
        print_json(&report)?;
    } else {
        println!("model      {}", report.model);
        if let (Some(opset), Some(nodes), Some(params)) =
            (report.opset, report.nodes, report.parameters)
        {
            println!("onnx       opset {opset}, {nodes} nodes, {params} parameters");
        }
        if !report.batch_plans.is_empty() {
            println!("plans      fixed batch sizes {:?}", report.batch_plans);
        }
        for step in &report.sandbox {
            println!(
                "sandbox    {:<12} {:<4} {}",
                step.name,
                if step.enforced { "on" } else { "OFF" },
                step.detail
            );
        }
        if let Some(acc) = report.trial_accuracy {
            println!(
                "trial      {} eval examples, accuracy {:.1}%",
                report.trial_examples,
                acc * 100.0
            );
        }
        match &report.problem {
            None => println!("result     ok"),
            Some(p) => println!("result     REFUSED: {p}"),
        }
    }
    Ok(if report.ok { 0 } else { 1 })
}

/// Loads the model in a host and runs up to 64 eval examples (or one zero input).
async fn trial(
    challenge: &Challenge,
    bytes: &[u8],
    host: &HostCommand,
) -> Result<(crate::host::HostInfo, usize, Option<f64>), String> {
    let mut model = ModelHost::spawn(host, bytes, &challenge.limits().for_model(bytes))
        .await
        .map_err(|e| e.to_string())?;
    let info = model.info().clone();
    let len = challenge.task.example_len();
    let (x, y) = match challenge.eval_set() {
        Ok((x, y)) => {
            let n = y.len().min(64);
            (x.data[..n * len].to_vec(), y[..n].to_vec())
        }
        Err(_) => (vec![0f32; len], vec![]),
    };
    let n = x.len() / len.max(1);
    let logits = model.predict(&x, n).await.map_err(|e| e.to_string())?;
    model.shutdown().await;
    if let Some(bad) = logits.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "the model answered a non-finite score for example {}",
            bad / challenge.task.classes
        ));
    }
    let accuracy = (!y.is_empty()).then(|| {
        let preds = predictions(&logits, challenge.task.classes);
        preds
            .iter()
            .zip(&y)
            .filter(|(p, l)| p.is_some_and(|p| p as i64 == **l))
            .count() as f64
            / y.len() as f64
    });
    Ok((info, n, accuracy))
}

// ---------------------------------------------------------------- eval --attack

#[derive(Serialize)]
struct TargetScore {
    target: String,
    total: usize,
    fooled: usize,
    rate: f64,
    over_budget: usize,
    error: Option<String>,
}

#[derive(Serialize)]
struct AttackReport {
    file: String,
    norm: String,
    epsilon: f64,
    targets: Vec<TargetScore>,
}

async fn eval_attack(args: &EvalArgs, file: &Path, host: &HostCommand) -> anyhow::Result<i32> {
    let challenge = Challenge::load(&args.challenge)?;
    let set = challenge.evasion_set()?;
    let checked = match score::check_attack(
        &read_file(file)?,
        file_name(file).unwrap_or("attack.npy"),
        &set,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(1);
        }
    };
    if let Some(note) = score::describe_over_budget(&checked, &set) {
        eprintln!("note: {note}");
    }
    let (norm, epsilon) = (set.norm, set.epsilon);
    let mut targets = vec![];
    for (name, path) in &challenge.targets {
        let bytes = read_file(path)?;
        let limits = challenge.limits().for_model(&bytes);
        targets.push(score_attack(name, &bytes, &checked, &set, &limits, host).await);
    }
    let report = AttackReport {
        file: file.display().to_string(),
        norm: norm.to_string(),
        epsilon,
        targets,
    };
    if args.json {
        print_json(&report)?;
    } else {
        println!(
            "attack {} ({} <= {})",
            report.file, report.norm, report.epsilon
        );
        println!(
            "{:<16} {:>7} {:>7} {:>7} {:>12}",
            "target", "total", "fooled", "rate", "over budget"
        );
        for t in &report.targets {
            match &t.error {
                None => println!(
                    "{:<16} {:>7} {:>7} {:>6.1}% {:>12}",
                    t.target,
                    t.total,
                    t.fooled,
                    t.rate * 100.0,
                    t.over_budget
                ),
                Some(e) => println!("{:<16} error: {e}", t.target),
            }
        }
        let sum: f64 = report.targets.iter().map(|t| t.rate).sum();
        println!("total (sum of rates over targets): {sum:.3}");
    }
    Ok(if report.targets.iter().any(|t| t.error.is_some()) {
        1
    } else {
        0
    })
}

/// One target's row of the report: the checked examples (over-budget ones
/// already replaced by their clean originals) through the model, each counted by
/// [`EvasionSet::fooled`], the same rule the server's workers apply.
async fn score_attack(
    name: &str,
    model: &[u8],
    checked: &score::CheckedAttack,
    set: &EvasionSet,
    limits: &HostLimits,
    host: &HostCommand,
) -> TargetScore {
    let total = set.labels.len();
    let mut score = TargetScore {
        target: name.to_owned(),
        total,
        fooled: 0,
        rate: 0.0,
        over_budget: checked.over_budget.len(),
        error: None,
    };
    let result = async {
        let mut model = ModelHost::spawn(host, model, limits).await?;
        let logits = model.predict(&checked.adversarial.data, total).await?;
        model.shutdown().await;
        Ok::<_, crate::host::HostError>(logits)
    }
    .await;
    match result {
        Ok(logits) => {
            let preds: Vec<usize> = predictions(&logits, set.task.classes)
                .into_iter()
                .map(|p| p.unwrap_or(usize::MAX))
                .collect();
            score.fooled = set.fooled_all(&preds).iter().filter(|f| **f).count();
            score.rate = score.fooled as f64 / total.max(1) as f64;
        }
        Err(e) => score.error = Some(e.to_string()),
    }
    score
}

// ---------------------------------------------------------------- eval --defense

#[derive(Serialize)]
struct DefenseReport {
    model: String,
    examples: usize,
    clean_accuracy: f64,
    attack: String,
    attacked_examples: usize,
    queries_per_example: u32,
    robust_accuracy: f64,
    mean_queries: f64,
}

// Long on purpose: the CLI's defense report, the same steps as the worker's
// gate and reference attack, printed as it goes.
async fn eval_defense(
    args: &EvalArgs,
    model_path: &Path,
    host: &HostCommand,
) -> anyhow::Result<i32> {
    let challenge = Challenge::load(&args.challenge)?;
    let epsilon = match (challenge.norm, challenge.epsilon) {
        (Some(Norm::Linf), Some(e)) => e,
        (norm, _) => bail!("the reference attack is L-inf; this challenge's norm is {norm:?}"),
    };
    let bytes = read_file(model_path)?;
    if let Err(e) = onnx::check_model(&bytes, &challenge.task, &onnx::ModelLimits::default()) {
        eprintln!("refused: {e}");
        return Ok(1);
    }
    let (x, y) = challenge.eval_set()?;
    let limits = challenge.limits().for_model(&bytes);
    let mut model = match ModelHost::spawn(host, &bytes, &limits).await {
        Ok(m) => m,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(1);
        }
    };
    let logits = match model.predict(&x.data, y.len()).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(1);
        }
    };
    let preds = predictions(&logits, challenge.task.classes);
    let correct = preds
        .iter()
        .zip(&y)
        .filter(|(p, l)| p.is_some_and(|p| p as i64 == **l))
        .count();
    let clean_accuracy = correct as f64 / y.len().max(1) as f64;

    let k = args.attack_examples.min(y.len());
    let len = challenge.task.example_len();
    let attack = SquareAttack::new(epsilon, args.queries, args.seed);
    let outcome = match attack
        .run(&mut model, &challenge.task, &x.data[..k * len], &y[..k])
        .await
    {
        Ok(o) => o,
        Err(e) => {
            eprintln!("refused: {e}");
            return Ok(1);
        }
    };
    model.shutdown().await;
    let report = DefenseReport {
        model: model_path.display().to_string(),
        examples: y.len(),
        clean_accuracy,
        attack: format!("square-linf eps={epsilon}"),
        attacked_examples: k,
        queries_per_example: args.queries,
        robust_accuracy: outcome.robust_accuracy(),
        mean_queries: outcome
            .queries_used
            .iter()
            .map(|q| f64::from(*q))
            .sum::<f64>()
            / k.max(1) as f64,
    };
    if args.json {
        print_json(&report)?;
    } else {
        println!("defense  {}", report.model);
        println!(
            "clean    {:.1}% of {} eval examples",
            report.clean_accuracy * 100.0,
            report.examples
        );
        println!(
            "robust   {:.1}% of the first {} under {} ({} queries each, {:.1} used on average)",
            report.robust_accuracy * 100.0,
            report.attacked_examples,
            report.attack,
            report.queries_per_example,
            report.mean_queries
        );
    }
    Ok(0)
}
