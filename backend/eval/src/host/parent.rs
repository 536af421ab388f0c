//! The server's side of one model host child.

use std::ffi::OsString;
use std::os::fd::AsRawFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use riposte_core::task::TaskSpec;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::task::JoinHandle;

use super::error::HostError;
use super::protocol::{
    self, ErrorKind, InitConfig, MAX_CONTROL_FRAME, PROTOCOL_VERSION, ReadyInfo, SharedBufferSpec,
    TAG_ERROR, TAG_OK, TAG_OK_SHARED, TAG_PREDICT, TAG_PREDICT_SHARED, TAG_PROBE, TAG_READY,
};
use super::reap::{self, Death, Stage};
use super::shared::{self, SharedBuffer};
use crate::sandbox::LockdownReport;

const MIB: u64 = 1024 * 1024;
/// How much of a host's stderr is kept to explain its death.
const STDERR_TAIL: usize = 8 * 1024;

/// The program (and arguments) that starts a model host child, e.g. the running
/// `riposte` binary with `model-host`.
#[derive(Debug, Clone)]
pub struct HostCommand {
    program: OsString,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl HostCommand {
    pub fn new<I, S>(program: impl Into<OsString>, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        Self {
            program: program.into(),
            args: args.into_iter().map(Into::into).collect(),
            envs: vec![],
        }
    }

    /// `<this executable> model-host`: what the `riposte` binary uses.
    pub fn current_exe_model_host() -> std::io::Result<Self> {
        Ok(Self::new(std::env::current_exe()?, ["model-host"]))
    }

    /// Adds an environment variable; the child otherwise starts with an empty
    /// environment (so nothing like `RUST_BACKTRACE` makes it touch files).
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.envs.push((key.into(), value.into()));
        self
    }
}

/// What one model host may use, and how it builds its plans.
#[derive(Debug, Clone, PartialEq)]
pub struct HostLimits {
    /// Address-space limit (RLIMIT_AS) of the child, model included.
    pub memory_bytes: u64,
    /// Wall-clock limit of one inference request.
    pub request_timeout: Duration,
    /// Wall-clock limit for loading, optimising and warming up the model.
    pub load_timeout: Duration,
    /// CPU time one request may use (SIGXCPU past it).
    pub cpu_per_request: Duration,
    /// CPU time the host may use over its whole life (SIGKILL past it).
    pub cpu_lifetime: Duration,
    pub max_model_bytes: u64,
    /// Largest batch sent in one request; bigger batches are split.
    pub max_batch: usize,
    /// Batch sizes the host builds fixed-shape plans for; empty: one symbolic plan.
    pub batch_sizes: Vec<usize>,
    /// One example's shape (no batch dimension); empty: as the model declares it.
    pub input_shape: Vec<usize>,
    /// Expected number of classes, checked when the model loads.
    pub classes: Option<usize>,
    /// The output holding the `[N, classes]` scores (what
    /// [`crate::onnx::check_model`] picked); `None`: the model's first output.
    pub output: Option<String>,
    /// Pass requests and answers through a memory buffer shared with the host (the
    /// pipe then carries only a short frame per request); `false`: through the pipe.
    /// Needs `input_shape`; without it the host uses the pipe.
    pub shared_buffer: bool,
}

impl Default for HostLimits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 * MIB,
            request_timeout: Duration::from_secs(5),
            load_timeout: Duration::from_secs(60),
            cpu_per_request: Duration::from_secs(10),
            cpu_lifetime: Duration::from_secs(3600),
            max_model_bytes: 256 * MIB,
            max_batch: 256,
            batch_sizes: vec![1, 16, 256],
            input_shape: vec![],
            classes: None,
            output: None,
            shared_buffer: true,
        }
    }
}

impl HostLimits {
    /// Default limits for a challenge's tensor contract.
    pub fn for_task(task: &TaskSpec) -> Self {
        Self {
            input_shape: task.input_shape.clone(),
            classes: Some(task.classes),
            ..Self::default()
        }
    }

    /// The same limits, running the named output (see [`crate::onnx::scores_output`]).
    pub fn with_output(self, output: impl Into<String>) -> Self {
        Self {
            output: Some(output.into()),
            ..self
        }
    }

    /// These limits, running the output the model check picks in `model` (see
    /// [`crate::onnx::scores_output`]). Unchanged when the classes are unknown or no
    /// output fits: the host then runs the first output and says why it does not fit.
    pub fn for_model(self, model: &[u8]) -> Self {
        match self
            .classes
            .map(|classes| crate::onnx::scores_output(model, classes))
        {
            Some(Ok(output)) => self.with_output(output),
            _ => self,
        }
    }

