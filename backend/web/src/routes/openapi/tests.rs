//! The description against the code: every `/api/v1` route registered in
//! `routes/*.rs` is documented (and nothing else is), and the document holds
//! together (references, path parameters, operation ids, the error format).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::document;

const SRC_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src");

fn doc() -> Value {
    serde_json::to_value(document(false)).expect("the document serializes")
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// `(METHOD, path)` of every operation in the document.
fn documented(doc: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                out.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The text between the bracket at `open` and its partner.
fn bracketed(text: &str, open: usize) -> &str {
    let bytes = text.as_bytes();
    let (left, right) = match bytes[open] {
        b'(' => (b'(', b')'),
        b'{' => (b'{', b'}'),
        other => panic!("no bracket at {open}: {:?}", other as char),
    };
    let mut depth = 0;
    for (i, &b) in bytes.iter().enumerate().skip(open) {
        if b == left {
            depth += 1;
        } else if b == right {
            depth -= 1;
            if depth == 0 {
                return &text[open + 1..i];
            }
        }
    }
    panic!("unbalanced bracket at {open}")
}

/// Every `fn NAME(cfg: &mut web::ServiceConfig) { ... }` of a source file.
fn configure_functions(source: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let marker = "(cfg: &mut web::ServiceConfig)";
    let mut from = 0;
    while let Some(at) = source[from..].find(marker) {
        let at = from + at;
        from = at + marker.len();
        // `fn name` just before, on the same line (not the marker quoted in a string).
        let line = &source[source[..at].rfind('\n').map_or(0, |i| i + 1)..at];
        // A declaration: the line starts with `fn` or a visibility.
        let declaration = line.trim_start();
        let Some((_, name)) = line
            .rsplit_once("fn ")
            .filter(|_| declaration.starts_with("fn ") || declaration.starts_with("pub"))
        else {
            continue;
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            continue;
        }
        let open = at + source[at..].find('{').expect("a body");
        out.insert(name.to_owned(), bracketed(source, open).to_owned());
        from = open + 1;
    }
    out
}

/// `body` with each `&str` constant of `source` that a registration names
/// (`cfg.route(PATH, ...)`) written as its literal.
fn with_constants(source: &str, body: &str) -> String {
    let mut body = body.to_owned();
    for part in source.split("const ").skip(1) {
        let Some((name, rest)) = part.split_once(": &str = \"") else {
            continue;
        };
        let Some((value, _)) = rest.split_once('"') else {
            continue;
        };
        for call in ["route(", "resource(", "scope("] {
            body = body.replace(&format!("{call}{name}"), &format!("{call}\"{value}\""));
        }
    }
    body
}

/// The file and function a `configure(path::to::function)` call in `file` names.
fn resolve_call(file: &Path, call: &str) -> (PathBuf, String) {
    let src = Path::new(SRC_DIR);
    let mut dir = match file.file_stem().and_then(|s| s.to_str()) {
        Some("mod" | "lib") => file.parent().expect("a folder").to_owned(),
        Some(stem) => file.parent().expect("a folder").join(stem),
        None => panic!("{file:?}"),
    };
    let segments: Vec<&str> = call.split("::").map(str::trim).collect();
    let (function, modules) = segments.split_last().expect("a function");
    for module in modules {
        match *module {
            "crate" => dir = src.to_owned(),
            "super" => dir = dir.parent().expect("a parent").to_owned(),
            "self" => {}
            name => dir = dir.join(name),
        }
    }
    let module_file = if dir.with_extension("rs").exists() {
        dir.with_extension("rs")
    } else {
        dir.join("mod.rs")
    };
    (module_file, (*function).to_owned())
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("a source folder") {
        let path = entry.expect("an entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `(METHOD, path)` in a `configure*` body: each `web::get()`, `web::post()`, ...
/// belongs to the path literal before it (`cfg.route("/p", web::get()...)` and
/// `web::resource("/p")...route(web::patch()...)` alike).
fn routes_in(body: &str, file: &str, function: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, bool)> = None;
    // The path literal after `web::scope(` is a prefix: the scope's routes are
    // read from its configure calls.
    let mut scope_prefix = false;
    let mut rest = body;
    loop {
        let next_path = rest.find("\"/");
        let next_method = rest.find("web::");
        match (next_path, next_method) {
            (Some(p), m) if m.is_none_or(|m| p < m) => {
                let end = p + 1 + rest[p + 1..].find('"').expect("a closing quote");
                if std::mem::take(&mut scope_prefix) {
                    rest = &rest[end + 1..];
                    continue;
                }
                if let Some((path, false)) = &current {
                    panic!(
                        "{file} {function}: {path} is registered without a method this test can read"
                    );
                }
                current = Some((rest[p + 1..end].to_owned(), false));
                rest = &rest[end + 1..];
            }
            (_, Some(m)) => {
                let call = &rest[m + "web::".len()..];
                let word: String = call.chars().take_while(char::is_ascii_alphabetic).collect();
                scope_prefix = word == "scope";
                if METHODS.contains(&word.as_str()) && call[word.len()..].starts_with("()") {
                    let (path, used) = current.as_mut().unwrap_or_else(|| {
                        panic!("{file} {function}: web::{word}() before any path")
                    });
                    out.push((word.to_uppercase(), path.clone()));
                    *used = true;
                }
                rest = &call[word.len()..];
            }
            _ => break,
        }
    }
    if let Some((path, false)) = &current {
        panic!("{file} {function}: {path} is registered without a method this test can read");
    }
    out
}

/// `{name:.+}` (an actix pattern) as OpenAPI writes it: `{name}`.
fn normalized(path: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    let mut skipping = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_param = true;
                out.push(c);
            }
            '}' if in_param => {
                in_param = false;
                skipping = false;
                out.push(c);
            }
            ':' if in_param => skipping = true,
            _ if skipping => {}
            _ => out.push(c),
        }
    }
    out
}

/// `(METHOD, path)` of every `/api/v1` route the source registers: the routes
/// of the configure functions that `routes::configure` hands the `/api/v1`
/// scope (and those they configure in turn), relative to it, and any absolute
/// `/api/` path registered anywhere in `src/`.
fn registered() -> BTreeSet<(String, String)> {
    let mut files = Vec::new();
    sources(Path::new(SRC_DIR), &mut files);
    files.sort();
    let functions: BTreeMap<(PathBuf, String), String> = files
        .iter()
        .flat_map(|file| {
            let source = std::fs::read_to_string(file).expect("source");
            configure_functions(&source)
                .into_iter()
                .map(|(name, body)| ((file.clone(), name), with_constants(&source, &body)))
                .collect::<Vec<_>>()
        })
        .collect();

    // The functions that configure the `/api/v1` scope.
    let root_file = Path::new(SRC_DIR).join("routes/mod.rs");
    let root = std::fs::read_to_string(&root_file).expect("routes/mod.rs");
    let scope_at = root
        .find("web::scope(\"/api/v1\")")
        .expect("routes/mod.rs opens the /api/v1 scope");
    let service_open = root[..scope_at].rfind(".service(").expect(".service(") + ".service".len();
    let mut pending: Vec<(PathBuf, String)> = configure_calls(bracketed(&root, service_open))
        .map(|call| resolve_call(&root_file, call))
        .collect();
    assert!(
        pending.len() > 10,
        "the scope's configure calls were not found: {pending:?}"
    );
    let mut scoped = BTreeSet::new();
    while let Some(key) = pending.pop() {
        let body = functions
            .get(&key)
            .unwrap_or_else(|| panic!("the /api/v1 scope configures {key:?}, which was not found"));
        pending.extend(configure_calls(body).map(|call| resolve_call(&key.0, call)));
        scoped.insert(key);
    }

    let mut out = BTreeSet::new();
    for ((file, function), body) in &functions {
        let name = file
            .strip_prefix(SRC_DIR)
            .unwrap_or(file)
            .display()
            .to_string();
        let in_scope = scoped.contains(&(file.clone(), function.clone()));
        for (method, path) in routes_in(body, &name, function) {
            if in_scope {
                out.insert((method, normalized(&format!("/api/v1{path}"))));
            } else if path.starts_with("/api/") {
                out.insert((method, normalized(&path)));
            }
        }
    }
    out
}

/// The paths of the `.configure(path)` calls in `body`.
fn configure_calls(body: &str) -> impl Iterator<Item = &str> {
    body.split(".configure(")
        .skip(1)
        .map(|part| part[..part.find(')').expect(")")].trim())
}

#[test]
fn the_scanner_reads_each_registration_style() {
    let body = r#"
        cfg.route("/a/{slug}", web::post().to(a))
            .route("/b/{name:.+}", web::get().to(b));
        cfg.service(
            web::resource("/c/{id}")
                .app_data(web::PayloadConfig::new(1))
                .route(web::patch().to(c))
                .route(web::delete().to(d)),
        )
    "#;
    let routes = routes_in(body, "test", "configure");
    assert_eq!(
        routes,
        [
            ("POST", "/a/{slug}"),
            ("GET", "/b/{name:.+}"),
            ("PATCH", "/c/{id}"),
            ("DELETE", "/c/{id}"),
        ]
        .map(|(m, p)| (m.to_owned(), p.to_owned()))
    );
    assert_eq!(normalized("/b/{name:.+}/x/{id}"), "/b/{name}/x/{id}");

    let source = "pub const PATH: &str = \"/p\";\nfn configure(cfg: &mut web::ServiceConfig) {\n    cfg.route(PATH, web::get().to(p));\n}\n// fn NOT(cfg: &mut web::ServiceConfig) {}";
    let functions = configure_functions(source);
    assert_eq!(functions.keys().collect::<Vec<_>>(), ["configure"]);
    let body = with_constants(source, &functions["configure"]);
    assert_eq!(
        routes_in(&body, "test", "configure"),
        [("GET".to_owned(), "/p".to_owned())]
    );

    let routes = Path::new(SRC_DIR).join("routes/mod.rs");
    let src = Path::new(SRC_DIR);
    assert_eq!(
        resolve_call(&routes, "api::configure"),
        (src.join("routes/api.rs"), "configure".to_owned())
    );
    assert_eq!(
        resolve_call(&routes, "crate::routes::openapi::configure_api"),
        (src.join("routes/openapi.rs"), "configure_api".to_owned())
    );
    assert_eq!(
        resolve_call(&src.join("routes/api.rs"), "super::super::auth::f"),
        (src.join("auth.rs"), "f".to_owned())
    );
}

#[test]
#[should_panic(expected = "without a method")]
fn the_scanner_refuses_a_route_it_cannot_read() {
    routes_in(
        r#"cfg.service(web::resource("/x").to(handler));"#,
        "test",
        "configure",
    );
}

#[test]
fn every_registered_api_route_is_documented_and_nothing_else() {
    let registered = registered();
    let documented = documented(&doc());
    assert!(
        registered.len() >= 40,
        "only {} routes read: {registered:?}",
        registered.len()
    );
    let undocumented: Vec<_> = registered.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&registered).collect();
    assert!(
        undocumented.is_empty(),
        "registered under /api/v1 but missing from the OpenAPI document (add #[utoipa::path] \
         and list it in ApiDoc's paths): {undocumented:?}"
    );
    assert!(
        unrouted.is_empty(),
        "in the OpenAPI document but not registered: {unrouted:?}"
    );
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r),
                    _ => refs(v, out),
                }
            }
        }
        Value::Array(list) => list.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// The schema at `schema`, following one `$ref`.
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("{r} does not resolve")),
        None => schema,
    }
}

