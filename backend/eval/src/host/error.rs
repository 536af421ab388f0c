//! Why a model host could not answer.

use std::time::Duration;

/// A model host failure, phrased for the participant whose model caused it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostError {
    #[error("model exceeded {} of memory", bytes(*limit_bytes))]
    MemoryLimit { limit_bytes: u64 },
    #[error("inference timed out after {}", duration(*after))]
    Timeout { after: Duration },
    #[error("model took longer than {} to load", duration(*after))]
    LoadTimeout { after: Duration },
    #[error("killed by the sandbox: forbidden system call")]
    ForbiddenSyscall,
    #[error("used more than {seconds} s of CPU")]
    CpuLimit { seconds: u64 },
    #[error("model failed to load: {0}")]
    Load(String),
    #[error("model is {size} bytes, larger than the limit of {}", bytes(*limit))]
    ModelTooLarge { size: u64, limit: u64 },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("bad inference request: {0}")]
    BadRequest(String),
    #[error("model host crashed: {0}")]
    Crashed(String),
    /// The host died or was cut off by something other than its model (an
    /// operator's kill, a container stop, a broken pipe): retried, never a verdict.
    #[error("model host lost (not the model's doing): {0}")]
    Lost(String),
    #[error("could not start the model host: {0}")]
    Spawn(String),
    #[error("model host broke the protocol: {0}")]
    Protocol(String),
    #[error("no model host capacity: {0}")]
    Busy(String),
}

impl HostError {
    /// A stable code for APIs and logs.
    pub fn code(&self) -> &'static str {
        match self {
            HostError::MemoryLimit { .. } => "memory_limit",
            HostError::Timeout { .. } => "timeout",
            HostError::LoadTimeout { .. } => "load_timeout",
            HostError::ForbiddenSyscall => "forbidden_syscall",
            HostError::CpuLimit { .. } => "cpu_limit",
            HostError::Load(_) => "load_failed",
            HostError::ModelTooLarge { .. } => "model_too_large",
            HostError::Inference(_) => "inference_failed",
            HostError::BadRequest(_) => "bad_request",
            HostError::Crashed(_) => "crashed",
            HostError::Lost(_) => "host_lost",
            HostError::Spawn(_) => "spawn_failed",
            HostError::Protocol(_) => "protocol",
            HostError::Busy(_) => "busy",
        }
    }

    /// True when the failure is the model's doing (as opposed to the platform's):
    /// only these may reject a submission. The rule for deaths is in `host/reap.rs`.
    pub fn is_model_fault(&self) -> bool {
        !matches!(
            self,
            HostError::Spawn(_)
                | HostError::Busy(_)
                | HostError::BadRequest(_)
                | HostError::Lost(_)
        )
    }

    /// True when trying again with a fresh host may well succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, HostError::Lost(_) | HostError::Spawn(_))
    }
}

fn bytes(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    const GIB: u64 = 1024 * MIB;
    if n >= GIB && n.is_multiple_of(GIB) {
        format!("{} GiB", n / GIB)
    } else if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} bytes")
    }
}

fn duration(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_read_as_the_submission_page_shows_them() {
        assert_eq!(
            HostError::MemoryLimit {
                limit_bytes: 512 * 1024 * 1024
            }
            .to_string(),
            "model exceeded 512 MiB of memory"
        );
        assert_eq!(
            HostError::Timeout {
                after: Duration::from_secs(5)
            }
            .to_string(),
            "inference timed out after 5 s"
        );
        assert_eq!(
            HostError::Timeout {
                after: Duration::from_millis(250)
            }
            .to_string(),
            "inference timed out after 250 ms"
        );
        assert_eq!(
            HostError::ForbiddenSyscall.to_string(),
            "killed by the sandbox: forbidden system call"
        );
        assert_eq!(
            HostError::CpuLimit { seconds: 3 }.to_string(),
            "used more than 3 s of CPU"
        );
    }
}