    /// Bytes of the shared buffer: the largest request, or the largest answer if
    /// bigger. `None` when requests go through the pipe: not asked for, the example
    /// shape is not known before the model loads, or the buffer would take more than
    /// a quarter of the host's address space.
    fn shared_buffer_bytes(&self) -> Option<usize> {
        if !self.shared_buffer || self.input_shape.is_empty() {
            return None;
        }
        let example_len: usize = self.input_shape.iter().product();
        let widest = example_len.max(self.classes.unwrap_or(0));
        let bytes = self.max_batch.max(1).checked_mul(widest)?.checked_mul(4)?;
        (bytes > 0 && bytes as u64 <= self.memory_bytes / 4).then_some(bytes)
    }

    fn init_config(&self, shared_buffer: Option<SharedBufferSpec>) -> InitConfig {
        let secs = |d: Duration| d.as_secs_f64().ceil().max(1.0) as u64;
        InitConfig {
            version: PROTOCOL_VERSION,
            input_shape: self.input_shape.clone(),
            classes: self.classes,
            output: self.output.clone(),
            batch_sizes: self.batch_sizes.clone(),
            max_batch: self.max_batch.max(1),
            max_model_bytes: self.max_model_bytes,
            memory_bytes: self.memory_bytes,
            cpu_load_secs: secs(self.load_timeout),
            cpu_per_request_secs: secs(self.cpu_per_request),
            cpu_lifetime_secs: secs(self.cpu_lifetime),
            shared_buffer,
        }
    }
}

/// What a host told us once ready.
#[derive(Debug, Clone, PartialEq)]
pub struct HostInfo {
    pub input_shape: Vec<usize>,
    pub classes: usize,
    /// Fixed batch sizes it has plans for (empty: one symbolic-batch plan).
    pub batch_sizes: Vec<usize>,
    /// What the sandbox enforced (and what the kernel refused).
    pub lockdown: LockdownReport,
}

impl HostInfo {
    pub fn example_len(&self) -> usize {
        self.input_shape.iter().product()
    }
}

enum Failure {
    TimedOut,
    Io(std::io::Error),
    OutOfMemory,
    Protocol(String),
}

/// A live model host child: one model, loaded and locked down.
#[derive(Debug)]
pub struct ModelHost {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<Vec<u8>>>,
    stderr_task: Option<JoinHandle<()>>,
    limits: HostLimits,
    info: HostInfo,
    /// Requests and answers of up to its capacity travel here, not in the frames.
    shared: Option<SharedBuffer>,
    failed: Option<HostError>,
}