/// `(operation, status)` of error answers that are not in the JSON error format,
/// each for a reason outside our handlers.
const ERRORS_WITHOUT_JSON: [(&str, &str); 1] = [
    // actix's `PayloadConfig` limit answers 413 in plain text.
    ("query_model", "413"),
];

#[test]
fn the_document_holds_together() {
    let doc = doc();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")));
    assert_eq!(doc["info"]["title"], "Riposte API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    let mut all_refs = Vec::new();
    refs(&doc, &mut all_refs);
    assert!(all_refs.len() > 50, "few references: {all_refs:?}");
    for r in &all_refs {
        assert!(
            r.starts_with("#/components/"),
            "{r} points outside the document"
        );
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }

    let tags: BTreeSet<&str> = doc["tags"]
        .as_array()
        .expect("tags")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("securitySchemes");
    assert!(schemes.contains_key(super::BEARER) && schemes.contains_key(super::SESSION));
    assert_eq!(schemes[super::BEARER]["scheme"], "bearer");
    assert_eq!(schemes[super::SESSION]["in"], "cookie");
    for requirement in doc["security"].as_array().expect("global security") {
        for name in requirement.as_object().expect("requirement").keys() {
            assert!(schemes.contains_key(name), "global security names {name}");
        }
    }

    let mut ids = BTreeSet::new();
    let mut error_answers = 0;
    for (path, item) in doc["paths"].as_object().expect("paths") {
        assert!(path.starts_with("/api/v1/"), "{path} is outside /api/v1");
        let in_template: BTreeSet<&str> = path
            .split('{')
            .skip(1)
            .map(|s| &s[..s.find('}').expect("a closing brace")])
            .collect();
        for method in METHODS {
            let Some(op) = item.get(method) else { continue };
            let id = op["operationId"].as_str().expect("operationId");
            let what = format!("{} {path} ({id})", method.to_uppercase());
            assert!(ids.insert(id.to_owned()), "operationId {id} is used twice");
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{what} has no summary"
            );
            let op_tags = op["tags"].as_array().expect("tags");
            assert!(!op_tags.is_empty(), "{what} has no tag");
            for t in op_tags {
                let t = t.as_str().expect("tag");
                assert!(tags.contains(t), "{what}: tag {t} is not declared");
            }
            if let Some(requirements) = op.get("security") {
                for requirement in requirements.as_array().expect("security") {
                    for name in requirement.as_object().expect("requirement").keys() {
                        assert!(schemes.contains_key(name), "{what} names scheme {name}");
                    }
                }
            }

            let params = op.get("parameters").and_then(Value::as_array);
            let declared: BTreeSet<&str> = params
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(
                        p["required"], true,
                        "{what}: path parameter {p} must be required"
                    );
                    p["name"].as_str().expect("name")
                })
                .collect();
            assert_eq!(
                declared, in_template,
                "{what}: path parameters declared vs in the path"
            );
            let mut seen = BTreeSet::new();
            for p in params.into_iter().flatten() {
                let (name, place) = (
                    p["name"].as_str().expect("name"),
                    p["in"].as_str().expect("in"),
                );
                assert!(
                    ["path", "query", "header", "cookie"].contains(&place),
                    "{what}: {p}"
                );
                assert!(seen.insert((name, place)), "{what}: parameter {name} twice");
                assert!(
                    p.get("schema").is_some(),
                    "{what}: parameter {name} has no schema"
                );
            }

            if let Some(body) = op.get("requestBody") {
                let content = body["content"].as_object().expect("request content");
                assert!(
                    !content.is_empty(),
                    "{what}: a request body without content"
                );
                for (media, c) in content {
                    assert!(c.get("schema").is_some(), "{what}: {media} has no schema");
                }
            }

            let responses = op["responses"].as_object().expect("responses");
            assert!(
                responses
                    .keys()
                    .any(|s| s.starts_with('2') || s.starts_with('3')),
                "{what} has no successful answer"
            );
            assert!(responses.contains_key("500"), "{what} has no 500");
            let public = op
                .get("security")
                .is_some_and(|s| s == &serde_json::json!([{}]));
            assert_eq!(
                responses.contains_key("401"),
                !public || id == "create_token",
                "{what}: 401 for authenticated operations (and the login)"
            );
            for (status, answer) in responses {
                assert!(
                    answer["description"]
                        .as_str()
                        .is_some_and(|d| !d.is_empty()),
                    "{what} {status}: no description"
                );
                if status.starts_with('4') || status.starts_with('5') {
                    if ERRORS_WITHOUT_JSON.contains(&(id, status.as_str())) {
                        continue;
                    }
                    error_answers += 1;
                    let schema = answer
                        .pointer("/content/application~1json/schema")
                        .unwrap_or_else(|| panic!("{what} {status}: no JSON error body"));
                    let schema = deref(&doc, schema);
                    assert_eq!(
                        schema
                            .pointer("/properties/error/$ref")
                            .and_then(Value::as_str),
                        Some("#/components/schemas/ErrorDetail"),
                        "{what} {status}: not the API's error format"
                    );
                    assert!(
                        schema["required"]
                            .as_array()
                            .is_some_and(|r| r.contains(&"error".into())),
                        "{what} {status}: `error` must be required"
                    );
                }
            }
        }
    }
    assert!(
        error_answers > 100,
        "only {error_answers} error answers checked"
    );
    let error = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(error["required"], serde_json::json!(["code", "message"]));
}

