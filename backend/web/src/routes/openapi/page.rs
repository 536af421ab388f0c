//! The `/api` page's view of the OpenAPI document: operations grouped by tag
//! (method, path, summary, parameters, request and response content) and the
//! schemas they name. Read from the document's JSON form, so the page shows
//! exactly what `/api/v1/openapi.json` says.

use anyhow::Context;
use serde_json::Value;

use crate::view;

pub struct ApiView {
    pub title: String,
    pub version: String,
    /// Sanitized HTML.
    pub description: String,
    pub security: Vec<SchemeView>,
    pub tags: Vec<TagView>,
    pub schemas: Vec<SchemaView>,
    pub operations: usize,
}

pub struct SchemeView {
    pub name: String,
    /// `header Authorization: Bearer`, `cookie riposte_session`.
    pub how: String,
    /// Sanitized HTML.
    pub description: String,
}

pub struct TagView {
    pub name: String,
    pub anchor: String,
    pub description: String,
    pub operations: Vec<OperationView>,
}

pub struct OperationView {
    /// Lower case, as in the document (`get`, `post`).
    pub method: String,
    pub path: String,
    pub anchor: String,
    pub summary: String,
    /// Sanitized HTML, possibly empty.
    pub description: String,
    /// No credentials needed.
    pub public: bool,
    pub parameters: Vec<ParameterView>,
    pub body: Option<BodyView>,
    pub responses: Vec<ResponseView>,
}

pub struct ParameterView {
    pub name: String,
    /// `path`, `query`, `header`, `cookie`.
    pub location: String,
    pub required: bool,
    pub kind: TypeLabel,
    /// Inline HTML, sanitized.
    pub description: String,
}

pub struct BodyView {
    pub required: bool,
    /// Inline HTML, sanitized.
    pub description: String,
    pub contents: Vec<ContentView>,
}

pub struct ContentView {
    pub media_type: String,
    pub kind: Option<TypeLabel>,
}

pub struct ResponseView {
    pub status: String,
    /// Inline HTML, sanitized.
    pub description: String,
    pub contents: Vec<ContentView>,
    /// Name and what it holds (inline HTML, sanitized).
    pub headers: Vec<(String, String)>,
}

pub struct SchemaView {
    pub name: String,
    pub anchor: String,
    pub description: String,
    /// `object`, `one of`, or the type of a non-object schema.
    pub kind: TypeLabel,
    pub properties: Vec<PropertyView>,
}

pub struct PropertyView {
    pub name: String,
    pub required: bool,
    pub kind: TypeLabel,
    /// Inline HTML, sanitized.
    pub description: String,
}

/// A schema's type in words, with links to the named schemas it uses.
#[derive(Default)]
pub struct TypeLabel {
    pub pieces: Vec<Piece>,
}

pub struct Piece {
    pub text: String,
    /// Anchor of a named schema on the page.
    pub link: Option<String>,
}

impl TypeLabel {
    /// The label as HTML: schema names link to their description on the page.
    pub fn html(&self) -> String {
        self.pieces
            .iter()
            .map(|p| match &p.link {
                Some(link) => format!(
                    "<a href=\"#{}\"><code>{}</code></a>",
                    crate::svg::escape(link),
                    crate::svg::escape(&p.text)
                ),
                None => crate::svg::escape(&p.text),
            })
            .collect()
    }

    fn text(text: impl Into<String>) -> Self {
        Self {
            pieces: vec![Piece {
                text: text.into(),
                link: None,
            }],
        }
    }

    fn push_text(&mut self, text: &str) {
        self.pieces.push(Piece {
            text: text.to_owned(),
            link: None,
        });
    }

    fn append(&mut self, other: TypeLabel) {
        self.pieces.extend(other.pieces);
    }

    /// Labels joined by `sep`.
    fn join(labels: Vec<TypeLabel>, sep: &str) -> Self {
        let mut out = TypeLabel::default();
        for (i, label) in labels.into_iter().enumerate() {
            if i > 0 {
                out.push_text(sep);
            }
            out.append(label);
        }
        out
    }
}

