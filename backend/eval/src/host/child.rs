//! The model host process itself: warm up, lock down, load one model, serve inference.
//!
//! Runs in a child process (`riposte model-host`); nothing here may assume the model
//! is benign. Any malformed input makes the process exit with a message on stderr and
//! a non-zero code, never a panic; the parent turns the exit into a reason.

use std::io::{self, BufReader, BufWriter, Write};
use std::panic::{AssertUnwindSafe, catch_unwind};

use anyhow::{Context, bail};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::DimLike;

use super::kernels;
use super::protocol::{
    self, ErrorKind, InitConfig, MAX_CONFIG_FRAME, PROBE_OPEN_FILE, PROBE_SOCKET, PROBE_SPIN,
    PROTOCOL_VERSION, ReadyInfo, TAG_ERROR, TAG_OK, TAG_OK_SHARED, TAG_PREDICT, TAG_PREDICT_SHARED,
    TAG_PROBE, TAG_READY,
};
use super::shared::SharedBuffer;
use super::warmup;
use crate::sandbox::{self, LockdownReport};

/// Exit codes of the host (the parent reads them when the host did not die by signal).
pub mod exit_code {
    pub const CLEAN: i32 = 0;
    pub const BAD_INPUT: i32 = 2;
    pub const LOAD_FAILED: i32 = 3;
    pub const LOCKDOWN_FAILED: i32 = 4;
    pub const OUT_OF_MEMORY: i32 = 5;
}

/// Options the production entry point never changes.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ChildOptions {
    /// Honour [`protocol::TAG_PROBE`] requests, and a model whose bytes start with
    /// [`PROBE_MODEL_OPEN_FILE`] (sandbox tests only).
    pub test_probes: bool,
    /// Busy-wait this long before parsing the model and before each answer, so a
    /// test can kill a host while it loads or mid-request (tests only).
    pub test_delay: std::time::Duration,
}

/// Test-only: a "model" starting with these bytes makes a probing host try to open
/// a file where it would parse the model, proving the parse runs locked down.
pub const PROBE_MODEL_OPEN_FILE: &[u8] = b"RIPOSTE_TEST_PROBE_OPEN_FILE";

/// Waits without a system call (`clock_gettime` is served by the vDSO, and the
/// seccomp filter allows it anyway): sleeping is not on the allowlist.
fn spin_for(delay: std::time::Duration) {
    if delay.is_zero() {
        return;
    }
    let start = std::time::Instant::now();
    while start.elapsed() < delay {
        std::hint::spin_loop();
    }
}

type Plan = Arc<TypedSimplePlan>;

pub(crate) struct Loaded {
    example_shape: Vec<usize>,
    classes: usize,
    /// Fixed-batch plans, ascending by batch size; or one symbolic plan under size 0.
    plans: Vec<(usize, TypedSimpleState)>,
}

impl Loaded {
    fn example_len(&self) -> usize {
        self.example_shape.iter().product()
    }

    fn symbolic(&self) -> bool {
        self.plans.len() == 1 && self.plans[0].0 == 0
    }

    /// Runs `n` examples, splitting them over the fixed-batch plans (padding the last
    /// chunk with zeros when no plan fits it exactly).
    fn predict(&mut self, data: &[f32], n: usize) -> TractResult<Vec<f32>> {
        let len = self.example_len();
        let classes = self.classes;
        let mut out = Vec::with_capacity(n * classes);
        if self.symbolic() {
            let logits = run_plan(&mut self.plans[0].1, &self.example_shape, data, n, classes)?;
            out.extend_from_slice(&logits);
            return Ok(out);
        }
        let mut done = 0;
        while done < n {
            let left = n - done;
            let (size, state) = pick_plan(&mut self.plans, left);
            let take = left.min(size);
            let chunk = &data[done * len..(done + take) * len];
            let logits = if take == size {
                run_plan(state, &self.example_shape, chunk, size, classes)?
            } else {
                let mut padded = vec![0f32; size * len];
                padded[..chunk.len()].copy_from_slice(chunk);
                run_plan(state, &self.example_shape, &padded, size, classes)?
            };
            out.extend_from_slice(&logits[..take * classes]);
            done += take;
        }
        Ok(out)
    }
}

