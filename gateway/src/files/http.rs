//! The file endpoints: `POST /api/files` (upload), `GET /api/files/{fileId}` (download with a
//! user token) and `GET /files/{fileId}?expires=&sig=` (the embedded store's signed URL).
//! Every download carries the headers that keep a stored file from running as a page.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::TryStreamExt;
use serde::{Deserialize, Serialize};

use super::FileRecord;
use crate::app::App;
use crate::auth::Claims;
use crate::error::{Error, Result};

/// The header carrying an upload's name.
pub const FILE_NAME_HEADER: &str = "x-file-name";
/// Longest file name kept, in bytes.
const MAX_NAME_BYTES: usize = 255;
/// Longest media type accepted, in bytes.
const MAX_MIME_BYTES: usize = 127;

/// The file routes of the public port.
pub fn routes() -> Router<Arc<App>> {
    Router::new()
        .route("/api/files", post(upload))
        .route("/api/files/{id}", get(download))
        .route("/files/{id}", get(signed))
}

/// `POST /api/files`' answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Uploaded {
    /// The id a SEND's `file.fileId` names.
    pub file_id: String,
    /// The name kept.
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its media type.
    pub mime: String,
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// A user's token, as the WebSocket takes it: `Authorization: Bearer` or `?token=`; refused
/// once the user was kicked (a device's logout does not reach here: no device is named).
async fn user(app: &App, headers: &HeaderMap, query: &TokenQuery) -> Result<Claims> {
    let token = crate::http::bearer(headers)
        .filter(|t| !t.is_empty())
        .or_else(|| query.token.as_deref().filter(|t| !t.is_empty()))
        .ok_or_else(|| Error::Unauthorized("missing token".into()))?;
    let claims = app.auth.verify(token).await?;
    crate::auth::revoke::check(&*app.revocations, &claims, "").await?;
    Ok(claims)
}

/// `POST /api/files`: the raw body, its `Content-Type`, its name in `X-File-Name`.
async fn upload(
    State(app): State<Arc<App>>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Uploaded>> {
    let claims = user(&app, &headers, &query).await?;
    let max = app.files.max_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(super::blobs::too_large(max));
    }
    let name = file_name(&headers)?;
    let mime = mime(&headers)?;
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let file = app.files.upload(&claims.sub, name, mime, stream).await?;
    Ok(Json(Uploaded {
        file_id: file.id,
        name: file.name,
        size: file.size,
        mime: file.mime,
    }))
}

/// `X-File-Name`, required: UTF-8, its last path segment, no control characters.
fn file_name(headers: &HeaderMap) -> Result<String> {
    let raw = headers
        .get(FILE_NAME_HEADER)
        .ok_or_else(|| Error::BadRequest("the X-File-Name header is required".into()))?;
    let name = std::str::from_utf8(raw.as_bytes())
        .map_err(|_| Error::BadRequest("X-File-Name must be UTF-8".into()))?;
    let name = name.rsplit(['/', '\\']).next().unwrap_or("").trim();
    if name.is_empty() || name.len() > MAX_NAME_BYTES || name.chars().any(char::is_control) {
        return Err(Error::BadRequest(format!(
            "X-File-Name must be 1-{MAX_NAME_BYTES} bytes without control characters or a trailing slash"
        )));
    }
    Ok(name.to_owned())
}

/// `Content-Type` as `type/subtype` (parameters kept), lower-cased; absent: octet-stream.
fn mime(headers: &HeaderMap) -> Result<String> {
    let Some(raw) = headers.get(header::CONTENT_TYPE) else {
        return Ok("application/octet-stream".into());
    };
    let bad = || Error::BadRequest("Content-Type must be a media type like image/png".into());
    let value = raw.to_str().map_err(|_| bad())?.trim();
    let essence = value.split(';').next().unwrap_or("").trim();
    let token = |s: &str| {
        !s.is_empty()
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&-^_.+".contains(&b))
    };
    match essence.split_once('/') {
        Some((t, s)) if token(t) && token(s) && value.len() <= MAX_MIME_BYTES => {
            Ok(value.to_ascii_lowercase())
        }
        _ => Err(bad()),
    }
}

/// `GET /api/files/{fileId}`: the uploader's or a participant's download; anyone else: 404.
async fn download(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(query): Query<TokenQuery>,
    headers: HeaderMap,
) -> Result<Response> {
    let claims = user(&app, &headers, &query).await?;
    let file = app.files.readable(&claims.sub, &id).await?;
    serve(&app, &file).await
}

#[derive(Deserialize)]
struct Signature {
    expires: Option<i64>,
    sig: Option<String>,
}

/// `GET /files/{fileId}?expires=&sig=`: a signed URL, no token; bad or expired: 404.
async fn signed(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    Query(q): Query<Signature>,
) -> Result<Response> {
    let (Some(expires), Some(sig)) = (q.expires, q.sig) else {
        return Err(Error::NotFound("no such file".into()));
    };
    let file = app.files.signed(&id, expires, &sig).await?;
    serve(&app, &file).await
}

/// The bytes of `file`, streamed, with its type and the hardening headers.
async fn serve(app: &App, file: &FileRecord) -> Result<Response> {
    let object = app.files.open(file).await?;
    let body = Body::from_stream(object.into_stream());
    let mut response = body.into_response();
    let h = response.headers_mut();
    let value = |s: &str| HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"));
    h.insert(header::CONTENT_TYPE, value(&file.mime));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    h.insert(header::CONTENT_DISPOSITION, value(&file.disposition()));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=3600"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn names_keep_their_last_segment_and_refuse_nothing_or_control_chars() {
        let name = |v: &str| file_name(&headers(&[(FILE_NAME_HEADER, v)]));
        assert_eq!(name("../../etc/passwd").unwrap(), "passwd");
        assert_eq!(name("a b.png").unwrap(), "a b.png");
        assert!(name("dir/").is_err());
        assert!(name("a\tb").is_err());
        assert!(file_name(&HeaderMap::new()).is_err());
    }

    #[test]
    fn media_types_are_checked_and_lower_cased() {
        let m = |v: &str| mime(&headers(&[("content-type", v)]));
        assert_eq!(m("Image/PNG").unwrap(), "image/png");
        assert_eq!(
            m("text/plain; charset=utf-8").unwrap(),
            "text/plain; charset=utf-8"
        );
        assert!(m("png").is_err() && m("a/").is_err() && m("a b/c").is_err());
        assert_eq!(mime(&HeaderMap::new()).unwrap(), "application/octet-stream");
    }
}
