use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::helpers::workspace_root;

fn riposte() -> Command {
    Command::new(env!("CARGO_BIN_EXE_riposte"))
}

/// Copy the real bundle and break it in several ways at once.
fn broken_bundle() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("mnist-evasion");
    std::fs::create_dir_all(bundle.join("public")).unwrap();
    std::fs::write(bundle.join("README.md"), "# hi").unwrap();
    std::fs::write(bundle.join("public/eval_x.npy"), b"x").unwrap();
    std::fs::write(
        bundle.join("challenge.toml"),
        r#"slug = "mnist-evasion"
title = "Broken"
kind = "evasion"
difficulty = "impossible"

[task]
input_shape = [1, 28, 28]
dtype = "float32"
value_range = [1.0, 0.0]
classes = 10

[threat]
norm = "l3"
epsilon = -1.0

[[targets]]
name = "mlp"
model = "../../etc/passwd"

[eval]
inputs = "public/eval_x.npy"
labels = "public/missing.npy"

[tracks.attack]
opens = 2026-01-01T00:00:00Z
closes = 2025-01-01T00:00:00Z
"#,
    )
    .unwrap();
    dir
}

#[test]
fn challenge_check_lists_every_problem_with_its_field() {
    let dir = broken_bundle();
    let out = riposte()
        .args(["challenge", "check"])
        .arg(dir.path().join("mnist-evasion"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    for expected in [
        "challenge.toml: difficulty: unknown difficulty \"impossible\"",
        "challenge.toml: task.value_range: [1, 0] must be two finite numbers, low < high",
        "challenge.toml: threat.norm: unknown norm \"l3\"",
        "challenge.toml: threat.epsilon: -1 must be a positive finite number",
        "challenge.toml: targets[0].model: \"../../etc/passwd\" must be a relative path under public/ or private/",
        "challenge.toml: eval.labels: \"public/missing.npy\" does not exist in the bundle",
        "challenge.toml: tracks.attack.closes: must be later than opens",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

#[test]
fn challenge_check_reports_toml_syntax_errors_with_a_line() {
    let dir = tempfile::tempdir().unwrap();
    let bundle = dir.path().join("bad");
    std::fs::create_dir_all(&bundle).unwrap();
    std::fs::write(
        bundle.join("challenge.toml"),
        "slug = \"bad\"\ntitle = \"x\"\nkind = evasion\n",
    )
    .unwrap();
    let out = riposte()
        .args(["challenge", "check"])
        .arg(&bundle)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("challenge.toml:3:"), "{text}");
}

#[test]
fn challenge_check_accepts_the_built_in_bundle() {
    let out = riposte()
        .args(["challenge", "check"])
        .arg(workspace_root().join("challenges/mnist-evasion"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("ok (evasion mnist-evasion"), "{text}");
}

#[test]
fn challenge_import_is_idempotent() {
    let data = tempfile::tempdir().unwrap();
    let bundle = workspace_root().join("challenges/mnist-evasion");
    let run = || {
        let out = riposte()
            .args(["challenge", "import"])
            .arg(&bundle)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(run().contains("mnist-evasion: Created"));
    assert!(run().contains("mnist-evasion: Unchanged"));
}

#[test]
fn import_of_a_broken_bundle_stores_nothing() {
    let data = tempfile::tempdir().unwrap();
    let dir = broken_bundle();
    let out = riposte()
        .args(["challenge", "import"])
        .arg(dir.path().join("mnist-evasion"))
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        !data.path().join("riposte.sqlite3").exists(),
        "a refused import must not create a database"
    );
}

/// The README's first command: `riposte serve` prints the admin's credentials and serves.
#[test]
fn serve_prints_admin_credentials_and_answers_health_checks() {
    let data = tempfile::tempdir().unwrap();
    let mut child = riposte()
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut password = None;
    let mut url = None;
    for line in lines.by_ref() {
        let line = line.unwrap();
        if let Some(p) = line.trim().strip_prefix("password: ") {
            password = Some(p.to_owned());
        }
        if let Some(u) = line.strip_prefix("Riposte is listening on ") {
            url = Some(u.to_owned());
            break;
        }
    }
    let (password, url) = (
        password.expect("admin password printed"),
        url.expect("address printed"),
    );
    assert_eq!(password.len(), 24);
    let health = std::process::Command::new("curl")
        .args(["-sf", &format!("{url}/healthz")])
        .output();
    let body = match health {
        Ok(out) if out.status.success() => String::from_utf8(out.stdout).unwrap(),
        _ => {
            // no curl: talk HTTP by hand
            use std::io::{Read, Write};
            let addr = url.trim_start_matches("http://");
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        }
    };
    assert!(body.contains("\"ok\""), "{body}");
    assert!(data.path().join("riposte.sqlite3").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    // a second start keeps the admin and prints no password
    let mut again = riposte()
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(again.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    again.kill().unwrap();
    again.wait().unwrap();
    assert!(first.starts_with("Riposte is listening on"), "{first}");
}

#[test]
fn challenge_export_writes_back_what_was_imported_and_backup_restores_it() {
    let data = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let bundle = workspace_root().join("challenges/fine-print");
    let run = |args: &[&str]| {
        riposte()
            .args(args)
            .arg("--data-dir")
            .arg(data.path())
            .output()
            .unwrap()
    };
    let import = riposte()
        .args(["challenge", "import"])
        .arg(&bundle)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(import.status.success());
    let export = |to: &std::path::Path| {
        run(&[
            "challenge",
            "export",
            "fine-print",
            "--out",
            to.to_str().unwrap(),
        ])
    };
    let done = export(out.path());
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    let exported = out.path().join("fine-print");
    for file in ["challenge.toml", "README.md"] {
        assert_eq!(
            std::fs::read(exported.join(file)).unwrap(),
            std::fs::read(bundle.join(file)).unwrap(),
            "{file}"
        );
    }
    let check = riposte()
        .args(["challenge", "check"])
        .arg(&exported)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // Never over an existing folder; an unknown slug says so.
    let again = export(out.path());
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("exists already"));
    let unknown = run(&["challenge", "export", "nope"]);
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no challenge \"nope\""));

    // A backup of this data folder restores into another, not over itself.
    let file = out.path().join("event.tar");
    let backup = run(&["backup", file.to_str().unwrap()]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stderr)
    );
    let over = run(&["restore", file.to_str().unwrap()]);
    assert!(!over.status.success());
    assert!(String::from_utf8_lossy(&over.stderr).contains("not empty"));
    let elsewhere = tempfile::tempdir().unwrap();
    let restored = riposte()
        .args(["restore", file.to_str().unwrap(), "--data-dir"])
        .arg(elsewhere.path())
        .output()
        .unwrap();
    assert!(
        restored.status.success(),
        "{}",
        String::from_utf8_lossy(&restored.stderr)
    );
    assert!(String::from_utf8_lossy(&restored.stdout).starts_with("restored "));
}