/// The largest plan that is full with `left` examples, else the smallest that holds them.
fn pick_plan(
    plans: &mut [(usize, TypedSimpleState)],
    left: usize,
) -> (usize, &mut TypedSimpleState) {
    let full = plans.iter().rposition(|(s, _)| *s <= left);
    let fits = plans.iter().position(|(s, _)| *s >= left);
    // Pad into one bigger plan when at most half of it is wasted; else run full plans.
    let ix = match (full, fits) {
        (_, Some(p)) if plans[p].0 <= 2 * left => p,
        (Some(f), _) => f,
        (None, Some(p)) => p,
        (None, None) => 0,
    };
    let (size, state) = &mut plans[ix];
    (*size, state)
}

fn run_plan(
    state: &mut TypedSimpleState,
    example_shape: &[usize],
    data: &[f32],
    n: usize,
    classes: usize,
) -> TractResult<Vec<f32>> {
    let mut shape = Vec::with_capacity(example_shape.len() + 1);
    shape.push(n);
    shape.extend_from_slice(example_shape);
    let input = Tensor::from_shape::<f32>(&shape, data)?;
    let outputs = state.run(tvec!(input.into()))?;
    let first = outputs.first().context("model produced no output")?;
    let logits = first.cast_to::<f32>()?;
    let plain = logits.try_as_plain_ram()?;
    let values = plain.as_slice::<f32>()?;
    let got = logits.shape();
    if got.first() != Some(&n) || values.len() != n * classes {
        bail!("model output has shape {got:?}, expected [{n}, {classes}]");
    }
    Ok(values.to_vec())
}

/// Parses the untrusted model (the host is locked down by now), builds its plans and
/// runs each once.
fn load(config: &InitConfig, model_bytes: &[u8]) -> TractResult<Loaded> {
    use prost::Message;
    let proto = tract_onnx::pb::ModelProto::decode(model_bytes)?;
    load_proto(config, &proto)
}

