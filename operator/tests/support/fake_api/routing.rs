//! Requests to the fake API server's verbs: the path parsed into a kind, namespace, name and
//! subresource, the method into get, list, watch, create, replace, patch or delete, and every
//! write request counted and recorded in the [`Journal`](super::Journal).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;

use super::apply::parse_yaml_or_json;
use super::kinds::{Key, Kind};
use super::watch::Style;
use super::wire::{
    error_response, json_response, parse_body, parse_query, ApiError, ApiResult, Body, Selector,
};
use super::Inner;
use super::{discovery, table, validation};

/// A parsed request path.
#[derive(Debug)]
struct Route {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
}

impl Route {
    /// `/api/v1/...` or `/apis/{group}/{version}/...`, then `namespaces/{ns}/` (namespaced) and
    /// `{plural}[/{name}[/{subresource}]]`.
    fn parse(path: &str) -> Option<Self> {
        let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
        let (api_version, rest) = match segments.as_slice() {
            ["api", "v1", rest @ ..] => ("v1".to_owned(), rest),
            ["apis", group, version, rest @ ..] => (format!("{group}/{version}"), rest),
            _ => return None,
        };
        let (namespace, rest) = match rest {
            ["namespaces", ns, plural, rest @ ..]
                if Kind::by_plural(&api_version, plural).is_some_and(|k| k.namespaced) =>
            {
                (Some((*ns).to_owned()), [&[*plural][..], rest].concat())
            }
            rest => (None, rest.to_vec()),
        };
        let kind = Kind::by_plural(&api_version, rest.first()?)?;
        Some(Self {
            kind,
            namespace,
            name: rest.get(1).map(|s| (*s).to_owned()),
            subresource: rest.get(2).map(|s| (*s).to_owned()),
        })
    }

    /// The key of the object named `name` in the route's namespace.
    fn key(&self, name: &str) -> Key {
        Key::new(self.kind, self.namespace.as_deref().unwrap_or(""), name)
    }
}

enum Reply {
    Object(StatusCode, Value),
    Watch(Body),
}

