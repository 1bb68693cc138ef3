//! What the upgrade checks before anything else: the browser's `Origin` against
//! `--allowed-origins`, and the token — from `Authorization: Bearer`, else the
//! `Sec-WebSocket-Protocol` offer `bearer.<JWT>` (beside `chatcluster.v1`, which the server
//! selects), else `?token=`. Query strings end up in ingress and proxy access logs; headers do not,
//! so the query is the last resort (docs/protocol.md "Handshake").

use axum::http::{header, HeaderMap};

use crate::app::App;
use crate::auth::{revoke, Claims};
use crate::error::{Error, Result};

use chat_protocol::names::BEARER_SUBPROTOCOL_PREFIX as BEARER_PROTOCOL;
pub(super) use chat_protocol::names::SUBPROTOCOL;

/// 403 when the request carries an `Origin` that `--allowed-origins` does not list; requests
/// without one (mobile apps, servers) and gateways without the flag pass.
pub(crate) fn check_origin(app: &App, headers: &HeaderMap) -> Result<()> {
    if app.origins.is_empty() {
        return Ok(());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("").trim_end_matches('/');
    if app.origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        return Ok(());
    }
    metrics::counter!("chat_origin_refused_total").increment(1);
    Err(Error::Forbidden(format!(
        "origin {origin:?} may not open WebSockets here (--allowed-origins)"
    )))
}

/// The token of an `Authorization: Bearer …` header.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The token of a `Sec-WebSocket-Protocol: chatcluster.v1, bearer.<JWT>` offer.
fn subprotocol_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(BEARER_PROTOCOL))
        .filter(|t| !t.is_empty())
}

/// The upgrade's token: the `Authorization` header wins, then the subprotocol, then the query.
pub(crate) fn token<'a>(headers: &'a HeaderMap, query: Option<&'a str>) -> Result<&'a str> {
    bearer(headers)
        .filter(|t| !t.is_empty())
        .or_else(|| subprotocol_token(headers))
        .or_else(|| query.filter(|t| !t.is_empty()))
        .ok_or_else(|| {
            Error::Unauthorized(
                "missing token (Authorization: Bearer, Sec-WebSocket-Protocol bearer.<JWT>, or ?token=)"
                    .into(),
            )
        })
}

/// A token verified and not revoked for `device`.
pub(crate) async fn authenticate(app: &App, token: &str, device: &str) -> Result<Claims> {
    let claims = app.auth.verify(token).await?;
    revoke::check(&*app.revocations, &claims, device).await?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_header_wins_then_the_subprotocol_then_the_query() {
        let mut h = HeaderMap::new();
        assert!(token(&h, Some("")).is_err());
        assert_eq!(token(&h, Some("q")).unwrap(), "q");
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chatcluster.v1, bearer.s.t.u"),
        );
        assert_eq!(token(&h, Some("q")).unwrap(), "s.t.u");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer a.b.c"),
        );
        assert_eq!(token(&h, Some("q")).unwrap(), "a.b.c");
    }
}
