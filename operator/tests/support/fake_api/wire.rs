//! The fake API server's HTTP plumbing: query strings, label selectors, JSON bodies and
//! responses, and API errors sent as a `metav1.Status`.

use std::collections::HashMap;
use std::convert::Infallible;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};

use super::kinds::Key;

/// A response body: one JSON document, or a watch's stream of JSON lines.
pub(super) type Body = UnsyncBoxBody<Bytes, Infallible>;

/// An API error, sent as a `metav1.Status`.
#[derive(Debug)]
pub(super) struct ApiError {
    code: StatusCode,
    reason: &'static str,
    message: String,
}

impl ApiError {
    pub(super) fn new(code: StatusCode, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
        }
    }

    pub(super) fn not_found(key: &Key) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{} {:?} not found", key.kind, key.name),
        )
    }
}

pub(super) type ApiResult<T> = Result<T, ApiError>;

/// A label selector (`k=v`, `k==v`, `k!=v` and bare `k`, for "exists", comma-separated) and a
/// field selector (`metadata.name=demo,involvedObject.kind=ChatCluster`: `=`, `==` and `!=` on
/// any field, a missing one reading as empty, as kubectl's `describe` and `delete --wait` use).
#[derive(Clone, Debug, Default)]
pub(super) struct Selector {
    labels: Vec<(String, Option<String>, bool)>,
    fields: Vec<(String, String, bool)>,
}

impl Selector {
    /// The label selector `text`.
    pub(super) fn parse(text: &str) -> Self {
        let labels = text
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|term| {
                if let Some((k, v)) = term.split_once("!=") {
                    (k.trim().to_owned(), Some(v.trim().to_owned()), false)
                } else if let Some((k, v)) = term.split_once('=') {
                    (
                        k.trim().to_owned(),
                        Some(v.trim_start_matches('=').trim().to_owned()),
                        true,
                    )
                } else {
                    (term.trim().to_owned(), None, true)
                }
            })
            .collect();
        Self {
            labels,
            fields: Vec::new(),
        }
    }

    /// This selector and the field selector `text` (`\,`, `\=` and `\\` escaped as kubectl does).
    pub(super) fn with_fields(mut self, text: &str) -> Self {
        self.fields = split_unescaped(text, ',')
            .into_iter()
            .filter(|term| !term.is_empty())
            .filter_map(|term| {
                let (path, value, equal) = if let Some((k, v)) = term.split_once("!=") {
                    (k, v, false)
                } else {
                    let (k, v) = term.split_once('=')?;
                    (k, v.trim_start_matches('='), true)
                };
                Some((path.trim().to_owned(), unescape(value.trim()), equal))
            })
            .collect();
        self
    }

    pub(super) fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let labels_match = self.labels.iter().all(|(key, value, equal)| {
            let actual = labels.get(key).and_then(Value::as_str);
            match value {
                None => actual.is_some(),
                Some(v) => (actual == Some(v.as_str())) == *equal,
            }
        });
        labels_match
            && self.fields.iter().all(|(path, value, equal)| {
                let actual = path
                    .split('.')
                    .try_fold(object, |v, field| v.get(field))
                    .map_or_else(String::new, |v| match v {
                        Value::String(s) => s.clone(),
                        Value::Null => String::new(),
                        other => other.to_string(),
                    });
                (actual == *value) == *equal
            })
    }
}

/// `text` split at the `separator`s no backslash escapes.
fn split_unescaped(text: &str, separator: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in text.chars() {
        let current = parts.last_mut().expect("one part at least");
        if escaped {
            current.push('\\');
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == separator {
            parts.push(String::new());
        } else {
            current.push(c);
        }
    }
    parts
}

/// A field selector value with its backslash escapes removed.
fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut escaped = false;
    for c in text.chars() {
        if !escaped && c == '\\' {
            escaped = true;
        } else {
            out.push(c);
            escaped = false;
        }
    }
    out
}

pub(super) fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter(|s| !s.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let hex = |b: u8| char::from(b).to_digit(16);
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| Some(hex(bytes[i + 1])? * 16 + hex(bytes[i + 2])?))
            .flatten();
        match (escaped, bytes[i]) {
            (Some(byte), _) => {
                out.push(u8::try_from(byte).expect("two hex digits"));
                i += 3;
            }
            (None, b'+') => {
                out.push(b' ');
                i += 1;
            }
            (None, byte) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn parse_body(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|err| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            format!("body is not JSON: {err}"),
        )
    })
}

pub(super) fn json_response(code: StatusCode, value: &Value) -> Response<Body> {
    let body = serde_json::to_vec(value).expect("JSON values serialize");
    Response::builder()
        .status(code)
        .header(http::header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)).boxed_unsync())
        .expect("valid response")
}

pub(super) fn error_response(err: &ApiError) -> Response<Body> {
    json_response(
        err.code,
        &json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": err.message,
            "reason": err.reason,
            "code": err.code.as_u16(),
        }),
    )
}
