//! The lock-down a model host applies to itself before it serves untrusted inference.
//!
//! Everything here runs in the model host child (see [`crate::host`]), never in the
//! server: each call narrows what the *calling process* may do, for good. The order
//! matters and is driven by the host:
//!
//! 0. (the host maps the request buffer its parent shared with it, `host/shared.rs`,
//!    and closes that descriptor: what stays is a plain memory mapping),
//!    and [`close_other_descriptors`] closes anything else it inherited.
//! 1. [`early_limits`] before the model bytes are even read: address space, CPU time,
//!    no file writes, no core dumps, so a model that explodes while loading is
//!    stopped too.
//! 2. [`enter_network_namespace`] while still root (needs `CAP_SYS_ADMIN`).
//! 3. (the host runs a built-in tiny model, `host/warmup.rs`: tract reads
//!    `/sys/devices/system/cpu/*/cache` the first time it runs; the participant's
//!    model is not read yet)
//! 4. [`drop_privileges`] to `nobody` when root, then [`parent_death_signal`] (a
//!    credential change clears it, so it comes after).
//! 5. [`restrict_filesystem`]: a landlock ruleset with no filesystem access at all
//!    (it needs one file descriptor for the ruleset, so it comes before step 6).
//! 6. [`late_limits`]: no new file descriptors, no new processes.
//! 7. [`install_syscall_filter`]: a seccomp allowlist; anything else kills the process
//!    with `SIGSYS`.
//! 8. (only now does the host read and parse the untrusted model)
//!
//! Error policy: each step returns what it enforced as a [`LockdownStep`]; a step the
//! kernel refuses for lack of support (landlock, a network namespace without
//! privileges) is reported, not fatal. A step that must hold (rlimits, seccomp)
//! returns an error and the host refuses to serve.

// Setting rlimits, switching uid, unshare and prctl have no safe wrapper in std or in
// the crates we use; each `unsafe` block is one libc call with plain-value arguments.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

/// The uid and gid a root-started host switches to (`nobody` on Debian and most others).
pub const UNPRIVILEGED_ID: u32 = 65534;

/// One lock-down step and what the kernel actually enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockdownStep {
    /// Short name: `rlimits`, `uid`, `network`, `landlock`, `seccomp`.
    pub name: String,
    /// True when the restriction is in force.
    pub enforced: bool,
    /// Human-readable detail ("dropped to uid 65534", "kernel refused: EPERM").
    pub detail: String,
}

impl LockdownStep {
    fn new(name: &str, enforced: bool, detail: impl Into<String>) -> Self {
        Self {
            name: name.to_owned(),
            enforced,
            detail: detail.into(),
        }
    }
}

/// Everything a host enforced on itself, sent to the parent once it is ready.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockdownReport {
    pub steps: Vec<LockdownStep>,
}

impl LockdownReport {
    /// The step with that name, if the host reported it.
    pub fn step(&self, name: &str) -> Option<&LockdownStep> {
        self.steps.iter().find(|s| s.name == name)
    }
}

impl std::fmt::Display for LockdownReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, step) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            let mark = if step.enforced { "on" } else { "OFF" };
            write!(f, "{} {mark} ({})", step.name, step.detail)?;
        }
        Ok(())
    }
}