#[test]
fn the_session_cookie_is_named_as_the_server_names_it() {
    for secure in [false, true] {
        let doc = serde_json::to_value(document(secure)).expect("JSON");
        assert_eq!(
            doc["components"]["securitySchemes"][super::SESSION]["name"],
            crate::auth::session_cookie_name(secure)
        );
    }
}

/// The `enum` of schema `name`.
fn enum_values(doc: &Value, name: &str) -> Vec<String> {
    doc["components"]["schemas"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("schema {name} has no enum"))
        .iter()
        .map(|v| v.as_str().expect("text").to_owned())
        .collect()
}

/// The descriptions of core's enums list what core serializes.
#[test]
fn core_enums_are_described_as_they_serialize() {
    use riposte_core::store::{Split, SubmissionStatus, Track};
    let doc = doc();
    fn names<T: serde::Serialize>(all: impl IntoIterator<Item = T>) -> Vec<String> {
        all.into_iter()
            .map(|v| {
                serde_json::to_value(v)
                    .expect("JSON")
                    .as_str()
                    .expect("text")
                    .to_owned()
            })
            .collect()
    }
    assert_eq!(
        enum_values(&doc, "ChallengeKind"),
        names(riposte_core::challenge::ChallengeKind::ALL)
    );
    assert_eq!(
        enum_values(&doc, "Difficulty"),
        names(riposte_core::challenge::Difficulty::ALL)
    );
    assert_eq!(
        enum_values(&doc, "Role"),
        names(riposte_core::account::Role::ALL)
    );
    // No `ALL` for these: a variant added to core stops these matches compiling.
    let track = |t: Track| match t {
        Track::Attack | Track::Defense => t,
    };
    assert_eq!(
        enum_values(&doc, "Track"),
        names([Track::Attack, Track::Defense].map(track))
    );
    let split = |s: Split| match s {
        Split::Public | Split::Private => s,
    };
    assert_eq!(
        enum_values(&doc, "Split"),
        names([Split::Public, Split::Private].map(split))
    );
    let status = |s: SubmissionStatus| match s {
        SubmissionStatus::Queued
        | SubmissionStatus::Running
        | SubmissionStatus::Scored
        | SubmissionStatus::Rejected
        | SubmissionStatus::Failed => s,
    };
    use SubmissionStatus as S;
    assert_eq!(
        enum_values(&doc, "SubmissionStatus"),
        names([S::Queued, S::Running, S::Scored, S::Rejected, S::Failed].map(status))
    );
    use riposte_core::task::{Dtype, Norm};
    let norm = |n: Norm| match n {
        Norm::L0 | Norm::L1 | Norm::L2 | Norm::Linf => n,
    };
    assert_eq!(
        enum_values(&doc, "Norm"),
        names([Norm::L0, Norm::L1, Norm::L2, Norm::Linf].map(norm))
    );
    let dtype = |d: Dtype| match d {
        Dtype::Float32 | Dtype::Uint8 => d,
    };
    assert_eq!(
        enum_values(&doc, "Dtype"),
        names([Dtype::Float32, Dtype::Uint8].map(dtype))
    );
    use riposte_core::leaderboard::PartKind;
    let part = |p: PartKind| match p {
        PartKind::Attack | PartKind::Defense | PartKind::Flag | PartKind::Hint => p,
    };
    assert_eq!(
        enum_values(&doc, "PartKind"),
        names(
            [
                PartKind::Attack,
                PartKind::Defense,
                PartKind::Flag,
                PartKind::Hint
            ]
            .map(part)
        )
    );
}

