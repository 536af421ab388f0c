//! The OpenAPI description against the running app: served without a token,
//! every documented operation is a route (and asks for credentials exactly when
//! the description says so), live answers have the documented shapes, and the
//! `/api` page lists the operations without loading anything from elsewhere.
//! (Which registered routes are documented is read from the source by the unit
//! tests in `src/routes/openapi/tests.rs`.)

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::competition::{spawn_competition, upload_to, wait_final};
use crate::helpers::{Client, Db, PASSWORD, TestApp, workspace_root};

const METHODS: [&str; 5] = ["get", "put", "post", "delete", "patch"];

async fn description(c: &Client) -> Value {
    let r = c.get("/api/v1/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK, "served without a token");
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    r.json().await.unwrap()
}

/// A path template with plausible values for its parameters.
fn filled(path: &str) -> String {
    path.replace("{slug}", "mnist-evasion")
        .replace("{id}", "1")
        .replace("{name}", "eval_x.npy")
}

/// Whether `(status, body)` is the app's answer to a request no route takes:
/// the default service's JSON 404 naming the method and path (a handler's 404
/// names what it did not find), or a 405.
fn no_route(method: &Method, path: &str, status: StatusCode, body: &str) -> bool {
    if status == StatusCode::METHOD_NOT_ALLOWED {
        return true;
    }
    let message = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|b| b["error"]["message"].as_str().map(str::to_owned));
    status == StatusCode::NOT_FOUND
        && message.as_deref() == Some(&format!("{method} {path} not found"))
}

async fn send(c: &Client, method: &Method, path: &str) -> (StatusCode, String) {
    let r = c
        .http
        .request(method.clone(), c.url(path))
        .send()
        .await
        .unwrap();
    (r.status(), r.text().await.unwrap())
}

/// Routing does not depend on the database: one backend is enough here.
#[actix_web::test]
async fn every_documented_operation_is_a_route_that_asks_for_credentials_as_documented() {
    let app = TestApp::spawn(Db::Sqlite, |s| s.workers = 0).await.unwrap();
    let c = app.client();
    let doc = description(&c).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Riposte API");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));

    // The detector itself: no route, and a route's path with a method it does not take.
    for (method, path) in [
        (Method::GET, "/api/v1/no-such-thing"),
        (Method::DELETE, "/api/v1/challenges"),
        (Method::PUT, "/api/v1/event"),
    ] {
        let (status, body) = send(&c, &method, path).await;
        assert!(
            no_route(&method, path, status, &body),
            "{method} {path}: {status} {body}"
        );
    }
    // ...and a handler's own 404 is not mistaken for it.
    let (status, body) = send(&c, &Method::GET, "/api/v1/openapi.json").await;
    assert!(!no_route(
        &Method::GET,
        "/api/v1/openapi.json",
        status,
        &body
    ));

    let mut checked = 0;
    let mut problems = Vec::new();
    for (template, item) in doc["paths"].as_object().unwrap() {
        for name in METHODS {
            let Some(op) = item.get(name) else { continue };
            let method = Method::from_bytes(name.to_uppercase().as_bytes()).unwrap();
            let path = filled(template);
            assert!(!path.contains('{'), "unfilled parameter in {path}");
            let (status, body) = send(&c, &method, &path).await;
            checked += 1;
            if no_route(&method, &path, status, &body) {
                problems.push(format!(
                    "{method} {template}: no such route ({status} {body})"
                ));
                continue;
            }
            let public = op.get("security") == Some(&serde_json::json!([{}]));
            if public == (status == StatusCode::UNAUTHORIZED) {
                problems.push(format!(
                    "{method} {template}: documented {}, answered {status} without credentials: {body}",
                    if public { "public" } else { "as needing credentials" },
                ));
            }
        }
    }
    assert!(checked >= 40, "only {checked} operations documented");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    app.finish().await;
}

// ---------------------------------------------------------------------------
// Live answers against the documented schemas.