/// Builds the plans of a decoded model and runs each once (the first run of a plan
/// allocates its scratch space: better now than during the first request).
// Long on purpose: the plans are built, optimized and warmed in the one order
// tract needs, before seccomp forbids what loading uses.
pub(crate) fn load_proto(
    config: &InitConfig,
    proto: &tract_onnx::pb::ModelProto,
) -> TractResult<Loaded> {
    let onnx = tract_onnx::onnx();
    let example_shape = match &config.input_shape {
        shape if !shape.is_empty() => shape.clone(),
        _ => declared_example_shape(proto)?,
    };
    let mut model = onnx.model_for_proto_model(proto)?;
    if let Some(name) = &config.output {
        // The model check picked this output (e.g. `probabilities` of an skl2onnx
        // classifier, whose first output is the int64 `label`).
        let declared = proto.graph.as_ref().map(|g| &g.output[..]).unwrap_or(&[]);
        let ix = declared
            .iter()
            .position(|o| &o.name == name)
            .with_context(|| format!("the model has no output named {name:?}"))?;
        let outlet = *model
            .output_outlets()?
            .get(ix)
            .with_context(|| format!("output {name:?} was not imported"))?;
        model.select_output_outlets(&[outlet])?;
    }
    if model.input_outlets()?.len() != 1 {
        bail!(
            "the model must have exactly one input, it has {}",
            model.input_outlets()?.len()
        );
    }
    if model.output_outlets()?.is_empty() {
        bail!("the model has no output");
    }

    let build = |batch: Option<usize>| -> TractResult<Plan> {
        let mut dims: TVec<TDim> = tvec!();
        dims.push(match batch {
            Some(b) => b.to_dim(),
            None => model.sym("N").to_dim(),
        });
        dims.extend(example_shape.iter().map(|d| d.to_dim()));
        kernels::optimized(model.clone().with_input_fact(0, f32::fact(dims).into())?)?
            .into_runnable()
    };

    let mut plans: Vec<(usize, Plan)> = Vec::new();
    let mut first_error = None;
    let mut sizes = config.batch_sizes.clone();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes
        .into_iter()
        .filter(|s| *s > 0 && *s <= config.max_batch)
    {
        if plans
            .first()
            .is_some_and(|(one, plan)| *one == 1 && batch_cap(plan).is_some_and(|cap| size > cap))
        {
            break;
        }
        match build(Some(size)) {
            Ok(plan) => plans.push((size, plan)),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if plans.is_empty() {
        match build(None) {
            Ok(plan) => plans.push((0, plan)),
            Err(e) => return Err(first_error.unwrap_or(e)),
        }
    }

    let classes = classes_of(&plans[0].1, config.classes)?;
    let mut loaded = Loaded {
        example_shape,
        classes,
        plans: plans
            .into_iter()
            .map(|(size, plan)| Ok((size, plan.spawn()?)))
            .collect::<TractResult<_>>()?,
    };
    let len = loaded.example_len();
    let mut warm_sizes: Vec<usize> = loaded.plans.iter().map(|(s, _)| (*s).max(1)).collect();
    if loaded.symbolic() {
        // A symbolic plan picks kernels per batch size at run time: exercise more than one.
        warm_sizes.push(config.max_batch.clamp(1, 2));
    }
    for size in warm_sizes {
        let zeros = vec![0f32; size * len];
        loaded.predict(&zeros, size).context("warm-up inference")?;
    }
    Ok(loaded)
}

/// The largest batch worth a plan for a model whose batch-1 plan is `plan`, when
/// there is one.
///
/// - A convolution through tract's lazy im2col: 1. tract (0.23.9) lowers a
///   convolution to lazy im2col only for a batch of one; for any bigger batch it
///   materialises the im2col matrix in a scratch buffer of `batch x k x n` values.
///   On the MNIST CNN that is slower per image than the batch-1 plan run once per
///   image (1.7x at batch 256) and holds ~30 MB of scratch.
/// - A convolution through riposte's kernel: 16. Its output and the pools and
///   activations after it stay in the CPU's cache for 16 images (800 KB for the
///   MNIST CNN's first layer) but not for 256 (12.8 MB, which also took the host
///   past 48 MiB), so bigger requests run 16 images at a time.
fn batch_cap(plan: &Plan) -> Option<usize> {
    let has = |name: &str| plan.model().nodes().iter().any(|n| n.op.name() == name);
    if has("LazyIm2col") {
        Some(1)
    } else if has("RiposteConv2d") {
        Some(16)
    } else {
        None
    }
}

fn classes_of(plan: &Plan, expected: Option<usize>) -> TractResult<usize> {
    let fact = plan.model().output_fact(0)?;
    let declared = if fact.rank() == 2 {
        fact.shape[1].to_usize().ok()
    } else {
        None
    };
    match (declared, expected) {
        (Some(d), Some(e)) if d != e => {
            bail!("the model answers {d} classes, the challenge has {e}")
        }
        (_, Some(e)) => Ok(e),
        (Some(d), None) => Ok(d),
        (None, None) => bail!("cannot tell the number of classes from output {fact:?}"),
    }
}

/// One example's shape as the model declares it: its first input without the batch
/// dimension, every other dimension concrete.
fn declared_example_shape(proto: &tract_onnx::pb::ModelProto) -> TractResult<Vec<usize>> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto::Value as TypeValue;
    let graph = proto.graph.as_ref().context("the model has no graph")?;
    let initializers: std::collections::HashSet<&str> =
        graph.initializer.iter().map(|t| t.name.as_str()).collect();
    let input = graph
        .input
        .iter()
        .find(|i| !initializers.contains(i.name.as_str()))
        .context("the model declares no input")?;
    let Some(TypeValue::TensorType(t)) = input.r#type.as_ref().and_then(|t| t.value.as_ref())
    else {
        bail!("input {} is not a tensor", input.name);
    };
    let dims = &t
        .shape
        .as_ref()
        .context("the model's input has no shape")?
        .dim;
    let mut shape = Vec::new();
    for d in dims.iter().skip(1) {
        match d.value {
            Some(Value::DimValue(v)) if v > 0 => shape.push(v as usize),
            _ => bail!(
                "input {} has a non-concrete dimension besides the batch",
                input.name
            ),
        }
    }
    Ok(shape)
}

/// The text of a caught panic (its `&str` or `String` payload).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}

fn is_allocation_failure(message: &str) -> bool {
    message.contains("failed to allocate") || message.contains("memory allocation of")
}

struct Io {
    input: BufReader<io::Stdin>,
    output: BufWriter<io::Stdout>,
}

impl Io {
    fn send_error(&mut self, kind: ErrorKind, message: &str) -> io::Result<()> {
        protocol::write_frame(
            &mut self.output,
            &[&[TAG_ERROR, kind as u8], message.as_bytes()],
        )
    }
}

pub(crate) fn run(options: ChildOptions) -> i32 {
    let mut io = Io {
        input: BufReader::with_capacity(1 << 16, io::stdin()),
        output: BufWriter::with_capacity(1 << 16, io::stdout()),
    };
    match serve(&mut io, options) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("model host: {e}");
            exit_code::BAD_INPUT
        }
    }
}