impl Inner {
    /// Serves one request: from `kube::Client` in the tests, or from HTTP (kubectl, say) through
    /// [`serve`](super::serve).
    pub(super) async fn handle<B>(&self, request: Request<B>) -> Response<Body>
    where
        B: http_body::Body,
        B::Error: std::fmt::Display,
    {
        let (parts, body) = request.into_parts();
        let body = match body.collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(err) => {
                return error_response(&ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "BadRequest",
                    format!("reading the body: {err}"),
                ))
            }
        };
        let query = parse_query(parts.uri.query().unwrap_or(""));
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let accept = parts
            .headers
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let path = parts.uri.path();
        if parts.method == Method::GET {
            if let Some(document) = discovery::document(path) {
                return json_response(StatusCode::OK, &document);
            }
        }
        if content_type.starts_with("application/vnd.kubernetes.protobuf") {
            return error_response(&ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "UnsupportedMediaType",
                "this fake API server speaks JSON only (kubectl apply sends JSON; typed kubectl \
                 create of built-in kinds sends protobuf)",
            ));
        }
        let Some(route) = Route::parse(path) else {
            return error_response(&ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("no route for {path}"),
            ));
        };
        // An apiserver without the Prometheus Operator's CRD answers 404 for its paths.
        if route.kind.api_version.starts_with("monitoring.coreos.com/")
            && !self.settings.monitoring_crd
        {
            return error_response(&ApiError::new(
                StatusCode::NOT_FOUND,
                "NotFound",
                "the server could not find the requested resource",
            ));
        }
        let as_table = table::wanted(&accept);
        match self.serve(
            &parts.method,
            &route,
            &query,
            &content_type,
            &body,
            as_table,
        ) {
            Ok(Reply::Object(code, value)) if as_table => {
                json_response(code, &table::render(route.kind, &value, &query))
            }
            Ok(Reply::Object(code, value)) => json_response(code, &value),
            Ok(Reply::Watch(stream)) => Response::builder()
                .status(StatusCode::OK)
                .header(http::header::CONTENT_TYPE, "application/json")
                .body(stream)
                .expect("valid response"),
            Err(err) => error_response(&err),
        }
    }

    fn serve(
        &self,
        method: &Method,
        route: &Route,
        query: &HashMap<String, String>,
        content_type: &str,
        body: &Bytes,
        as_table: bool,
    ) -> ApiResult<Reply> {
        if *method != Method::GET {
            self.record_write(method, route, body);
        }
        let whole_object = *method == Method::POST
            || *method == Method::PUT
            || content_type.starts_with("application/apply-patch");
        if whole_object && route.subresource.is_none() {
            if let Ok(object) = parse_yaml_or_json(body) {
                validation::check(route.kind, query, &object)?;
            }
        }
        match (method.clone(), &route.name) {
            (method, Some(name)) if route.subresource.as_deref() == Some("scale") => {
                let scale =
                    self.serve_scale(&method, &route.key(name), query, content_type, body)?;
                Ok(Reply::Object(StatusCode::OK, scale))
            }
            (Method::GET, Some(name)) => {
                let key = route.key(name);
                let state = self.lock();
                let object = state
                    .objects
                    .get(&key)
                    .ok_or_else(|| ApiError::not_found(&key))?;
                Ok(Reply::Object(StatusCode::OK, object.clone()))
            }
            (Method::GET, None) => Ok(self.list_or_watch(route, query, as_table)),
            (Method::POST, None) => self.create_from_body(route, body),
            (Method::PUT, Some(name)) => self.replace(&route.key(name), route, query, body),
            (Method::PATCH, Some(name)) => {
                let mut state = self.lock();
                let patched = self.patch(
                    &mut state,
                    &route.key(name),
                    route.subresource.as_deref(),
                    query,
                    content_type,
                    body,
                )?;
                Ok(Reply::Object(StatusCode::OK, patched))
            }
            (Method::DELETE, Some(name)) => {
                let mut state = self.lock();
                let deleted = self.delete(&mut state, &route.key(name))?;
                Ok(Reply::Object(StatusCode::OK, deleted))
            }
            (method, _) => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "MethodNotAllowed",
                format!("{method} is not supported here"),
            )),
        }
    }

    /// Counts a write request and records it in the journal: `PATCH StatefulSet/demo-gateway
    /// replicas=3`, `DELETE Pod/demo-gateway-2`, `PATCH ChatCluster/demo/status`.
    fn record_write(&self, method: &Method, route: &Route, body: &Bytes) {
        let kind = route.kind;
        let mut state = self.lock();
        state.writes += 1;
        let mut entry = format!(
            "{method} {}/{}",
            kind.kind,
            route.name.as_deref().unwrap_or("")
        );
        if let Some(sub) = &route.subresource {
            entry.push_str(&format!("/{sub}"));
        }
        if kind.kind == "StatefulSet" {
            if let Some(replicas) = serde_json::from_slice::<Value>(body)
                .ok()
                .and_then(|v| v["spec"]["replicas"].as_i64())
            {
                entry.push_str(&format!(" replicas={replicas}"));
            }
        }
        self.journal.record(entry);
    }

    /// A list (`labelSelector`) or, with `watch=1`, a watch from `resourceVersion` that ends after
    /// `timeoutSeconds` (300 when not given); its events' objects as Tables when `as_table`.
    fn list_or_watch(
        &self,
        route: &Route,
        query: &HashMap<String, String>,
        as_table: bool,
    ) -> Reply {
        let selector = Selector::parse(query.get("labelSelector").map_or("", String::as_str))
            .with_fields(query.get("fieldSelector").map_or("", String::as_str));
        let watch = matches!(query.get("watch").map(String::as_str), Some("1" | "true"));
        if !watch {
            let namespace = route.namespace.as_deref();
            let list = if route.kind.api_version == "v1" && route.kind.kind == "Event" {
                self.list_core_events(route.kind, namespace, &selector)
            } else {
                self.list(route.kind, namespace, &selector)
            };
            return Reply::Object(StatusCode::OK, list);
        }
        let initial_events = query.get("sendInitialEvents").is_some_and(|v| v == "true");
        let since = query
            .get("resourceVersion")
            .and_then(|v| v.parse::<u64>().ok())
            .filter(|&rv| rv > 0 && !initial_events);
        let timeout = query
            .get("timeoutSeconds")
            .and_then(|v| v.parse::<u64>().ok())
            .map_or(Duration::from_secs(300), Duration::from_secs);
        Reply::Watch(self.watch(
            route.kind,
            route.namespace.clone(),
            selector,
            since,
            Style {
                initial_events_end: initial_events,
                as_table,
            },
            timeout,
        ))
    }

    /// POST: creates the object in the body, named by its `metadata.name`.
    fn create_from_body(&self, route: &Route, body: &Bytes) -> ApiResult<Reply> {
        let object: Value = parse_body(body)?;
        let name = object["metadata"]["name"]
            .as_str()
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid",
                    "metadata.name is required",
                )
            })?
            .to_owned();
        let mut state = self.lock();
        let created = self.create(&mut state, &route.key(&name), object, true)?;
        Ok(Reply::Object(StatusCode::CREATED, created))
    }

    /// PUT: replaces the object (or its status); 409 when the body names a resourceVersion
    /// other than the stored one.
    fn replace(
        &self,
        key: &Key,
        route: &Route,
        query: &HashMap<String, String>,
        body: &Bytes,
    ) -> ApiResult<Reply> {
        let object: Value = parse_body(body)?;
        let mut state = self.lock();
        let old = state
            .objects
            .get(key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(key))?;
        let expected = object["metadata"]["resourceVersion"].as_str();
        if expected.is_some_and(|rv| Some(rv) != old["metadata"]["resourceVersion"].as_str()) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Conflict",
                "the object has been modified",
            ));
        }
        let manager = query.get("fieldManager").cloned();
        let updated = self.update(
            &mut state,
            key,
            old,
            object,
            route.subresource.as_deref(),
            manager,
        )?;
        Ok(Reply::Object(StatusCode::OK, updated))
    }
}