impl ModelHost {
    /// Starts a host with `command`, sends it `model` and waits until it is locked
    /// down and ready (or reports why the model did not load).
    // Long on purpose: start, send the config and the model, wait for the
    // ready line, or reap and classify the death: one sequence, each step's
    // failure handled where it happens.
    #[tracing::instrument(skip_all, fields(model_bytes = model.len()))]
    pub async fn spawn(
        command: &HostCommand,
        model: &[u8],
        limits: &HostLimits,
    ) -> Result<Self, HostError> {
        if model.len() as u64 > limits.max_model_bytes {
            return Err(HostError::ModelTooLarge {
                size: model.len() as u64,
                limit: limits.max_model_bytes,
            });
        }
        let mut cmd = Command::new(&command.program);
        cmd.args(&command.args)
            .env_clear()
            .envs(command.envs.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The buffer is an optimisation: if the kernel refuses a memfd, the pipe works.
        let shared = limits.shared_buffer_bytes().and_then(|bytes| {
            SharedBuffer::create(bytes)
                .inspect_err(|e| tracing::warn!("no shared buffer for the model host: {e}"))
                .ok()
                .map(|(buffer, fd)| (buffer, fd, bytes))
        });
        let shared_spec = shared.as_ref().map(|(_, fd, bytes)| {
            shared::pass_to_child(&mut cmd, fd.as_raw_fd());
            SharedBufferSpec {
                fd: fd.as_raw_fd(),
                bytes: *bytes as u64,
            }
        });
        let mut child = cmd
            .spawn()
            .map_err(|e| HostError::Spawn(format!("{:?}: {e}", command.program)))?;
        // The child has its own copy of the descriptor now; ours only kept it alive.
        let shared = shared.map(|(buffer, _fd, _)| buffer);
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err(HostError::Spawn("child pipes missing".into()));
        };
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let stderr_task = tokio::spawn(collect_tail(stderr, stderr_tail.clone()));
        let mut host = ModelHost {
            child,
            stdin: BufWriter::with_capacity(1 << 16, stdin),
            stdout: BufReader::with_capacity(1 << 16, stdout),
            stderr_tail,
            stderr_task: Some(stderr_task),
            limits: limits.clone(),
            info: HostInfo {
                input_shape: vec![],
                classes: 0,
                batch_sizes: vec![],
                lockdown: LockdownReport::default(),
            },
            shared,
            failed: None,
        };
        let config = serde_json::to_vec(&limits.init_config(shared_spec))
            .map_err(|e| HostError::Spawn(format!("encoding the host config: {e}")))?;
        let handshake = async {
            write_frame(&mut host.stdin, &[&config])
                .await
                .map_err(Failure::Io)?;
            write_frame(&mut host.stdin, &[model])
                .await
                .map_err(Failure::Io)?;
            let frame = read_frame(&mut host.stdout, MAX_CONTROL_FRAME)
                .await
                .map_err(Failure::Io)?;
            Ok::<_, Failure>(frame)
        };
        let frame = match tokio::time::timeout(limits.load_timeout, handshake).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(failure)) => return Err(host.fail(Stage::Load, failure).await),
            Err(_) => return Err(host.fail(Stage::Load, Failure::TimedOut).await),
        };
        match frame.split_first() {
            Some((&TAG_READY, json)) => {
                let ready: ReadyInfo = match serde_json::from_slice(json) {
                    Ok(r) => r,
                    Err(e) => {
                        return Err(host
                            .fail(
                                Stage::Load,
                                Failure::Protocol(format!("bad ready frame: {e}")),
                            )
                            .await);
                    }
                };
                host.info = HostInfo {
                    input_shape: ready.input_shape,
                    classes: ready.classes,
                    batch_sizes: ready.batch_sizes,
                    lockdown: ready.lockdown,
                };
                tracing::debug!(lockdown = %host.info.lockdown, "model host ready");
                Ok(host)
            }
            Some((&TAG_ERROR, rest)) => {
                let (kind, message) = split_error(rest);
                let failure = match kind {
                    Some(ErrorKind::OutOfMemory) => Failure::OutOfMemory,
                    Some(ErrorKind::Load) => {
                        let err = HostError::Load(message);
                        host.kill().await;
                        host.failed = Some(err.clone());
                        return Err(err);
                    }
                    // Before the model was even read: the platform's problem.
                    Some(ErrorKind::Lockdown) => {
                        let err = HostError::Spawn(message);
                        host.kill().await;
                        host.failed = Some(err.clone());
                        return Err(err);
                    }
                    _ => Failure::Protocol(message),
                };
                Err(host.fail(Stage::Load, failure).await)
            }
            _ => Err(host
                .fail(
                    Stage::Load,
                    Failure::Protocol("unexpected frame while loading".into()),
                )
                .await),
        }
    }

    pub fn info(&self) -> &HostInfo {
        &self.info
    }

    pub fn limits(&self) -> &HostLimits {
        &self.limits
    }

    /// False once the host has failed; a failed host answers every request with the
    /// error that killed it.
    pub fn is_alive(&self) -> bool {
        self.failed.is_none()
    }

    /// The child's pid while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Logits for `n` examples laid out one after another in `batch`
    /// (`n * example_len` values); answers `n * classes` values.
    pub async fn predict(&mut self, batch: &[f32], n: usize) -> Result<Vec<f32>, HostError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let len = self.info.example_len();
        if n == 0 {
            return Ok(vec![]);
        }
        if batch.len() != n * len {
            return Err(HostError::BadRequest(format!(
                "{n} examples of {len} values need {} values, got {}",
                n * len,
                batch.len()
            )));
        }
        let classes = self.info.classes;
        let mut out = Vec::with_capacity(n * classes);
        let max_batch = self.limits.max_batch.max(1);
        for (chunk_ix, chunk) in batch.chunks(max_batch * len).enumerate() {
            let k = chunk.len() / len;
            let logits = self.predict_chunk(chunk, k).await.inspect_err(|_| {
                tracing::debug!(chunk_ix, "model host request failed");
            })?;
            out.extend_from_slice(&logits);
        }
        Ok(out)
    }

    async fn predict_chunk(&mut self, chunk: &[f32], n: usize) -> Result<Vec<f32>, HostError> {
        let classes = self.info.classes;
        let n32 = n as u32;
        let max_response = u32::try_from(9 + n * classes * 4)
            .unwrap_or(u32::MAX)
            .max(MAX_CONTROL_FRAME);
        let in_buffer = self.shared.as_mut().is_some_and(|s| s.write(chunk));
        let exchange = async {
            if in_buffer {
                write_frame(
                    &mut self.stdin,
                    &[&[TAG_PREDICT_SHARED], &n32.to_le_bytes()],
                )
                .await?;
            } else {
                let data = protocol::f32s_to_le(chunk);
                write_frame(
                    &mut self.stdin,
                    &[&[TAG_PREDICT], &n32.to_le_bytes(), &data],
                )
                .await?;
            }
            read_frame(&mut self.stdout, max_response).await
        };
        let frame = match tokio::time::timeout(self.limits.request_timeout, exchange).await {
            Ok(Ok(frame)) => frame,
            Ok(Err(e)) => return Err(self.fail(Stage::Request, Failure::Io(e)).await),
            Err(_) => return Err(self.fail(Stage::Request, Failure::TimedOut).await),
        };
        let answer_size = |rest: &[u8]| {
            let got_n = protocol::u32_at(rest, 0)? as usize;
            let got_classes = protocol::u32_at(rest, 4)? as usize;
            (got_n == n && got_classes == classes).then_some(n * classes)
        };
        match frame.split_first() {
            Some((&TAG_OK, rest)) => {
                let values = rest.get(8..).and_then(protocol::le_to_f32s);
                match (answer_size(rest), values) {
                    (Some(count), Some(v)) if v.len() == count => Ok(v),
                    _ => Err(self
                        .fail(
                            Stage::Request,
                            Failure::Protocol("malformed inference answer".into()),
                        )
                        .await),
                }
            }
            // Only an answer to a shared request may be in the buffer; its size is
            // what we asked for, never what the host says.
            Some((&TAG_OK_SHARED, rest)) if in_buffer && rest.len() == 8 => {
                let values = answer_size(rest)
                    .and_then(|count| self.shared.as_ref().and_then(|s| s.read(count)));
                match values {
                    Some(v) => Ok(v),
                    None => Err(self
                        .fail(
                            Stage::Request,
                            Failure::Protocol("malformed inference answer".into()),
                        )
                        .await),
                }
            }
            Some((&TAG_ERROR, rest)) => {
                let (kind, message) = split_error(rest);
                match kind {
                    Some(ErrorKind::BadRequest) => Err(HostError::BadRequest(message)),
                    Some(ErrorKind::Inference) => Err(HostError::Inference(message)),
                    Some(ErrorKind::OutOfMemory) => {
                        Err(self.fail(Stage::Request, Failure::OutOfMemory).await)
                    }
                    _ => Err(self.fail(Stage::Request, Failure::Protocol(message)).await),
                }
            }
            _ => Err(self
                .fail(Stage::Request, Failure::Protocol("unexpected frame".into()))
                .await),
        }
    }

    /// Sends a test-only probe (see [`crate::host::probes`]); only a host started
    /// through the test binary with probes enabled honours it.
    #[doc(hidden)]
    pub async fn probe(&mut self, probe: u8) -> Result<(), HostError> {
        if let Some(err) = &self.failed {
            return Err(err.clone());
        }
        let exchange = async {
            write_frame(&mut self.stdin, &[&[TAG_PROBE, probe]]).await?;
            read_frame(&mut self.stdout, MAX_CONTROL_FRAME).await
        };
        match tokio::time::timeout(self.limits.request_timeout, exchange).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(self.fail(Stage::Request, Failure::Io(e)).await),
            Err(_) => Err(self.fail(Stage::Request, Failure::TimedOut).await),
        }
    }

    /// Closes the host's stdin and waits for it to exit (kills it after a second);
    /// returns how it ended.
    pub async fn shutdown(self) -> Option<ExitStatus> {
        let ModelHost {
            mut child, stdin, ..
        } = self;
        // Dropping the pipe closes it, and the host exits on the end of file.
        // `AsyncWriteExt::shutdown` on a ChildStdin does not close it (tokio issue
        // 4477): the host waited for more, and was killed a second later.
        drop(stdin);
        match tokio::time::timeout(Duration::from_secs(1), child.wait()).await {
            Ok(status) => status.ok(),
            Err(_) => {
                let _ = child.start_kill();
                child.wait().await.ok()
            }
        }
    }

    async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Makes sure the child is gone and turns how it went into a reason.
    async fn fail(&mut self, stage: Stage, failure: Failure) -> HostError {
        let failure = match failure {
            // An oversized or malformed frame is what the host sent, not a broken pipe.
            Failure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                Failure::Protocol(e.to_string())
            }
            other => other,
        };
        let err = match failure {
            Failure::TimedOut => {
                self.kill().await;
                match stage {
                    Stage::Load => HostError::LoadTimeout {
                        after: self.limits.load_timeout,
                    },
                    Stage::Request => HostError::Timeout {
                        after: self.limits.request_timeout,
                    },
                }
            }
            Failure::OutOfMemory => {
                self.kill().await;
                HostError::MemoryLimit {
                    limit_bytes: self.limits.memory_bytes,
                }
            }
            Failure::Protocol(message) => {
                // A host killed mid-answer may leave half a frame: its death, not the
                // frame, says what happened.
                match self.reap().await {
                    Some((status, cpu)) if status.signal().is_some() => {
                        let tail = self.stderr_tail().await;
                        reap::classify(
                            &Death {
                                stage,
                                status,
                                cpu,
                                stderr: &tail,
                                io_error: &message,
                            },
                            &self.limits,
                        )
                    }
                    _ => HostError::Protocol(message),
                }
            }
            Failure::Io(e) => match self.reap().await {
                Some((status, cpu)) => {
                    let tail = self.stderr_tail().await;
                    reap::classify(
                        &Death {
                            stage,
                            status,
                            cpu,
                            stderr: &tail,
                            io_error: &e.to_string(),
                        },
                        &self.limits,
                    )
                }
                // Alive but its pipes failed: the server's side broke.
                None => HostError::Lost(format!("lost contact with the host: {e}")),
            },
        };
        tracing::debug!(reason = %err, code = err.code(), "model host failed");
        self.failed = Some(err.clone());
        err
    }

    /// Waits (2 s at most) for a dying child, reading its CPU time while it is a
    /// zombie, then reaps it. `None` (and the child killed) when it did not die.
    async fn reap(&mut self) -> Option<(ExitStatus, Option<Duration>)> {
        let mut cpu = None;
        if let Some(pid) = self.child.id() {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
            loop {
                match reap::proc_stat(pid) {
                    Some(stat) if stat.zombie => {
                        cpu = Some(stat.cpu);
                        break;
                    }
                    Some(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    _ => break,
                }
            }
        }
        match tokio::time::timeout(Duration::from_millis(100), self.child.wait()).await {
            Ok(Ok(status)) => Some((status, cpu)),
            _ => {
                self.kill().await;
                None
            }
        }
    }

    /// The child's exit status when it has exited (e.g. was killed while idle).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    async fn stderr_tail(&mut self) -> String {
        if let Some(task) = self.stderr_task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), task).await;
        }
        let tail = self
            .stderr_tail
            .lock()
            .map(|t| t.clone())
            .unwrap_or_default();
        String::from_utf8_lossy(&tail).into_owned()
    }
}

