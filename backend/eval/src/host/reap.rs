//! Why a model host died, and whether the model is to blame.
//!
//! A host can die because of its model (it reached the memory, CPU or wall-time
//! limit, or made a system call the sandbox forbids) or because of something else
//! (an operator's `kill -9`, `docker stop`, the OOM killer, a broken pipe on the
//! server's side). Only the first kind may reject a submission; the second restarts
//! the host and retries. The rule lives here, in [`classify`], and nowhere else.
//!
//! The evidence is the wait status, the CPU time the child had used when it died
//! (read from `/proc/<pid>/stat` while it is a zombie, before it is reaped) and the
//! tail of its stderr (an allocation failure past `RLIMIT_AS` prints "memory
//! allocation of N bytes failed" before it aborts).

// One `sysconf` call (clock ticks per second) has no safe wrapper in std.
#![allow(unsafe_code)]

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use super::child::exit_code;
use super::error::HostError;
use super::parent::HostLimits;

/// What the host was doing when it died.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    Load,
    Request,
}

/// Everything known about one dead host.
#[derive(Debug, Clone)]
pub(crate) struct Death<'a> {
    pub stage: Stage,
    pub status: ExitStatus,
    /// User + system CPU time at death; `None` when it could not be read.
    pub cpu: Option<Duration>,
    pub stderr: &'a str,
    /// The server-side error that revealed the death (a broken pipe, an EOF).
    pub io_error: &'a str,
}

/// CPU seconds within which a SIGKILL counts as the kernel enforcing the hard
/// `RLIMIT_CPU` (the kernel checks the limit on its tick, and `/proc` rounds).
const CPU_SLACK: Duration = Duration::from_secs(1);

/// The reason a host died, phrased for whoever will read it. Model-caused deaths
/// give errors whose [`HostError::is_model_fault`] is true; every other death gives
/// [`HostError::Lost`].
// Long on purpose: one decision table of how a host can die; every case and
// its precedence are visible together.
pub(crate) fn classify(death: &Death<'_>, limits: &HostLimits) -> HostError {
    let out_of_memory = death.stderr.contains("memory allocation of")
        || death.stderr.contains("failed to allocate");
    let last_line = death
        .stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned();
    let cpu_secs = |d: Duration| d.as_secs_f64().ceil() as u64;
    let used = match death.cpu {
        Some(cpu) => format!("{:.1} s of CPU used", cpu.as_secs_f64()),
        None => "CPU time unknown".to_owned(),
    };
    if let Some(signal) = death.status.signal() {
        return match signal {
            libc::SIGSYS => HostError::ForbiddenSyscall,
            // Only the kernel sends SIGXCPU: the soft RLIMIT_CPU of the load or the
            // request was reached.
            libc::SIGXCPU => HostError::CpuLimit {
                seconds: match death.stage {
                    Stage::Load => cpu_secs(limits.load_timeout),
                    Stage::Request => cpu_secs(limits.cpu_per_request),
                },
            },
            // The kernel sends SIGKILL at the hard RLIMIT_CPU; anyone else's SIGKILL
            // (an operator, the OOM killer, a container stop) leaves the CPU well under it.
            libc::SIGKILL
                if death
                    .cpu
                    .is_some_and(|cpu| cpu + CPU_SLACK >= limits.cpu_lifetime) =>
            {
                HostError::CpuLimit {
                    seconds: cpu_secs(limits.cpu_lifetime),
                }
            }
            libc::SIGKILL => HostError::Lost(format!(
                "killed by SIGKILL from outside the sandbox ({used} of the {} s allowed)",
                cpu_secs(limits.cpu_lifetime)
            )),
            _ if out_of_memory => HostError::MemoryLimit {
                limit_bytes: limits.memory_bytes,
            },
            // Faults the host's own code raised while running the model.
            libc::SIGSEGV | libc::SIGBUS => HostError::Crashed(format!(
                "{} (possibly out of memory for the stack)",
                signal_name(signal)
            )),
            libc::SIGILL | libc::SIGFPE | libc::SIGABRT => HostError::Crashed(format!(
                "{}{}",
                signal_name(signal),
                if last_line.is_empty() {
                    String::new()
                } else {
                    format!(": {last_line}")
                }
            )),
            // SIGTERM, SIGINT, SIGHUP, SIGPIPE, ...: sent by someone else, or the
            // server closed the pipes.
            other => HostError::Lost(format!(
                "stopped by {} from outside the sandbox ({used})",
                signal_name(other)
            )),
        };
    }
    match death.status.code() {
        Some(exit_code::OUT_OF_MEMORY) => HostError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        },
        _ if out_of_memory => HostError::MemoryLimit {
            limit_bytes: limits.memory_bytes,
        },
        // A clean exit means the host read an end of file on stdin: the server
        // side closed it.
        Some(exit_code::CLEAN) => HostError::Lost(format!(
            "the host exited cleanly in the middle of its work ({})",
            death.io_error
        )),
        Some(code) => HostError::Crashed(format!(
            "exited with code {code} ({}){}",
            death.io_error,
            if last_line.is_empty() {
                String::new()
            } else {
                format!(": {last_line}")
            }
        )),
        None => HostError::Lost(death.io_error.to_owned()),
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProcStat {
    /// Exited and not yet reaped.
    pub zombie: bool,
    /// User + system CPU time so far.
    pub cpu: Duration,
}

/// Reads the state and CPU time of `pid`; `None` when it is gone (or not ours to see).
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text, clock_ticks_per_second())
}

