//! The model host: untrusted ONNX models run only in a locked-down child process.
//!
//! - [`model_host_main`] is the child (`riposte model-host`): it warms tract up on a
//!   built-in model, locks itself down (see [`crate::sandbox`]), then reads one
//!   model from stdin, builds fixed-batch tract plans and answers batched inference
//!   requests over its pipes.
//! - [`ModelHost`] is the parent's handle on one child: spawn, predict with a
//!   wall-clock timeout, and a typed [`HostError`] when anything goes wrong (the child
//!   is killed then, and the handle stays failed).
//! - [`HostPool`] keeps a bounded set of live hosts keyed by model sha256, restarts a
//!   dead one on the next request and evicts idle ones.
//! - `host/reap.rs` decides whether a dead host's model is to blame (a limit
//!   reached, a forbidden system call) or not (killed from outside, a broken pipe):
//!   only the first rejects a submission; the pool restarts and retries the second.
//! - `host/warmup.rs` warms tract up on a built-in tiny model, so the untrusted
//!   model is parsed only after the host has locked itself down.
//!
//! The wire format lives in `host/protocol.rs`.
//!
//! Error policy: every failure a participant can cause becomes a [`HostError`] whose
//! `Display` is the sentence shown on their submission ("model exceeded 512 MiB of
//! memory"); [`HostError::code`] is the stable machine-readable form.

mod child;
mod error;
mod kernels;
mod parent;
mod pool;
pub(crate) mod protocol;
mod reap;
mod shared;
mod warmup;

pub use child::panic_message;
pub use error::HostError;
pub use parent::{HostCommand, HostInfo, HostLimits, ModelHost};
pub use pool::{HostPool, PoolConfig, PoolModel};

/// Entry point of the model host child process; returns its exit code.
///
/// The `riposte` binary calls this for `riposte model-host`. It expects the parent's
/// protocol on stdin and must not be started by hand.
pub fn model_host_main() -> i32 {
    child::run(child::ChildOptions::default())
}

/// Like [`model_host_main`], but also honours test-only probe requests (open a file,
/// open a socket, spin; a probe "model" that opens a file where the model is parsed)
/// that prove the sandbox kills a host misbehaving after lock-down, and busy-waits
/// `delay` before parsing the model and before each answer (so tests can kill a
/// host while it loads or mid-request). Only the eval crate's test binary calls
/// this; the production `riposte model-host` never does.
#[doc(hidden)]
pub fn model_host_main_for_tests(probes: bool, delay: std::time::Duration) -> i32 {
    child::run(child::ChildOptions {
        test_probes: probes,
        test_delay: delay,
    })
}

/// The model the host plans: tract's optimisation with riposte's kernels swapped in
/// (for benches comparing it with tract's own, in process).
#[doc(hidden)]
pub fn optimized_model(
    model: tract_onnx::prelude::InferenceModel,
) -> tract_onnx::prelude::TractResult<tract_onnx::prelude::TypedModel> {
    kernels::optimized(model)
}

/// Test-only probe codes for [`ModelHost::probe`].
#[doc(hidden)]
pub mod probes {
    pub use super::child::PROBE_MODEL_OPEN_FILE;
    pub use super::protocol::{PROBE_OPEN_FILE, PROBE_SOCKET, PROBE_SPIN};
}