const METHODS: [&str; 9] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace", "query",
];

pub fn schema_anchor(name: &str) -> String {
    format!("schema-{}", slug(name))
}

fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// A short description as inline HTML (sanitized): one paragraph's markdown
/// without its `<p>`.
fn inline(markdown: &str) -> String {
    let html = view::markdown(markdown);
    let html = html.trim();
    match html
        .strip_prefix("<p>")
        .and_then(|h| h.strip_suffix("</p>"))
    {
        Some(inner) if !inner.contains("<p>") => inner.to_owned(),
        _ => html.to_owned(),
    }
}

fn text(value: &Value, key: &str) -> String {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A schema (or a reference to one) in a few words.
fn label(schema: &Value) -> TypeLabel {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        let name = reference.rsplit('/').next().unwrap_or(reference);
        return TypeLabel {
            pieces: vec![Piece {
                text: name.to_owned(),
                link: Some(schema_anchor(name)),
            }],
        };
    }
    for (key, sep) in [("oneOf", " or "), ("anyOf", " or "), ("allOf", " and ")] {
        if let Some(list) = schema.get(key).and_then(Value::as_array) {
            return TypeLabel::join(list.iter().map(label).collect(), sep);
        }
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let words: Vec<String> = values.iter().map(Value::to_string).collect();
        return TypeLabel::text(format!("one of {}", words.join(", ")));
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return TypeLabel::text("any");
    }
    let labels = types
        .into_iter()
        .map(|t| match t {
            "array" => {
                let mut out = TypeLabel::text("array of ");
                out.append(
                    schema
                        .get("items")
                        .map_or_else(|| TypeLabel::text("any"), label),
                );
                out
            }
            "object" => match schema.get("additionalProperties") {
                Some(values @ Value::Object(_)) => {
                    let mut out = TypeLabel::text("map of ");
                    out.append(label(values));
                    out
                }
                _ => TypeLabel::text("object"),
            },
            other => match schema.get("format").and_then(Value::as_str) {
                Some(format) => TypeLabel::text(format!("{other} ({format})")),
                None => TypeLabel::text(other),
            },
        })
        .collect();
    TypeLabel::join(labels, " or ")
}

fn contents(content: Option<&Value>) -> Vec<ContentView> {
    content
        .and_then(Value::as_object)
        .map(|media| {
            media
                .iter()
                .map(|(media_type, body)| ContentView {
                    media_type: media_type.clone(),
                    kind: body.get("schema").map(label),
                })
                .collect()
        })
        .unwrap_or_default()
}

