//! REGISTER (7) with `loginStatus: "1"`: store the display name, then reply. (The openid check and
//! the logout are the connection core's.)

use chat_protocol::server::{reply_json, Registered};
use chat_protocol::{LoginStatus, Reply, RequestId};

use crate::app::App;
use crate::error::Result;
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
