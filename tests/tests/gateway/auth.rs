//! Authentication (issue 17 §6) over real WebSockets and HTTP: revocation by kick and logout,
//! the token's `exp` capping the session, RENEW with a fresh token, secret rotation, the
//! service key, and where the token may travel. JWKS keys are in `auth_jwks.rs`.

use std::time::Duration;

use chat_client::connect::TokenIn;
use chat_gateway::auth::{Auth, Claims};
use chat_tests::fixtures::{self, post_json, user_token, SECRET};
use chat_tests::{Client, Closed, TestGateway};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// The status and body of an upgrade to `url` with `token` in the query, as `device`.
pub(crate) async fn upgrade(url: &str, token: &str, device: &str) -> (u16, String) {
    upgrade_request(&format!("{url}?token={token}&device={device}"), &[]).await
}

/// The status and body of an upgrade to `url` with these extra headers.
pub(crate) async fn upgrade_request(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut request = url.into_client_request().unwrap();
    for (name, value) in headers {
        let name = tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes());
        request
            .headers_mut()
            .insert(name.unwrap(), value.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((_, response)) => (response.status().as_u16(), String::new()),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let body = resp.body().clone().unwrap_or_default();
            (
                resp.status().as_u16(),
                String::from_utf8_lossy(&body).into(),
            )
        }
        Err(e) => panic!("upgrade {url}: {e}"),
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn kick(gw: &TestGateway, user: &str) {
    let url = gw.http(&format!("/api/users/{user}/kick"));
    let (status, body) = post_json(&url, Some(&gw.service_token()), json!({})).await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_kick_refuses_the_users_earlier_tokens_and_accepts_later_ones() {
    let gw = TestGateway::start().await;
    let old = user_token("alice");
    let mut phone = Client::connect(&gw.ws_url(), &old, Some("phone"))
        .await
        .unwrap();
    kick(&gw, "alice").await;
    assert_eq!(phone.closed().await, Closed::Code(4001), "kicked live");
    for device in ["phone", "laptop"] {
        let (status, body) = upgrade(&gw.ws_url(), &old, device).await;
        assert_eq!(status, 401, "{device}: {body}");
        assert!(body.contains("revoked"), "{body}");
    }
    // A token issued after the kick is not affected, nor is another user.
    let fresh = user_token("alice");
    Client::connect(&gw.ws_url(), &fresh, Some("phone"))
        .await
        .unwrap();
    gw.connect("bob", "phone").await;
}

#[tokio::test]
async fn a_token_without_iat_is_refused_once_its_user_was_kicked() {
    let gw = TestGateway::start().await;
    let bare = fixtures::auth()
        .sign(&Claims {
            sub: "alice".into(),
            name: None,
            exp: now_secs() + 600,
            iat: None,
            role: None,
        })
        .unwrap();
    Client::connect(&gw.ws_url(), &bare, Some("phone"))
        .await
        .unwrap();
    kick(&gw, "alice").await;
    let (status, body) = upgrade(&gw.ws_url(), &bare, "phone").await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("no iat"), "{body}");
}

#[tokio::test]
async fn logout_revokes_the_devices_tokens_only() {
    let gw = TestGateway::start().await;
    let token = user_token("alice");
    let mut phone = Client::connect(&gw.ws_url(), &token, Some("phone"))
        .await
        .unwrap();
    let reply = phone
        .request(7, json!({"openid": "alice", "loginStatus": "0"}))
        .await;
    assert_eq!(
        (reply["type"].as_u64(), reply["status"].as_u64()),
        (Some(7), Some(200)),
        "{reply}"
    );
    assert_eq!(phone.closed().await, Closed::Code(1000));
    let (status, body) = upgrade(&gw.ws_url(), &token, "phone").await;
    assert_eq!(status, 401, "the logged-out device: {body}");
    // The same token on another device of the user still connects.
    Client::connect(&gw.ws_url(), &token, Some("laptop"))
        .await
        .unwrap();
}

#[tokio::test]
async fn welcome_and_renew_never_pass_the_tokens_exp_which_closes_4002() {
    let gw = TestGateway::start().await;
    let exp = now_secs() + 3;
    let token = fixtures::auth()
        .sign(&Claims {
            sub: "alice".into(),
            name: None,
            exp,
            iat: Some(now_secs() as f64),
            role: None,
        })
        .unwrap();
    let mut c = Client::connect(&gw.ws_url(), &token, Some("phone"))
        .await
        .unwrap();
    let welcome = &c.welcome["params"];
    assert!(welcome["timelife"].as_u64().unwrap() <= 3, "{welcome}");
    assert!(
        welcome["expiresAt"].as_i64().unwrap() <= (exp * 1000) as i64,
        "{welcome}"
    );
    let renewed = c.request(21, json!({})).await;
    assert_eq!(renewed["status"], 200, "{renewed}");
    assert!(
        renewed["params"]["expiresAt"].as_i64().unwrap() <= (exp * 1000) as i64,
        "{renewed}"
    );
    assert_eq!(c.closed().await, Closed::Code(4002), "closed at exp");
}

#[tokio::test]
async fn renew_with_a_fresh_token_of_the_same_user_moves_the_cap() {
    let gw = TestGateway::start().await;
    let short = fixtures::auth()
        .sign(&Claims {
            sub: "alice".into(),
            name: None,
            exp: now_secs() + 3,
            iat: Some(now_secs() as f64),
            role: None,
        })
        .unwrap();
    let mut c = Client::connect(&gw.ws_url(), &short, Some("phone"))
        .await
        .unwrap();
    // Another user's token: 403, garbage: 401; the connection stays.
    let e = c.request(21, json!({"token": user_token("bob")})).await;
    assert_eq!(
        (e["type"].as_u64(), e["status"].as_u64()),
        (Some(500), Some(403)),
        "{e}"
    );
    let e = c.request(21, json!({"token": "a.b.c"})).await;
    assert_eq!(
        (e["type"].as_u64(), e["status"].as_u64()),
        (Some(500), Some(401)),
        "{e}"
    );
    let r = c.request(21, json!({"token": user_token("alice")})).await;
    assert_eq!(r["status"], 200, "{r}");
    let cap = (now_secs() + 60) as i64 * 1000;
    assert!(r["params"]["expiresAt"].as_i64().unwrap() > cap, "{r}");
    // Past the first token's exp the connection still answers.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let hb = c.request(3, json!({})).await;
    assert_eq!(
        (hb["type"].as_u64(), hb["status"].as_u64()),
        (Some(4), Some(200)),
        "{hb}"
    );
}

#[tokio::test]
async fn the_previous_secret_verifies_so_a_rotation_logs_nobody_out() {
    let gw = TestGateway::start_with(|cfg| {
        cfg.store.jwt_secret = Some("the-new-secret".into());
        cfg.store.jwt_previous_secret = Some(SECRET.into());
    })
    .await;
    // Issued before the rotation (the old secret) and after it (the new one): both connect.
    gw.connect("alice", "phone").await;
    let new = Auth::new(b"the-new-secret")
        .issue("bob", None, false, 60)
        .unwrap();
    Client::connect(&gw.ws_url(), &new, Some("phone"))
        .await
        .unwrap();
    let other = Auth::new(b"unrelated")
        .issue("carol", None, false, 60)
        .unwrap();
    assert_eq!(upgrade(&gw.ws_url(), &other, "phone").await.0, 401);
}

#[tokio::test]
async fn service_tokens_must_be_signed_with_the_service_key() {
    let gw =
        TestGateway::start_with(|cfg| cfg.store.service_jwt_secret = Some("svc-key".into())).await;
    let url = gw.http("/api/users/alice/kick");
    // A service-role token signed with the user key: refused.
    let (status, body) = post_json(&url, Some(&fixtures::service_token()), json!({})).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("service key"), "{body}");
    let service = Auth::new(SECRET.as_bytes())
        .with_service_secret(b"svc-key")
        .issue("ops", None, true, 60)
        .unwrap();
    let (status, body) = post_json(&url, Some(&service), json!({})).await;
    assert_eq!(status, 200, "{body}");
    // The service key signs no user token.
    let user = Auth::new(b"svc-key")
        .issue("alice", None, false, 60)
        .unwrap();
    assert_eq!(upgrade(&gw.ws_url(), &user, "phone").await.0, 401);
}

