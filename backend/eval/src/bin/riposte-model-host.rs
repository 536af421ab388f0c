//! The model host as a standalone binary, for the eval crate's tests and benches.
//!
//! Production runs the same code as `riposte model-host`. This binary alone also
//! honours the sandbox tests' probe requests, and only when
//! `RIPOSTE_MODEL_HOST_TEST_PROBES=1` is set.

fn main() {
    let probes = std::env::var_os("RIPOSTE_MODEL_HOST_TEST_PROBES").is_some_and(|v| v == "1");
    let code = if probes {
        riposte_eval::host::model_host_main_with_test_probes()
    } else {
        riposte_eval::host::model_host_main()
    };
    std::process::exit(code);
}