fn split_error(rest: &[u8]) -> (Option<ErrorKind>, String) {
    match rest.split_first() {
        Some((kind, message)) => (
            ErrorKind::from_byte(*kind),
            String::from_utf8_lossy(message).into_owned(),
        ),
        None => (None, "empty error".into()),
    }
}

async fn collect_tail(mut stderr: impl AsyncRead + Unpin, tail: Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    loop {
        match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(k) => {
                if let Ok(mut t) = tail.lock() {
                    t.extend_from_slice(&buf[..k]);
                    if t.len() > STDERR_TAIL {
                        let cut = t.len() - STDERR_TAIL;
                        t.drain(..cut);
                    }
                }
            }
        }
    }
}

async fn write_frame(w: &mut BufWriter<ChildStdin>, parts: &[&[u8]]) -> std::io::Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u32::try_from(len).map_err(|_| std::io::Error::other("frame too large"))?;
    w.write_all(&len.to_le_bytes()).await?;
    for p in parts {
        w.write_all(p).await?;
    }
    w.flush().await
}

async fn read_frame(r: &mut BufReader<ChildStdout>, max: u32) -> std::io::Result<Vec<u8>> {
    let len = r.read_u32_le().await?;
    if len > max {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("host sent a frame of {len} bytes, over the limit of {max}"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    r.read_exact(&mut body).await?;
    Ok(body)
}