#[tokio::test]
async fn the_token_may_ride_in_the_subprotocol_and_the_header_wins_over_the_query() {
    let gw = TestGateway::start().await;
    let token = user_token("alice");
    let c = Client::connect_with(&gw.ws_url(), &token, Some("phone"), TokenIn::Subprotocol)
        .await
        .unwrap();
    assert_eq!(c.welcome["params"]["userId"], "alice");
    // The server selects chatcluster.v1 (a browser fails the connection otherwise).
    let offer = format!("chatcluster.v1, bearer.{token}");
    let mut request = format!("{}?device=tablet", gw.ws_url())
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", offer.parse().unwrap());
    let (_, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "chatcluster.v1"
    );
    // Header, then subprotocol, then query: a bad header token is not rescued by a good query.
    let url = format!("{}?token={token}&device=laptop", gw.ws_url());
    let bad = ("Authorization", "Bearer not.a.token");
    assert_eq!(upgrade_request(&url, &[bad]).await.0, 401);
    let bad_offer = (
        "Sec-WebSocket-Protocol",
        "chatcluster.v1, bearer.not.a.token",
    );
    assert_eq!(upgrade_request(&url, &[bad_offer]).await.0, 401);
    let good_offer = format!("chatcluster.v1, bearer.{token}");
    let bad_query = format!("{}?token=garbage&device=laptop", gw.ws_url());
    let status = upgrade_request(&bad_query, &[("Sec-WebSocket-Protocol", &good_offer)]).await;
    assert_eq!(status.0, 101, "{status:?}");
}