/// An independent check where the machine has one: the Python
/// `openapi-spec-validator` (OpenAPI 3.1's JSON Schema and its rules).
#[test]
fn the_document_passes_openapi_spec_validator_where_installed() {
    let python = std::env::var("RIPOSTE_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let has_validator = std::process::Command::new(&python)
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_validator {
        // Under CI=true a missing validator fails the run (.ci/run installs it).
        riposte_db::testing::missing(&format!(
            "{python} has no openapi_spec_validator (pip install openapi-spec-validator)"
        ));
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("openapi.json");
    std::fs::write(&file, document(false).to_pretty_json().expect("JSON")).expect("write");
    let out = std::process::Command::new(&python)
        .args(["-m", "openapi_spec_validator"])
        .arg(&file)
        .output()
        .expect("running the validator");
    assert!(
        out.status.success(),
        "openapi-spec-validator refuses the document:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_page_lists_every_operation_once() {
    let doc = document(false);
    let view = super::page::ApiView::new(&doc).expect("the page's view");
    let listed: Vec<(String, String)> = view
        .tags
        .iter()
        .flat_map(|t| {
            t.operations
                .iter()
                .map(|o| (o.method.to_uppercase(), o.path.clone()))
        })
        .collect();
    let unique: BTreeSet<_> = listed.iter().cloned().collect();
    assert_eq!(listed.len(), unique.len(), "an operation listed twice");
    assert_eq!(
        unique,
        documented(&serde_json::to_value(&doc).expect("JSON"))
    );
    assert_eq!(view.tags.first().map(|t| t.name.as_str()), Some("Account"));
    let upload = view
        .tags
        .iter()
        .flat_map(|t| &t.operations)
        .find(|o| o.path == "/api/v1/challenges/{slug}/submissions")
        .expect("the upload");
    let body = upload.body.as_ref().expect("a body");
    assert_eq!(body.contents[0].media_type, "multipart/form-data");
    assert!(view.schemas.iter().any(|s| s.name == "ErrorBody"));
}