impl ApiView {
    pub fn new(doc: &utoipa::openapi::OpenApi) -> anyhow::Result<Self> {
        let doc = serde_json::to_value(doc).context("the OpenAPI document as JSON")?;
        let info = doc.get("info").cloned().unwrap_or_default();
        let mut tags: Vec<TagView> = doc
            .get("tags")
            .and_then(Value::as_array)
            .map(|tags| {
                tags.iter()
                    .map(|t| TagView {
                        name: text(t, "name"),
                        anchor: format!("tag-{}", slug(&text(t, "name"))),
                        description: view::markdown(&text(t, "description")),
                        operations: vec![],
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut operations = 0;
        let paths = doc.get("paths").and_then(Value::as_object);
        for (path, item) in paths.into_iter().flatten() {
            for method in METHODS {
                let Some(op) = item.get(method) else {
                    continue;
                };
                operations += 1;
                let view = operation(method, path, op);
                let tag = op
                    .get("tags")
                    .and_then(|t| t.get(0))
                    .and_then(Value::as_str)
                    .unwrap_or("Other");
                match tags.iter_mut().find(|t| t.name == tag) {
                    Some(t) => t.operations.push(view),
                    None => tags.push(TagView {
                        name: tag.to_owned(),
                        anchor: format!("tag-{}", slug(tag)),
                        description: String::new(),
                        operations: vec![view],
                    }),
                }
            }
        }
        tags.retain(|t| !t.operations.is_empty());
        let components = doc.get("components").cloned().unwrap_or_default();
        let security = components
            .get("securitySchemes")
            .and_then(Value::as_object)
            .map(|schemes| {
                schemes
                    .iter()
                    .map(|(name, s)| SchemeView {
                        name: name.clone(),
                        how: match text(s, "type").as_str() {
                            "http" => format!(
                                "header Authorization: {} <token>",
                                capitalized(&text(s, "scheme"))
                            ),
                            "apiKey" => format!("{} {}", text(s, "in"), text(s, "name")),
                            other => other.to_owned(),
                        },
                        description: view::markdown(&text(s, "description")),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let schemas = components
            .get("schemas")
            .and_then(Value::as_object)
            .map(|schemas| {
                schemas
                    .iter()
                    .map(|(name, s)| schema_view(name, s))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            title: text(&info, "title"),
            version: text(&info, "version"),
            description: view::markdown(&text(&info, "description")),
            security,
            tags,
            schemas,
            operations,
        })
    }
}

fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

fn operation(method: &str, path: &str, op: &Value) -> OperationView {
    let parameters = op
        .get("parameters")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|p| ParameterView {
                    name: text(p, "name"),
                    location: text(p, "in"),
                    required: p.get("required").and_then(Value::as_bool).unwrap_or(false),
                    kind: p.get("schema").map(label).unwrap_or_default(),
                    description: inline(&text(p, "description")),
                })
                .collect()
        })
        .unwrap_or_default();
    let body = op.get("requestBody").map(|b| BodyView {
        required: b.get("required").and_then(Value::as_bool).unwrap_or(false),
        description: inline(&text(b, "description")),
        contents: contents(b.get("content")),
    });
    let responses = op
        .get("responses")
        .and_then(Value::as_object)
        .map(|responses| {
            responses
                .iter()
                .map(|(status, r)| ResponseView {
                    status: status.clone(),
                    description: inline(&text(r, "description")),
                    contents: contents(r.get("content")),
                    headers: r
                        .get("headers")
                        .and_then(Value::as_object)
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|(name, h)| (name.clone(), inline(&text(h, "description"))))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
                .collect()
        })
        .unwrap_or_default();
    // `security: [{}]` lets a request in without credentials.
    let public = op
        .get("security")
        .and_then(Value::as_array)
        .is_some_and(|list| {
            list.iter()
                .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
        });
    OperationView {
        method: method.to_owned(),
        path: path.to_owned(),
        anchor: format!("op-{}", slug(&text(op, "operationId"))),
        summary: text(op, "summary"),
        description: view::markdown(&text(op, "description")),
        public,
        parameters,
        body,
        responses,
    }
}

/// The properties an object schema names itself.
fn properties(schema: &Value) -> Vec<PropertyView> {
    let required: Vec<&str> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|props| {
            props
                .iter()
                .map(|(prop, s)| PropertyView {
                    name: prop.clone(),
                    required: required.contains(&prop.as_str()),
                    kind: label(s),
                    description: inline(&text(s, "description")),
                })
                .collect()
        })
        .unwrap_or_default()
}

fn schema_view(name: &str, schema: &Value) -> SchemaView {
    let (kind, properties) = match schema.get("allOf").and_then(Value::as_array) {
        // `#[serde(flatten)]`: the named schemas it extends, then its own properties.
        Some(parts) => {
            let named: Vec<TypeLabel> = parts
                .iter()
                .filter(|p| p.get("$ref").is_some())
                .map(label)
                .collect();
            let mut kind = TypeLabel::join(named, " and ");
            kind.push_text(" with");
            let own = parts.iter().flat_map(properties).collect();
            (kind, own)
        }
        None => {
            let own = properties(schema);
            let kind = if own.is_empty() {
                label(schema)
            } else {
                TypeLabel::text("object")
            };
            (kind, own)
        }
    };
    SchemaView {
        name: name.to_owned(),
        anchor: schema_anchor(name),
        description: view::markdown(&text(schema, "description")),
        kind,
        properties,
    }
}