fn set_rlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `limit` is a valid, initialised rlimit that outlives the call.
    let rc = unsafe { libc::setrlimit(resource, &limit) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Limits set before the model is read.
///
/// `cpu_soft_secs` is the CPU time allowed for loading (SIGXCPU past it);
/// `cpu_hard_secs` bounds the host's whole life (SIGKILL past it).
pub fn early_limits(
    memory_bytes: u64,
    cpu_soft_secs: u64,
    cpu_hard_secs: u64,
) -> io::Result<LockdownStep> {
    let cpu_hard = cpu_hard_secs.max(1);
    let cpu_soft = cpu_soft_secs.clamp(1, cpu_hard);
    set_rlimit(libc::RLIMIT_CORE, 0, 0)?;
    set_rlimit(libc::RLIMIT_AS, memory_bytes, memory_bytes)?;
    set_rlimit(libc::RLIMIT_CPU, cpu_soft, cpu_hard)?;
    set_rlimit(libc::RLIMIT_FSIZE, 0, 0)?;
    Ok(LockdownStep::new(
        "rlimits",
        true,
        format!("AS={memory_bytes} B, CPU={cpu_soft}/{cpu_hard} s, FSIZE=0, CORE=0"),
    ))
}

/// Limits set once the model is loaded: no new file descriptors, no new processes.
pub fn late_limits() -> io::Result<LockdownStep> {
    // stdin, stdout, stderr are open; nothing else may be.
    set_rlimit(libc::RLIMIT_NOFILE, 3, 3)?;
    set_rlimit(libc::RLIMIT_NPROC, 0, 0)?;
    Ok(LockdownStep::new("rlimits-late", true, "NOFILE=3, NPROC=0"))
}

/// Closes every descriptor but stdin, stdout and stderr: the host inherits whatever
/// its parent left open without close-on-exec (a test runner's jobserver pipe, for
/// one), and it needs none of it.
pub fn close_other_descriptors() -> LockdownStep {
    // SAFETY: close_range takes plain integers and touches no memory of ours; the
    // host owns no descriptor above 2 it still needs at this point.
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc == 0 {
        return LockdownStep::new("descriptors", true, "all but 0, 1, 2 closed");
    }
    let err = io::Error::last_os_error();
    // Kernels before 5.9: close what RLIMIT_NOFILE would let us have had.
    for fd in 3..1024 {
        // SAFETY: closing a descriptor number; EBADF for those not open is ignored.
        unsafe { libc::close(fd) };
    }
    LockdownStep::new(
        "descriptors",
        true,
        format!("0, 1, 2 kept; 3..1024 closed one by one (close_range: {err})"),
    )
}

/// Gives the process an empty network namespace: no interfaces but a downed loopback.
pub fn enter_network_namespace() -> LockdownStep {
    // SAFETY: unshare takes a flag word and touches no memory of ours.
    let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
    if rc == 0 {
        LockdownStep::new("network", true, "own empty network namespace")
    } else {
        let err = io::Error::last_os_error();
        LockdownStep::new(
            "network",
            false,
            format!("unshare(CLONE_NEWNET) refused: {err}"),
        )
    }
}

/// Switches to [`UNPRIVILEGED_ID`] when running as root; a no-op otherwise.
pub fn drop_privileges() -> io::Result<LockdownStep> {
    // SAFETY: getuid cannot fail and takes no arguments.
    let uid = unsafe { libc::getuid() };
    if uid != 0 {
        return Ok(LockdownStep::new(
            "uid",
            true,
            format!("not root: kept uid {uid}"),
        ));
    }
    // SAFETY: a null list with length 0 clears the supplementary groups.
    if unsafe { libc::setgroups(0, std::ptr::null()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresgid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain integer arguments.
    if unsafe { libc::setresuid(UNPRIVILEGED_ID, UNPRIVILEGED_ID, UNPRIVILEGED_ID) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain integer argument; checks the drop cannot be undone.
    if unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other(
            "could still regain uid 0 after dropping privileges",
        ));
    }
    Ok(LockdownStep::new(
        "uid",
        true,
        format!("dropped from root to uid/gid {UNPRIVILEGED_ID}"),
    ))
}

/// Asks the kernel to SIGKILL this process when its parent dies.
pub fn parent_death_signal() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// A landlock ruleset that handles every filesystem (and network, and scope) right the
/// kernel knows and grants none: no file can be opened, created or executed.
///
/// Best effort: an older kernel enforces what it knows and the step says so.
pub fn restrict_filesystem() -> LockdownStep {
    use landlock::{ABI, Access, AccessFs, AccessNet, Ruleset, RulesetAttr, RulesetStatus, Scope};
    let abi = ABI::V7;
    let result = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.handle_access(AccessNet::from_all(abi)))
        .and_then(|r| r.scope(Scope::from_all(abi)))
        .and_then(|r| r.create())
        .and_then(|r| r.restrict_self());
    match result {
        Ok(status) => {
            let enforced = status.ruleset != RulesetStatus::NotEnforced;
            let how = match status.ruleset {
                RulesetStatus::FullyEnforced => "fully enforced",
                RulesetStatus::PartiallyEnforced => "partially enforced (older kernel ABI)",
                RulesetStatus::NotEnforced => "not enforced (kernel lacks landlock)",
            };
            LockdownStep::new(
                "landlock",
                enforced,
                format!("no filesystem access, {how}; kernel: {:?}", status.landlock),
            )
        }
        Err(err) => LockdownStep::new("landlock", false, format!("refused: {err}")),
    }
}

/// System calls a locked-down host may still make, and nothing else.
///
/// Reading happens on stdin only and writing on stdout/stderr only; memory may be
/// mapped but never executable; the only signal it can send is `SIGABRT` to itself
/// (an allocation failure aborts); the CPU-time rlimit may be moved for the next
/// request (its hard limit cannot be raised: the host is no longer root).
/// `open`, `socket`, `connect`, `execve`, `fork`, `clone`, `ptrace` and the rest kill
/// the process with `SIGSYS`.
pub fn install_syscall_filter() -> io::Result<LockdownStep> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
        SeccompFilter, SeccompRule, TargetArch,
    };
    let bad = |e: seccompiler::BackendError| io::Error::other(format!("seccomp filter: {e}"));
    let cond = |arg: u8, op: Op, value: u64| Cond::new(arg, Len::Qword, op, value).map_err(bad);
    let rule = |conds: Vec<Cond>| SeccompRule::new(conds).map_err(bad);

    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let always = [
        libc::SYS_munmap,
        libc::SYS_mremap,
        libc::SYS_brk,
        libc::SYS_madvise,
        libc::SYS_futex,
        libc::SYS_exit,
        libc::SYS_exit_group,
        libc::SYS_clock_gettime,
        libc::SYS_sigaltstack,
        libc::SYS_rt_sigreturn,
        libc::SYS_rt_sigprocmask,
        libc::SYS_sched_yield,
        libc::SYS_getrandom,
        libc::SYS_getpid,
        libc::SYS_gettid,
        libc::SYS_getrusage,
        libc::SYS_close,
    ];
    for nr in always {
        rules.insert(nr, vec![]);
    }
    rules.insert(libc::SYS_read, vec![rule(vec![cond(0, Op::Eq, 0)?])?]);
    rules.insert(
        libc::SYS_write,
        vec![
            rule(vec![cond(0, Op::Eq, 1)?])?,
            rule(vec![cond(0, Op::Eq, 2)?])?,
        ],
    );
    let not_exec = || cond(2, Op::MaskedEq(libc::PROT_EXEC as u64), 0);
    rules.insert(libc::SYS_mmap, vec![rule(vec![not_exec()?])?]);
    rules.insert(libc::SYS_mprotect, vec![rule(vec![not_exec()?])?]);
    rules.insert(
        libc::SYS_tgkill,
        vec![rule(vec![cond(2, Op::Eq, libc::SIGABRT as u64)?])?],
    );
    // prlimit64(0 = self, RLIMIT_CPU, ..) only: the per-request CPU budget.
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![
            cond(0, Op::Eq, 0)?,
            cond(1, Op::Eq, libc::RLIMIT_CPU as u64)?,
        ])?],
    );
    #[cfg(target_arch = "x86_64")]
    rules.insert(
        libc::SYS_setrlimit,
        vec![rule(vec![cond(0, Op::Eq, libc::RLIMIT_CPU as u64)?])?],
    );

    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(bad)?;
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        arch,
    )
    .map_err(bad)?;
    let program: seccompiler::BpfProgram = filter
        .try_into()
        .map_err(|e| io::Error::other(format!("seccomp filter: {e}")))?;
    seccompiler::apply_filter(&program)
        .map_err(|e| io::Error::other(format!("installing the seccomp filter: {e}")))?;
    Ok(LockdownStep::new(
        "seccomp",
        true,
        format!(
            "allowlist of {} system calls, anything else kills the process",
            always.len() + 8
        ),
    ))
}

/// CPU seconds this process has used so far (user + system), rounded up.
pub fn cpu_seconds_used() -> io::Result<u64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: `usage` points to writable memory of the right size.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrusage filled the struct (and it was zeroed before).
    let usage = unsafe { usage.assume_init() };
    let micros = |t: libc::timeval| t.tv_sec.max(0) as u64 * 1_000_000 + t.tv_usec.max(0) as u64;
    let total = micros(usage.ru_utime) + micros(usage.ru_stime);
    Ok(total.div_ceil(1_000_000))
}

/// Lets the next request use at most `seconds` more CPU seconds before `SIGXCPU`.
///
/// The hard limit stays where [`early_limits`] put it (an unprivileged process cannot
/// raise it), so the host's lifetime CPU stays bounded whatever it asks.
pub fn budget_cpu_for_next_request(seconds: u64) -> io::Result<()> {
    let used = cpu_seconds_used()?;
    let mut current = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `current` is a valid out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_CPU, &mut current) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let soft = used.saturating_add(seconds.max(1)).min(current.rlim_max);
    if soft == current.rlim_cur {
        return Ok(());
    }
    set_rlimit(libc::RLIMIT_CPU, soft, current.rlim_max)
}