/// The schema `schema` refers to, followed through `$ref`s.
fn deref<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => deref(doc, doc.pointer(&r[1..]).unwrap_or_else(|| panic!("{r}"))),
        None => schema,
    }
}

/// Why `value` does not fit `schema` (empty when it does): types, enums,
/// required properties, and no property the schema does not name.
fn misfits(doc: &Value, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let schema = deref(doc, schema);
    if let Some(branches) = schema.get("oneOf").or_else(|| schema.get("anyOf")) {
        let branches = branches.as_array().unwrap();
        if branches
            .iter()
            .any(|b| misfits(doc, b, value, at).is_empty())
        {
            return vec![];
        }
        return vec![format!(
            "{at}: {value} fits none of {}",
            Value::from(branches.clone())
        )];
    }
    if let Some(parts) = schema.get("allOf") {
        // Properties of every part together: each part alone may not name them all.
        let mut merged = serde_json::Map::new();
        let mut required = Vec::new();
        for part in parts.as_array().unwrap() {
            let part = deref(doc, part);
            if let Some(p) = part.get("properties").and_then(Value::as_object) {
                merged.extend(p.clone());
            }
            if let Some(r) = part.get("required").and_then(Value::as_array) {
                required.extend(r.clone());
            }
        }
        let whole =
            serde_json::json!({"type": "object", "properties": merged, "required": required});
        return misfits(doc, &whole, value, at);
    }
    let mut out = Vec::new();
    if let Some(choices) = schema.get("enum").and_then(Value::as_array)
        && !choices.contains(value)
    {
        out.push(format!("{at}: {value} is not one of {choices:?}"));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => return out,
    };
    let fits = types.iter().any(|t| match *t {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    });
    if !fits {
        out.push(format!("{at}: {value} is not {types:?}"));
        return out;
    }
    if let Some(list) = value.as_array()
        && let Some(items) = schema.get("items")
    {
        for (i, v) in list.iter().enumerate().take(20) {
            out.extend(misfits(doc, items, v, &format!("{at}[{i}]")));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = name.as_str().unwrap();
            if !object.contains_key(name) {
                out.push(format!("{at}: required {name:?} is missing"));
            }
        }
        let extra = schema.get("additionalProperties");
        for (key, v) in object {
            match (properties.and_then(|p| p.get(key)), extra) {
                (Some(s), _) => out.extend(misfits(doc, s, v, &format!("{at}.{key}"))),
                (None, Some(s @ Value::Object(_))) => {
                    out.extend(misfits(doc, s, v, &format!("{at}.{key}")))
                }
                (None, Some(Value::Bool(true))) => {}
                (None, _) if properties.is_some() => {
                    out.push(format!("{at}: {key:?} is not in the description"));
                }
                (None, _) => {}
            }
        }
    }
    out
}

/// Sends `request`; asserts the status is documented for `(method, template)`
/// and the JSON body fits the schema documented for it. Returns the body.
async fn conforms(
    doc: &Value,
    (method, template): (&str, &str),
    request: reqwest::RequestBuilder,
) -> Value {
    let r = request.send().await.unwrap();
    let status = r.status();
    let op = &doc["paths"][template][method];
    assert!(op.is_object(), "{method} {template} is not documented");
    let answer = &op["responses"][status.as_str()];
    assert!(
        answer.is_object(),
        "{method} {template}: {status} is not documented"
    );
    if status.is_success() {
        for (name, _) in answer["headers"].as_object().into_iter().flatten() {
            assert!(
                r.headers().contains_key(name.as_str()),
                "{method} {template}: no {name} header"
            );
        }
    }
    let body: Value = r.json().await.unwrap();
    let schema = answer
        .pointer("/content/application~1json/schema")
        .unwrap_or_else(|| panic!("{method} {template} {status}: no JSON schema documented"));
    let wrong = misfits(doc, schema, &body, "$");
    assert!(
        wrong.is_empty(),
        "{method} {template} {status}:\n{}\n{body:#}",
        wrong.join("\n")
    );
    body
}