// Long on purpose: the child's whole life (config, model, lock-down, request
// loop) reads top to bottom in the order the sandbox requires; cut into parts,
// the order of the lock-down steps would no longer be visible in one place.
fn serve(io: &mut Io, options: ChildOptions) -> io::Result<i32> {
    let Some(config) = protocol::read_frame(&mut io.input, MAX_CONFIG_FRAME)? else {
        return Ok(exit_code::CLEAN);
    };
    let config: InitConfig = serde_json::from_slice(&config)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad config: {e}")))?;
    if config.version != PROTOCOL_VERSION {
        return Err(io::Error::other(format!(
            "unsupported protocol version {}",
            config.version
        )));
    }

    // Mapped while the descriptor is still ours to use, and closed at once: after
    // lock-down the host keeps the mapping and no descriptor but its pipes.
    let mut shared = match config.shared_buffer {
        Some(spec) => match SharedBuffer::map_inherited(spec.fd, spec.bytes as usize) {
            Ok(buffer) => Some(buffer),
            Err(e) => {
                io.send_error(
                    ErrorKind::Lockdown,
                    &format!("mapping the shared request buffer failed: {e}"),
                )?;
                return Ok(exit_code::LOCKDOWN_FAILED);
            }
        },
        None => None,
    };

    let mut report = LockdownReport::default();
    report.steps.push(sandbox::close_other_descriptors());
    report.steps.push(sandbox::early_limits(
        config.memory_bytes,
        config.cpu_load_secs,
        config.cpu_lifetime_secs,
    )?);
    // Must precede the uid drop: creating a namespace needs CAP_SYS_ADMIN.
    report.steps.push(sandbox::enter_network_namespace());

    // Warm tract up on a model of our own while files can still be read, then lock
    // down: the participant's bytes are parsed only inside the sandbox.
    match catch_unwind(AssertUnwindSafe(|| warmup::warm_up(&config))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            io.send_error(
                ErrorKind::Lockdown,
                &format!("warming up on the built-in model failed: {e:#}"),
            )?;
            return Ok(exit_code::LOCKDOWN_FAILED);
        }
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            io.send_error(
                ErrorKind::Lockdown,
                &format!("warming up on the built-in model panicked: {message}"),
            )?;
            return Ok(exit_code::LOCKDOWN_FAILED);
        }
    }
    if let Err(e) = lock_down(&mut report) {
        io.send_error(
            ErrorKind::Lockdown,
            &format!("sandbox lock-down failed: {e}"),
        )?;
        return Ok(exit_code::LOCKDOWN_FAILED);
    }

    let max_model = u32::try_from(config.max_model_bytes).unwrap_or(u32::MAX);
    let Some(model_bytes) = protocol::read_frame(&mut io.input, max_model)? else {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "no model after the config",
        ));
    };

    spin_for(options.test_delay);
    if options.test_probes && model_bytes.starts_with(PROBE_MODEL_OPEN_FILE) {
        run_probe(Some(PROBE_OPEN_FILE));
    }
    let loaded = catch_unwind(AssertUnwindSafe(|| load(&config, &model_bytes)));
    drop(model_bytes);
    let mut loaded = match loaded {
        Ok(Ok(loaded)) => loaded,
        Ok(Err(e)) => {
            io.send_error(ErrorKind::Load, &format!("{e:#}"))?;
            return Ok(exit_code::LOAD_FAILED);
        }
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            if is_allocation_failure(&message) {
                io.send_error(ErrorKind::OutOfMemory, &message)?;
                return Ok(exit_code::OUT_OF_MEMORY);
            }
            io.send_error(ErrorKind::Load, &format!("tract panicked: {message}"))?;
            return Ok(exit_code::LOAD_FAILED);
        }
    };

    let ready = ReadyInfo {
        input_shape: loaded.example_shape.clone(),
        classes: loaded.classes,
        batch_sizes: loaded
            .plans
            .iter()
            .map(|(s, _)| *s)
            .filter(|s| *s > 0)
            .collect(),
        lockdown: report,
    };
    let ready = serde_json::to_vec(&ready).map_err(io::Error::other)?;
    protocol::write_frame(&mut io.output, &[&[TAG_READY], &ready])?;

    let example_len = loaded.example_len();
    let max_request = 5 + config
        .max_batch
        .saturating_mul(example_len)
        .saturating_mul(4);
    let max_request = u32::try_from(max_request).unwrap_or(u32::MAX);
    // One request buffer for the host's life, grown to the largest batch seen.
    let mut request = Vec::new();
    loop {
        let Some(frame) = protocol::read_frame(&mut io.input, max_request)? else {
            return Ok(exit_code::CLEAN);
        };
        let tag = frame.first().copied();
        if matches!(tag, Some(TAG_PREDICT | TAG_PREDICT_SHARED)) {
            let parsed = if tag == Some(TAG_PREDICT) {
                parse_predict(&frame, example_len, config.max_batch, &mut request)
            } else {
                parse_predict_shared(
                    &frame,
                    example_len,
                    config.max_batch,
                    shared.as_ref(),
                    &mut request,
                )
            };
            let n = match parsed {
                Ok(n) => n,
                Err(message) => {
                    io.send_error(ErrorKind::BadRequest, &message)?;
                    continue;
                }
            };
            sandbox::budget_cpu_for_next_request(config.cpu_per_request_secs)?;
            spin_for(options.test_delay);
            let data = &request[..n * example_len];
            match catch_unwind(AssertUnwindSafe(|| loaded.predict(data, n))) {
                Ok(Ok(logits)) => {
                    let n32 = n as u32;
                    let classes = loaded.classes as u32;
                    // The request was copied out: the answer may overwrite it.
                    let in_buffer = tag == Some(TAG_PREDICT_SHARED)
                        && shared.as_mut().is_some_and(|s| s.write(&logits));
                    if in_buffer {
                        protocol::write_frame(
                            &mut io.output,
                            &[&[TAG_OK_SHARED], &n32.to_le_bytes(), &classes.to_le_bytes()],
                        )?;
                    } else {
                        protocol::write_frame(
                            &mut io.output,
                            &[
                                &[TAG_OK],
                                &n32.to_le_bytes(),
                                &classes.to_le_bytes(),
                                &protocol::f32s_to_le(&logits),
                            ],
                        )?;
                    }
                }
                Ok(Err(e)) => io.send_error(ErrorKind::Inference, &format!("{e:#}"))?,
                Err(payload) => {
                    let message = panic_message(payload.as_ref());
                    if is_allocation_failure(&message) {
                        io.send_error(ErrorKind::OutOfMemory, &message)?;
                        return Ok(exit_code::OUT_OF_MEMORY);
                    }
                    // A panic may leave tract's state half-updated: answer, then quit.
                    io.send_error(ErrorKind::Inference, &format!("tract panicked: {message}"))?;
                    return Ok(exit_code::BAD_INPUT);
                }
            }
            continue;
        }
        match tag {
            Some(TAG_PROBE) if options.test_probes => {
                sandbox::budget_cpu_for_next_request(config.cpu_per_request_secs)?;
                run_probe(frame.get(1).copied());
                protocol::write_frame(
                    &mut io.output,
                    &[&[TAG_OK], &0u32.to_le_bytes(), &0u32.to_le_bytes()],
                )?;
            }
            Some(tag) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("unknown request type {tag:#04x}"),
                ));
            }
            None => return Err(io::Error::new(io::ErrorKind::InvalidData, "empty frame")),
        }
    }
}

