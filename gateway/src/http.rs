//! HTTP: the WebSocket upgrade (authenticated before upgrading), the push/kick API, the backend
//! API ([`crate::api`]) and the browser page; the admin port (health, readiness, metrics,
//! status, drain) is `admin_port.rs`.

use std::sync::Arc;

use axum::extract::ws::{rejection::WebSocketUpgradeRejection, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures_util::FutureExt;
use serde::Deserialize;
use serde_json::Value;

use chat_protocol::api::{DevToken, KickedUser, Pushed, Wrapped};
use chat_protocol::limits::MAX_FRAME_BYTES;
use chat_protocol::{DeviceId, KickReason, UserId};

use crate::app::App;
use crate::auth::Claims;
use crate::config::DuplicateLogin;
use crate::error::{Error, Result};
use crate::handlers::Handlers;
use crate::hub::{next_epoch, Conn, Outbound};
use crate::limits::Peer;
use crate::model::{new_id, now_ms, HttpPush, SYSTEM_USER};
use crate::presence::{PresenceEvent, Targets};
use crate::session::core::Connection;
use crate::session::{self, Identity};

/// Read buffer per connection. tungstenite's default (128 KiB) would cost ~1.3 GB per 10k idle
/// connections; frames larger than this are still read whole, the buffer grows for them.
const WS_READ_BUFFER: usize = 1024;
/// Hard cap on what tungstenite reads before erroring. Frames between the protocol's 64 KiB and
/// this are read whole so the server can close them cleanly with 1009 instead of resetting.
const WS_MAX_MESSAGE: usize = 1024 * 1024;
mod admin_port;
mod handshake;
mod listen;

pub use admin_port::admin_router;
pub(crate) use handshake::bearer;
pub use listen::serve_public;

const PAGE: &str = include_str!("../static/index.html");
/// The browser build of the TypeScript SDK (`clients/typescript`, `npm run build`), which the
/// page runs on; committed so that building the gateway needs nothing but Rust.
const SDK_BUNDLE: &str = include_str!("../static/chatcluster-client.js");

/// The public port: the browser page, WebSocket upgrades (at `/ws`, and at the seeds' path
/// `/websocket`, the same endpoint with the same token rules), the service push and kick API,
/// the file endpoints, and `/dev/login` (which answers only with `--dev-login`).
pub fn public_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/chatcluster-client.js", get(sdk_bundle))
        .route("/ws", get(upgrade))
        .route("/websocket", get(upgrade))
        .route("/message/send", post(message_send))
        .route("/api/users/{id}/kick", post(kick_user))
        .route(
            "/api/users/{id}",
            axum::routing::delete(crate::lifecycle::erase_user),
        )
        .route("/dev/login", post(dev_login))
        .merge(crate::files::http::routes())
        .merge(crate::api::router())
        .with_state(app)
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn sdk_bundle() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SDK_BUNDLE,
    )
}

#[derive(Deserialize)]
struct WsQuery {
    token: Option<String>,
    device: Option<String>,
}

