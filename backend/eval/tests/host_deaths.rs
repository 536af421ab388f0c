//! Model hosts killed from outside (an operator's `kill -9`, a container stop) while
//! they load, while they are idle and mid-request: the pool restarts them and the
//! request succeeds, in the one call, as if nothing happened. A model that really
//! breaks a limit is still refused with the true reason, and only such a failure
//! is remembered.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod host_support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use host_support::*;
use riposte_eval::host::{HostError, HostLimits, HostPool, ModelHost, PoolConfig, PoolModel};

const MIB: u64 = 1024 * 1024;

fn mnist_limits() -> HostLimits {
    HostLimits {
        input_shape: vec![1, 28, 28],
        classes: Some(10),
        ..HostLimits::default()
    }
}

/// The test host binary, marked so this test finds its own hosts among those of
/// the tests running beside it.
fn marked(mark: &str) -> riposte_eval::host::HostCommand {
    host_command(false).env("RIPOSTE_TEST_MARK", mark)
}

/// A marked host busy-waiting `delay` before parsing its model and before each
/// answer: a window to kill it in.
fn slow_host(mark: &str, delay: Duration) -> riposte_eval::host::HostCommand {
    marked(mark).env(
        "RIPOSTE_MODEL_HOST_TEST_DELAY_MS",
        delay.as_millis().to_string(),
    )
}

/// `/proc/<pid>/stat`: (state, parent pid, CPU ticks), if the process exists.
fn stat(pid: u32) -> Option<(char, u32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f[11].parse::<u64>().ok()? + f[12].parse::<u64>().ok()?;
    Some((f[0].chars().next()?, f[1].parse().ok()?, ticks))
}

/// Live (not zombie) model hosts this test process started with `mark`.
fn live_hosts(mark: &str) -> Vec<u32> {
    let marker = format!("RIPOSTE_TEST_MARK={mark}\0");
    let me = std::process::id();
    let mut pids = vec![];
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if !comm.starts_with("riposte-model") {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if !String::from_utf8_lossy(&environ).contains(&marker) {
            continue;
        }
        if let Some((state, ppid, _)) = stat(pid)
            && ppid == me
            && state != 'Z'
        {
            pids.push(pid);
        }
    }
    pids
}