fn parse_stat(text: &str, ticks_per_second: u64) -> Option<ProcStat> {
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split after
    // its last ')'. Fields from there: state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let state = *fields.first()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = utime.saturating_add(stime);
    let per = ticks_per_second.max(1);
    Some(ProcStat {
        zombie: state == "Z",
        cpu: Duration::from_secs(ticks / per)
            + Duration::from_nanos((ticks % per) * 1_000_000_000 / per),
    })
}

fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf takes an integer and reads no memory of ours.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|t| *t > 0).unwrap_or(100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn signalled(signal: i32) -> ExitStatus {
        ExitStatus::from_raw(signal)
    }

    fn exited(code: i32) -> ExitStatus {
        ExitStatus::from_raw(code << 8)
    }

    fn death(status: ExitStatus, cpu: Option<Duration>, stderr: &str) -> Death<'_> {
        Death {
            stage: Stage::Request,
            status,
            cpu,
            stderr,
            io_error: "early eof",
        }
    }

    #[test]
    fn a_sigkill_is_the_model_s_fault_only_at_the_cpu_limit() {
        let limits = HostLimits::default();
        let at_limit = classify(
            &death(
                signalled(libc::SIGKILL),
                Some(Duration::from_secs(3600)),
                "",
            ),
            &limits,
        );
        assert_eq!(at_limit, HostError::CpuLimit { seconds: 3600 });
        assert!(at_limit.is_model_fault());

        let from_outside = classify(
            &death(
                signalled(libc::SIGKILL),
                Some(Duration::from_millis(300)),
                "",
            ),
            &limits,
        );
        assert!(!from_outside.is_model_fault(), "{from_outside}");
        assert_eq!(
            from_outside.to_string(),
            "model host lost (not the model's doing): killed by SIGKILL from outside the sandbox (0.3 s of CPU used of the 3600 s allowed)"
        );
        let unknown = classify(&death(signalled(libc::SIGKILL), None, ""), &limits);
        assert!(!unknown.is_model_fault(), "{unknown}");
    }

    #[test]
    fn limits_and_forbidden_calls_are_the_model_s_fault() {
        let limits = HostLimits::default();
        let cpu = Some(Duration::from_secs(1));
        for (status, stderr, want) in [
            (signalled(libc::SIGSYS), "", HostError::ForbiddenSyscall),
            (
                signalled(libc::SIGXCPU),
                "",
                HostError::CpuLimit { seconds: 10 },
            ),
            (
                signalled(libc::SIGABRT),
                "memory allocation of 68719476736 bytes failed\n",
                HostError::MemoryLimit {
                    limit_bytes: limits.memory_bytes,
                },
            ),
            (
                exited(exit_code::OUT_OF_MEMORY),
                "",
                HostError::MemoryLimit {
                    limit_bytes: limits.memory_bytes,
                },
            ),
        ] {
            let got = classify(&death(status, cpu, stderr), &limits);
            assert_eq!(got, want);
            assert!(got.is_model_fault(), "{got}");
        }
    }

    #[test]
    fn signals_from_outside_and_clean_exits_are_not() {
        let limits = HostLimits::default();
        for status in [
            signalled(libc::SIGTERM),
            signalled(libc::SIGINT),
            signalled(libc::SIGPIPE),
            exited(0),
        ] {
            let got = classify(&death(status, Some(Duration::ZERO), ""), &limits);
            assert!(matches!(got, HostError::Lost(_)), "{status:?}: {got}");
        }
        let term = classify(
            &death(signalled(libc::SIGTERM), Some(Duration::ZERO), ""),
            &limits,
        );
        assert!(term.to_string().contains("SIGTERM"), "{term}");
    }

    #[test]
    fn proc_stat_reads_state_and_cpu_past_odd_names() {
        let line = "4242 (riposte (x) y) Z 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0";
        let stat = parse_stat(line, 100).unwrap();
        assert!(stat.zombie);
        assert_eq!(stat.cpu, Duration::from_secs(3));
        let running = parse_stat("1 (sh) R 0 0 0 0 0 0 0 0 0 0 1 0", 100).unwrap();
        assert!(!running.zombie);
        assert_eq!(running.cpu, Duration::from_millis(10));
        assert!(parse_stat("garbage", 100).is_none());
        let me = proc_stat(std::process::id()).unwrap();
        assert!(!me.zombie);
    }
}
