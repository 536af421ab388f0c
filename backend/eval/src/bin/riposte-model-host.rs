//! The model host as a standalone binary, for the eval crate's tests and benches.
//!
//! Production runs the same code as `riposte model-host`. This binary alone also
//! honours the sandbox tests' probe requests, and only when
//! `RIPOSTE_MODEL_HOST_TEST_PROBES=1` is set; and busy-waits
//! `RIPOSTE_MODEL_HOST_TEST_DELAY_MS` before parsing its model and before each
//! answer, so the host-death tests can kill it while it loads or mid-request.

fn main() {
    let probes = std::env::var_os("RIPOSTE_MODEL_HOST_TEST_PROBES").is_some_and(|v| v == "1");
    let delay = std::env::var("RIPOSTE_MODEL_HOST_TEST_DELAY_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(std::time::Duration::from_millis)
        .unwrap_or_default();
    let code = if probes || !delay.is_zero() {
        riposte_eval::host::model_host_main_for_tests(probes, delay)
    } else {
        riposte_eval::host::model_host_main()
    };
    std::process::exit(code);
}
