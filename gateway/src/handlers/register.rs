//! REGISTER (7): with `loginStatus: "1"` store the display name, then reply; with `"0"` (logout)
//! revoke the device's tokens, then reply (the core closes). RENEW (21) with a fresh token:
//! verify it. (The openid check is the connection core's.)

use chat_protocol::server::{reply_json, Registered};
use chat_protocol::{LoginStatus, Reply, RequestId};

use crate::app::App;
use crate::auth::{now_ms, revoke};
use crate::error::{Error, Result};
use crate::session::ops::Done;
use crate::session::Identity;

pub(super) async fn handle(
    app: &App,
    who: &Identity,
    name: String,
    rid: Option<&RequestId>,
) -> Result<Done> {
    app.store.upsert_user(who.user.as_str(), &name).await?;
    let reply = Registered {
        openid: who.user.as_str().to_owned(),
        user_name: Some(name),
        login_status: LoginStatus::Online,
    };
    Ok(Done::Frame(reply_json(&Reply::Register(reply), rid)))
}

/// Logout: every token of this device issued until now is refused from here on (on every pod:
/// the time is in the database), then the reply; the core closes with 1000.
pub(super) async fn logout(app: &App, who: &Identity, rid: Option<&RequestId>) -> Result<Done> {
    let (user, device) = (who.user.as_str(), who.device.as_str());
    app.revocations.revoke(user, Some(device), now_ms()).await?;
    let reply = Registered {
        openid: user.to_owned(),
        user_name: None,
        login_status: LoginStatus::Offline,
    };
    Ok(Done::LoggedOut(reply_json(&Reply::Register(reply), rid)))
}

/// RENEW's fresh token: valid, the same user's, not revoked. Its `exp` becomes the session's cap.
pub(super) async fn renew(app: &App, who: &Identity, token: &str) -> Result<Done> {
    let claims = app.auth.verify(token).await?;
    if claims.sub != who.user.as_str() {
        return Err(Error::Forbidden(
            "the renewed token is for another user; connect again to change users".into(),
        ));
    }
    revoke::check(&*app.revocations, &claims, who.device.as_str()).await?;
    Ok(Done::Token {
        expires_ms: claims.expires_at_ms(),
    })
}