crate::on_both_databases!(live_answers_have_the_documented_shapes);
async fn live_answers_have_the_documented_shapes(db: Db) {
    let app = spawn_competition(db, |_| {}).await.unwrap();
    let c = app.competitor("alice").await;
    let token = c.api_token("alice", PASSWORD).await;
    let doc = description(&c).await;
    let get = |path: &str| c.http.get(c.url(path)).bearer_auth(&token);

    // The checker bites: a missing required property and an undocumented one.
    let me_schema = serde_json::json!({"$ref": "#/components/schemas/Me"});
    assert!(!misfits(&doc, &me_schema, &serde_json::json!({"id": 1}), "$").is_empty());
    let extra =
        serde_json::json!({"id": 1, "username": "a", "role": "admin", "team": null, "x": 1});
    assert!(!misfits(&doc, &me_schema, &extra, "$").is_empty());
    let fine = serde_json::json!({"id": 1, "username": "a", "role": "admin", "team": null});
    assert_eq!(misfits(&doc, &me_schema, &fine, "$"), Vec::<String>::new());

    let me = conforms(&doc, ("get", "/api/v1/me"), get("/api/v1/me")).await;
    assert_eq!(me["username"], "alice");
    conforms(
        &doc,
        ("get", "/api/v1/challenges"),
        get("/api/v1/challenges"),
    )
    .await;
    let t = "/api/v1/challenges/{slug}";
    conforms(&doc, ("get", t), get("/api/v1/challenges/mnist-evasion")).await;
    conforms(&doc, ("get", t), get("/api/v1/challenges/fine-print")).await;
    conforms(&doc, ("get", t), get("/api/v1/challenges/no-such")).await;
    conforms(&doc, ("get", "/api/v1/event"), get("/api/v1/event")).await;
    conforms(
        &doc,
        ("get", "/api/v1/announcements"),
        get("/api/v1/announcements"),
    )
    .await;
    let t = "/api/v1/challenges/{slug}/writeups";
    conforms(
        &doc,
        ("get", t),
        get("/api/v1/challenges/mnist-evasion/writeups"),
    )
    .await;

    // An attack (the clean inputs themselves), scored by a worker.
    let eval_x =
        std::fs::read(workspace_root().join("challenges/mnist-evasion/public/eval_x.npy")).unwrap();
    let r = upload_to(&c, &token, "mnist-evasion", "attack", "adv.npy", eval_x).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().contains_key("location"));
    let created: Value = r.json().await.unwrap();
    let upload_schema = &doc["paths"]["/api/v1/challenges/{slug}/submissions"]["post"]["responses"]
        ["201"]["content"]["application/json"]["schema"];
    assert_eq!(
        misfits(&doc, upload_schema, &created, "$"),
        Vec::<String>::new()
    );
    let id = created["id"].as_i64().unwrap();
    assert_eq!(wait_final(&c, &token, id).await["status"], "scored");
    let detail = conforms(
        &doc,
        ("get", "/api/v1/submissions/{id}"),
        get(&format!("/api/v1/submissions/{id}")),
    )
    .await;
    assert!(
        detail["results"].as_array().is_some_and(|r| !r.is_empty()),
        "{detail}"
    );
    let t = "/api/v1/challenges/{slug}/leaderboard";
    let board = conforms(
        &doc,
        ("get", t),
        get("/api/v1/challenges/mnist-evasion/leaderboard"),
    )
    .await;
    assert_eq!(board["rows"].as_array().unwrap().len(), 1, "{board}");
    conforms(
        &doc,
        ("get", t),
        get("/api/v1/challenges/mnist-evasion/leaderboard?track=sideways"),
    )
    .await;
    conforms(
        &doc,
        ("get", "/api/v1/scoreboard"),
        get("/api/v1/scoreboard"),
    )
    .await;
    conforms(
        &doc,
        ("get", "/api/v1/scoreboard"),
        get("/api/v1/scoreboard?limit=0"),
    )
    .await;

    // A black-box query, as JSON and as .npy, with its budget header.
    let t = "/api/v1/challenges/{slug}/query";
    let x = riposte_eval::tensor::read_tensor(
        &std::fs::read(workspace_root().join("challenges/mnist-evasion/public/eval_x.npy"))
            .unwrap(),
        None,
        &riposte_eval::tensor::Limits::default(),
    )
    .unwrap();
    let ask = c
        .http
        .post(c.url("/api/v1/challenges/mnist-evasion/query"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"inputs": [x.example(0).unwrap()], "target": "mlp"}));
    let answer = conforms(&doc, ("post", t), ask).await;
    assert_eq!(answer["queries_used"], 1);
    let one =
        riposte_eval::tensor::Tensor::new(vec![1, 1, 28, 28], x.data[..784].to_vec()).unwrap();
    let ask = c
        .http
        .post(c.url("/api/v1/challenges/mnist-evasion/query?target=mlp"))
        .bearer_auth(&token)
        .header("content-type", "application/x-npy")
        .body(one.to_npy());
    conforms(&doc, ("post", t), ask).await;
    let wrong = c
        .http
        .post(c.url("/api/v1/challenges/mnist-evasion/query"))
        .bearer_auth(&token)
        .header("content-type", "text/plain")
        .body("1 2 3");
    conforms(&doc, ("post", t), wrong).await;

    // Organizers' views.
    let admin = app.client();
    let admin_token = admin.api_token("admin", &app.admin_password).await;
    let as_admin = |path: &str| admin.http.get(admin.url(path)).bearer_auth(&admin_token);
    conforms(
        &doc,
        ("get", "/api/v1/admin/queue"),
        as_admin("/api/v1/admin/queue"),
    )
    .await;
    conforms(
        &doc,
        ("get", "/api/v1/admin/submissions"),
        as_admin("/api/v1/admin/submissions"),
    )
    .await;
    conforms(
        &doc,
        ("get", "/api/v1/admin/audit"),
        as_admin("/api/v1/admin/audit"),
    )
    .await;
    conforms(
        &doc,
        ("get", "/api/v1/admin/audit"),
        get("/api/v1/admin/audit"),
    )
    .await;
    let t = "/api/v1/admin/export";
    conforms(
        &doc,
        ("get", t),
        as_admin("/api/v1/admin/export?what=scoreboard&format=json"),
    )
    .await;
    conforms(
        &doc,
        ("get", t),
        as_admin("/api/v1/admin/export?what=nothing"),
    )
    .await;
    app.finish().await;
}