fn lock_down(report: &mut LockdownReport) -> io::Result<()> {
    report.steps.push(sandbox::drop_privileges()?);
    sandbox::parent_death_signal()?;
    // Landlock needs a file descriptor for its ruleset: before NOFILE drops to 3.
    report.steps.push(sandbox::restrict_filesystem());
    report.steps.push(sandbox::late_limits()?);
    report.steps.push(sandbox::install_syscall_filter()?);
    Ok(())
}

/// Checks a pipe request and decodes its tensor into `request`; answers `n`.
fn parse_predict(
    frame: &[u8],
    example_len: usize,
    max_batch: usize,
    request: &mut Vec<f32>,
) -> Result<usize, String> {
    let n = batch_size(frame, max_batch)?;
    let body = &frame[5..];
    if body.len() != n * example_len * 4 {
        return Err(format!(
            "batch of {n} examples needs {} values, got {} bytes",
            n * example_len,
            body.len()
        ));
    }
    request.clear();
    request.extend(
        body.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])),
    );
    Ok(n)
}

/// Checks a shared-buffer request against the buffer and copies its tensor into
/// `request`; answers `n`.
fn parse_predict_shared(
    frame: &[u8],
    example_len: usize,
    max_batch: usize,
    shared: Option<&SharedBuffer>,
    request: &mut Vec<f32>,
) -> Result<usize, String> {
    let shared = shared.ok_or("shared-buffer request, but this host has no shared buffer")?;
    if frame.len() != 5 {
        return Err(format!(
            "shared-buffer request of {} bytes, expected 5",
            frame.len()
        ));
    }
    let n = batch_size(frame, max_batch)?;
    let values = n * example_len;
    if values > shared.capacity() {
        return Err(format!(
            "batch of {n} examples needs {values} values, the shared buffer holds {}",
            shared.capacity()
        ));
    }
    request.resize(values, 0.0);
    if !shared.read_into(&mut request[..values]) {
        return Err("the shared buffer is too short".into());
    }
    Ok(n)
}

fn batch_size(frame: &[u8], max_batch: usize) -> Result<usize, String> {
    let n = protocol::u32_at(frame, 1).ok_or("predict request without a batch size")? as usize;
    if n == 0 || n > max_batch {
        return Err(format!(
            "batch of {n} examples, the host takes 1 to {max_batch}"
        ));
    }
    Ok(n)
}

/// Sandbox tests: things a compromised host might try after lock-down.
fn run_probe(probe: Option<u8>) {
    match probe {
        Some(PROBE_OPEN_FILE) => {
            let opened = std::fs::File::open("/etc/hostname");
            eprintln!("probe: open /etc/hostname -> {:?}", opened.map(|_| ()));
        }
        Some(PROBE_SOCKET) => {
            let socket = std::net::UdpSocket::bind("127.0.0.1:0");
            eprintln!("probe: socket -> {:?}", socket.map(|_| ()));
        }
        Some(PROBE_SPIN) => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
        }
        _ => {}
    }
    // Flushes nothing: probes report through their effect on the process.
    let _ = io::stderr().flush();
}