async fn wait_for_host(mark: &str, what: &str, ready: impl Fn(u32) -> bool) -> u32 {
    let start = Instant::now();
    loop {
        if let Some(pid) = live_hosts(mark).into_iter().find(|p| ready(*p)) {
            return pid;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no model host {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn kill_9(pid: u32) {
    let status = Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Until `pid` is a zombie (dead, not yet reaped by its parent) or gone.
async fn wait_until_dead(pid: u32) {
    let start = Instant::now();
    while stat(pid).is_some_and(|(state, _, _)| state != 'Z') {
        assert!(start.elapsed() < Duration::from_secs(10), "{pid} lives on");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn pool(command: riposte_eval::host::HostCommand) -> Arc<HostPool> {
    Arc::new(HostPool::new(
        command,
        PoolConfig {
            max_hosts: 2,
            memory_budget_bytes: 2048 * MIB,
            ..PoolConfig::default()
        },
    ))
}

#[tokio::test]
async fn a_host_killed_while_it_loads_is_restarted_and_the_request_succeeds() {
    let pool = pool(slow_host("load", Duration::from_millis(700)));
    let model = PoolModel::new(tiny_mlp(), mnist_limits());
    let request = {
        let (pool, model) = (pool.clone(), model.clone());
        tokio::spawn(async move { pool.predict(&model, &[0.1; 784], 1).await })
    };
    // The first host shows up and sits in its 700 ms before parsing the model.
    let first = wait_for_host("load", "started", |_| true).await;
    kill_9(first);
    let logits = request.await.unwrap();
    assert_eq!(
        logits.as_ref().map(Vec::len),
        Ok(10),
        "a host killed while loading must not fail the request: {logits:?}"
    );
    // Nothing was remembered against the model: it keeps answering.
    assert_eq!(
        pool.predict(&model, &[0.2; 784], 1).await.unwrap().len(),
        10
    );
    assert_eq!(pool.live_hosts(), 1);
    assert!(!live_hosts("load").contains(&first));
}

#[tokio::test]
async fn a_host_killed_while_idle_is_replaced_before_it_is_used() {
    let pool = pool(marked("idle"));
    let model = PoolModel::new(tiny_mlp(), mnist_limits());
    let x = vec![0.3f32; 784];
    let before = pool.predict(&model, &x, 1).await.unwrap();
    let idle = wait_for_host("idle", "idle", |_| true).await;
    kill_9(idle);
    wait_until_dead(idle).await;
    let after = pool.predict(&model, &x, 1).await;
    assert_eq!(after.as_ref(), Ok(&before), "{after:?}");
    assert_eq!(pool.live_hosts(), 1);
}

#[tokio::test]
async fn a_host_killed_mid_request_is_restarted_and_the_request_retried() {
    let pool = pool(slow_host("mid-request", Duration::from_millis(700)));
    let model = PoolModel::new(tiny_mlp(), mnist_limits());
    let x = vec![0.4f32; 3 * 784];
    // Loaded (700 ms), answered (700 ms): the host is ready and idle.
    let want = pool.predict(&model, &x, 3).await.unwrap();
    let host = wait_for_host("mid-request", "loaded", |_| true).await;
    let (_, _, idle_ticks) = stat(host).unwrap();
    let request = {
        let (pool, model, x) = (pool.clone(), model.clone(), x.clone());
        tokio::spawn(async move { pool.predict(&model, &x, 3).await })
    };
    // Busy: it spins through its 700 ms before answering.
    wait_for_host("mid-request", "working", |pid| {
        pid == host && stat(pid).is_some_and(|(_, _, t)| t > idle_ticks + 5)
    })
    .await;
    kill_9(host);
    let got = request.await.unwrap();
    assert_eq!(got.as_ref(), Ok(&want), "{got:?}");
}

#[tokio::test]
async fn a_sigterm_from_outside_is_not_the_model_s_fault_either() {
    let mut host = ModelHost::spawn(
        &slow_host("sigterm", Duration::from_millis(1500)),
        &tiny_mlp(),
        &HostLimits {
            batch_sizes: vec![1],
            ..mnist_limits()
        },
    )
    .await
    .unwrap();
    let pid = host.pid().unwrap();
    let killer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
    });
    let err = host.predict(&[0.0; 784], 1).await.unwrap_err();
    killer.await.unwrap();
    assert!(matches!(err, HostError::Lost(_)), "{err}");
    assert!(!err.is_model_fault());
    assert!(err.to_string().contains("SIGTERM"), "{err}");
}

#[tokio::test]
async fn a_model_over_its_memory_limit_is_still_refused_with_the_true_reason() {
    let pool = pool(host_command(false));
    // 32 MiB per example, twice: 32 examples do not fit in 512 MiB.
    let hog = PoolModel::new(
        memory_hog(1 << 23),
        HostLimits {
            input_shape: vec![1],
            classes: Some(2),
            batch_sizes: vec![],
            request_timeout: Duration::from_secs(30),
            ..HostLimits::default()
        },
    );
    assert_eq!(pool.predict(&hog, &[0.5], 1).await.unwrap().len(), 2);
    let err = pool.predict(&hog, &[0.5; 32], 32).await.unwrap_err();
    assert_eq!(
        err,
        HostError::MemoryLimit {
            limit_bytes: 512 * MIB
        }
    );
    assert!(err.is_model_fault());
    assert_eq!(err.to_string(), "model exceeded 512 MiB of memory");
}

#[tokio::test]
async fn a_model_over_its_cpu_limit_is_still_refused_with_the_true_reason() {
    let pool = pool(host_command(false));
    let burner = PoolModel::new(
        slow_model(500),
        HostLimits {
            input_shape: vec![256],
            classes: Some(2),
            batch_sizes: vec![],
            max_batch: 4096,
            request_timeout: Duration::from_secs(120),
            cpu_per_request: Duration::from_secs(1),
            ..HostLimits::default()
        },
    );
    let x = vec![0.5f32; 4096 * 256];
    let mut err = None;
    for _ in 0..3 {
        if let Err(e) = pool.predict(&burner, &x, 4096).await {
            err = Some(e);
            break;
        }
    }
    let err = err.expect("the CPU limit never fired");
    assert_eq!(err, HostError::CpuLimit { seconds: 1 }, "{err}");
    assert!(err.is_model_fault());
}

#[tokio::test]
async fn a_model_that_cannot_load_is_remembered_until_its_slot_idles_out() {
    let pool = HostPool::new(
        host_command(false),
        PoolConfig {
            idle_timeout: Duration::from_millis(100),
            ..PoolConfig::default()
        },
    );
    let broken = PoolModel::new(b"garbage".to_vec(), mnist_limits());
    let first = pool.predict(&broken, &[0.0; 784], 1).await.unwrap_err();
    assert!(matches!(first, HostError::Load(_)), "{first}");
    assert!(first.is_model_fault());
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(pool.evict_idle().await, 0, "no host was alive");
    // Forgotten with its slot: loaded (and refused) afresh.
    let again = pool.predict(&broken, &[0.0; 784], 1).await.unwrap_err();
    assert_eq!(again, first);
}

#[tokio::test]
async fn idle_hosts_are_stopped_on_the_pool_s_timer() {
    let pool = Arc::new(HostPool::new(
        host_command(false),
        PoolConfig {
            idle_timeout: Duration::from_millis(200),
            ..PoolConfig::default()
        },
    ));
    let timer = HostPool::spawn_idle_eviction(&pool);
    let model = PoolModel::new(tiny_mlp(), mnist_limits());
    pool.predict(&model, &[0.0; 784], 1).await.unwrap();
    assert_eq!(pool.live_hosts(), 1);
    // The timer ticks every second at the least.
    let start = Instant::now();
    while pool.live_hosts() > 0 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the idle host was never stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    timer.abort();
}

#[tokio::test]
async fn a_host_shut_down_exits_by_itself_on_the_closed_pipe() {
    let host = ModelHost::spawn(&host_command(false), &tiny_mlp(), &mnist_limits())
        .await
        .unwrap();
    let status = host.shutdown().await.unwrap();
    // Killed after the 1 s grace (SIGKILL) before stdin was really closed.
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn the_host_parses_the_model_only_once_locked_down() {
    // A probing test host opens a file where it would parse this "model": the
    // sandbox must already be in force there.
    let err = ModelHost::spawn(
        &host_command(true),
        riposte_eval::host::probes::PROBE_MODEL_OPEN_FILE,
        &mnist_limits(),
    )
    .await
    .unwrap_err();
    assert_eq!(err, HostError::ForbiddenSyscall, "{err}");
}