#[actix_web::test]
async fn the_api_page_lists_the_operations_from_this_server() {
    let app = TestApp::spawn(Db::Sqlite, |s| s.workers = 0).await.unwrap();
    let c = app.client();
    let (status, html) = c.get_text("/api").await;
    assert_eq!(status, StatusCode::OK);
    for expected in [
        "/api/v1/challenges/{slug}/submissions",
        "multipart/form-data",
        "/api/v1/challenges/{slug}/query",
        "application/x-npy",
        "X-Queries-Remaining",
        "href=\"/api/v1/openapi.json\"",
        "id=\"schema-errorbody\"",
        "riposte_session",
    ] {
        assert!(html.contains(expected), "the page lacks {expected}");
    }
    let doc = description(&c).await;
    let operations: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|item| METHODS.iter().filter(|m| item.get(**m).is_some()).count())
        .sum();
    assert_eq!(html.matches("class=\"card api-op\"").count(), operations);
    // Nothing from another host: no script, stylesheet, image or frame from elsewhere.
    for external in [
        "src=\"http",
        "src=\"//",
        "<link rel=\"stylesheet\" href=\"http",
        "@import",
        "<iframe",
    ] {
        assert!(!html.contains(external), "the page loads {external}...");
    }
    // Every page links it.
    let (_, home) = c.get_text("/").await;
    assert!(home.contains("href=\"/api\""));
    app.finish().await;
}