/// `GET /ws?token=…&device=…`: check the origin and the token (header, subprotocol or query;
/// `handshake.rs`), then upgrade. Origin not allowed: 403; no valid token: 401; no upgrade.
async fn upgrade(
    State(app): State<Arc<App>>,
    Peer(peer): Peer,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response> {
    // First: a flood from one address is refused before any other work.
    app.limits.check_address(peer, &headers)?;
    handshake::check_origin(&app, &headers)?;
    let token = handshake::token(&headers, q.token.as_deref())?;
    let device = match q.device {
        Some(d) => DeviceId::parse(d).map_err(|e| Error::BadRequest(format!("device {e}")))?,
        None => DeviceId::parse(format!("d-{}", &new_id()[..12])).expect("a valid device id"),
    };
    let claims = handshake::authenticate(&app, token, device.as_str()).await?;
    if claims.sub == SYSTEM_USER {
        return Err(Error::Forbidden(format!(
            "\"{SYSTEM_USER}\" is the backend API's sender; no client may connect as it"
        )));
    }
    if app.drain.is_draining() {
        return Err(Error::Unavailable(
            "server is draining; connect again".into(),
        ));
    }
    let slot = app.limits.connection_slot()?;
    if app.config.duplicate_login == DuplicateLogin::Reject {
        let online = app.routes.lookup(std::slice::from_ref(&claims.sub)).await?;
        if online.iter().any(|r| r.device == device.as_str()) {
            return Err(Error::Conflict("this device is already connected".into()));
        }
    }
    let ws = ws.map_err(|e| Error::BadRequest(format!("expected a WebSocket upgrade: {e}")))?;
    let app2 = app.clone();
    let response = ws
        .protocols([handshake::SUBPROTOCOL])
        .read_buffer_size(WS_READ_BUFFER)
        .max_message_size(WS_MAX_MESSAGE)
        .max_frame_size(WS_MAX_MESSAGE)
        .on_failed_upgrade(|e| tracing::debug!(error = %e, "upgrade failed"))
        .on_upgrade(move |socket| {
            // The slot is held until the connection ends (or given back if the upgrade fails).
            let connection = accept(app2.clone(), socket, claims, device).map(move |()| drop(slot));
            app2.tracker.track_future(connection)
        });
    Ok(response)
}

/// Registers the new connection (replacing an older one of the same device anywhere), runs it,
/// and unregisters it when it ends.
///
/// Not an `async fn`, whose state would hold its arguments twice (as arguments and as the
/// locals they move into) for as long as the connection lives; the claims are read here and
/// not kept.
fn accept(
    app: Arc<App>,
    socket: axum::extract::ws::WebSocket,
    claims: Claims,
    device: DeviceId,
) -> impl std::future::Future<Output = ()> + Send {
    let epoch = next_epoch();
    let who = Arc::new(Identity {
        user: UserId::parse(claims.sub.as_str()).expect("auth checked the subject"),
        name: claims.display_name().to_owned(),
        device,
        epoch,
        session_id: format!("{}_{}_{:x}", app.pod, claims.sub, epoch),
        token_expires_ms: claims.expires_at_ms(),
    });
    run_connection(app, socket, who, claims.issued_at_ms())
}

/// The connection from registration to removal: route, session, unregistering.
#[allow(
    clippy::manual_async_fn,
    reason = "an async fn's state keeps its arguments twice, for the connection's whole life"
)]
fn run_connection(
    app: Arc<App>,
    socket: axum::extract::ws::WebSocket,
    who: Arc<Identity>,
    issued_at_ms: Option<i64>,
) -> impl std::future::Future<Output = ()> + Send {
    async move {
        let epoch = who.epoch;
        let (user, device) = (who.user.as_str(), who.device.as_str());
        let (conn, inbox, resync) = Conn::new(epoch, who.session_id.clone());
        if let Some(old) = app.hub.insert(user, device, conn) {
            old.send(Outbound::Kick(KickReason::Replaced));
        }
        match app.routes.register(&who.route(&app.pod)).await {
            Ok(registered) => {
                if registered.first {
                    let to = Targets::Pods(registered.watchers);
                    app.presence
                        .announce(to, vec![PresenceEvent::online(user, now_ms())]);
                }
                if let Some(old) = registered.replaced.filter(|old| old.pod != app.pod) {
                    if let Err(e) = app.router.kick(vec![old], KickReason::Replaced).await {
                        tracing::warn!(error = %e, "could not kick the replaced connection");
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "route registration failed; registered again at the next good heartbeat");
                app.router.reannounce_later();
            }
        }
        let (app2, who2) = (app.clone(), who.clone());
        tokio::spawn(async move {
            if let Err(e) = app2.store.upsert_user(who2.user.as_str(), &who2.name).await {
                tracing::warn!(error = %e, "recording the user's name failed");
            }
            recheck_revocation(&app2, &who2, issued_at_ms).await;
        });
        let mut core = Connection::new(
            app.session.clone(),
            who.clone(),
            tokio::time::Instant::now(),
            now_ms(),
        );
        if let Some(bucket) = app.limits.user_sends(user) {
            core.share_user_sends(bucket);
        }
        let handlers = Arc::new(Handlers::new(app.clone()));
        session::run(socket, core, handlers, inbox, resync).await;
        app.hub.remove(user, device, epoch);
        app.presence.unwatch(user, device, epoch).await;
        match app.routes.unregister(&who.route(&app.pod)).await {
            Ok(removed) => {
                if let Some(at) = removed.last_seen {
                    let to = Targets::Pods(removed.watchers);
                    app.presence
                        .announce(to, vec![PresenceEvent::offline(user, at)]);
                }
            }
            Err(e) => tracing::warn!(error = %e, "route removal failed; it expires by TTL"),
        }
    }
}

/// A kick that committed after the upgrade's check but looked the routes up before this
/// connection registered would miss it: checked once more now that the route is there, and
/// kicked if so (the kick's own pass catches every later case).
async fn recheck_revocation(app: &App, who: &Identity, issued_at_ms: Option<i64>) {
    let (user, device) = (who.user.as_str(), who.device.as_str());
    let check =
        crate::auth::revoke::check_issued(&*app.revocations, user, device, issued_at_ms).await;
    match check {
        Ok(()) => {}
        Err(e) if e.status() == 401 => {
            let route = who.route(&app.pod);
            if let Err(e) = app.router.kick(vec![route], KickReason::Logout).await {
                tracing::warn!(error = %e, "could not kick a connection whose token was revoked");
            }
        }
        Err(e) => tracing::warn!(error = %e, "revocation re-check failed"),
    }
}

/// The service token of the HTTP API.
pub(crate) async fn service(app: &App, headers: &HeaderMap) -> Result<Claims> {
    let token =
        bearer(headers).ok_or_else(|| Error::Unauthorized("missing bearer token".into()))?;
    let claims = app.auth.verify(token).await?;
    if !claims.is_service() {
        return Err(Error::Forbidden(
            "a service token is required (chat-gateway token NAME --service)".into(),
        ));
    }
    Ok(claims)
}

/// A JSON body of at most 64 KiB (413), well formed for `T` (400).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T> {
    if body.len() > MAX_FRAME_BYTES {
        return Err(Error::TooLarge("body larger than 64 KiB".into()));
    }
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("invalid body: {e}")))
}

