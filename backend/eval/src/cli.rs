//! `riposte model check`: check a model locally through the same model hosts the
//! server uses. (`riposte eval` runs the workers' own scorer: `web::local_eval`.)
//!
//! The `riposte` binary flattens [`ModelCommand`] into its own clap tree and calls
//! [`run_model`], which returns the process exit code: 0 when the model passed, 1
//! when it was refused (the reason is printed).
//! Errors (a missing file, a broken bundle) come back as `anyhow` errors.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use riposte_core::challenge::Bundle;
use riposte_core::scoring;
use riposte_core::task::TaskSpec;
use serde::Serialize;

use crate::host::{HostCommand, HostLimits, ModelHost};
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

/// Runs a `riposte model` command with model hosts started as `<this exe> model-host`.
pub fn run_model(cmd: ModelCommand) -> anyhow::Result<i32> {
    run_model_with(cmd, HostCommand::current_exe_model_host()?)
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
    eval: Option<(PathBuf, PathBuf)>,
}

impl Challenge {
    fn load(dir: &Path) -> anyhow::Result<Self> {
        let bundle = Bundle::load(dir).map_err(|p| anyhow::anyhow!("{}: {p}", dir.display()))?;
        let spec = bundle.spec;
        let task = spec
            .task
            .with_context(|| format!("challenge {} has no [task]", spec.slug))?;
        Ok(Self {
            eval: spec
                .eval
                .as_ref()
                .map(|e| (bundle.dir.join(&e.inputs), bundle.dir.join(&e.labels))),
            dir: bundle.dir,
            task,
        })
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