#[derive(Deserialize)]
struct SendBody {
    #[serde(default)]
    to: Vec<String>,
    msg: Value,
    #[serde(default, rename = "sendToAll")]
    send_to_all: bool,
}

/// `POST /message/send` (seeds 000/002): push `msg` as-is to every online device of `to`.
async fn message_send(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Wrapped<Pushed>>> {
    service(&app, &headers).await?;
    let body: SendBody = parse_json(&body)?;
    if !body.send_to_all && body.to.is_empty() {
        return Err(Error::BadRequest(
            "\"to\" must list at least one user (or set sendToAll)".into(),
        ));
    }
    let push = HttpPush {
        msg: body.msg,
        request_id: new_id(),
    };
    let not_exist = if body.send_to_all {
        app.router.push_all(push).await?;
        Vec::new()
    } else {
        app.router.push(push, &body.to).await?
    };
    Ok(Json(Wrapped::ok(Pushed { not_exist })))
}

#[derive(Deserialize, Default)]
struct KickBody {
    #[serde(default)]
    reason: Option<String>,
}

/// `POST /api/users/{id}/kick [{"reason": "logout" | "admin"}]`: the seeds' logout. KICKED (23)
/// carries `logout` unless the caller says `admin`.
async fn kick_user(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Wrapped<KickedUser>>> {
    service(&app, &headers).await?;
    let body: KickBody = if body.is_empty() {
        KickBody::default()
    } else {
        parse_json(&body)?
    };
    let reason = match body.reason.as_deref().map(KickReason::parse) {
        None | Some(Some(KickReason::Logout)) => KickReason::Logout,
        Some(Some(KickReason::Admin)) => KickReason::Admin,
        _ => {
            let other = body.reason.unwrap_or_default();
            return Err(Error::BadRequest(format!(
                "reason must be \"logout\" or \"admin\", not {other:?}"
            )));
        }
    };
    // Every token issued until now is refused from here on, on every pod (the time is in the
    // database), before the live connections are kicked: a reconnect cannot slip between.
    app.revocations
        .revoke(&id, None, crate::auth::now_ms())
        .await?;
    let kicked = app.router.kick_user(&id, reason).await?;
    Ok(Json(Wrapped::ok(KickedUser { kicked })))
}

#[derive(Deserialize)]
struct LoginBody {
    user: String,
    #[serde(default)]
    name: Option<String>,
}

/// `POST /dev/login` (only with `--dev-login`): a client token for the browser page.
async fn dev_login(State(app): State<Arc<App>>, body: axum::body::Bytes) -> Result<Json<DevToken>> {
    if !app.config.dev_login {
        return Err(Error::NotFound(
            "dev login is disabled (start the gateway with --dev-login)".into(),
        ));
    }
    let body: LoginBody = parse_json(&body)?;
    UserId::parse(body.user.as_str()).map_err(|e| Error::BadRequest(format!("user {e}")))?;
    if body.user == SYSTEM_USER {
        return Err(Error::BadRequest(format!(
            "\"{SYSTEM_USER}\" is reserved for the backend API"
        )));
    }
    let token = app.auth.issue(
        &body.user,
        body.name.as_deref().filter(|n| !n.is_empty()),
        false,
        86_400,
    )?;
    Ok(Json(DevToken { token }))
}
