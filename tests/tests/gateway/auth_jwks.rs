//! RS256 / ES256 tokens from an identity provider's JWKS (issue 17 §6): served over plain HTTP
//! by a server started here, keys made with `openssl`; issuer, audience and key rotation checked.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::routing::get;
use axum::Router;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

use chat_tests::{Client, TestGateway};

use super::auth::upgrade;

const ISSUER: &str = "https://idp.example";
const AUDIENCE: &str = "chat";

/// A private key in DER as jsonwebtoken reads it (RSA: PKCS#1, EC: PKCS#8), made by `openssl`
/// running `script` in `sh`.
fn openssl_key(script: &str) -> Vec<u8> {
    let out = std::process::Command::new("sh")
        .args(["-c", script])
        .output()
        .unwrap_or_else(|e| panic!("sh: {e}"));
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "openssl is needed to make the JWKS test keys (apt-get install openssl): {script}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

struct Key {
    alg: Algorithm,
    kid: &'static str,
    encoding: EncodingKey,
}

impl Key {
    fn rsa(kid: &'static str) -> Self {
        let der = openssl_key(
            "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
             | openssl rsa -outform DER -traditional",
        );
        Self {
            alg: Algorithm::RS256,
            kid,
            encoding: EncodingKey::from_rsa_der(&der),
        }
    }

    fn ec(kid: &'static str) -> Self {
        let der = openssl_key(
            "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
             | openssl pkcs8 -topk8 -nocrypt -outform DER",
        );
        Self {
            alg: Algorithm::ES256,
            kid,
            encoding: EncodingKey::from_ec_der(&der),
        }
    }

    fn jwk(&self) -> Jwk {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).unwrap();
        jwk.common.key_id = Some(self.kid.into());
        jwk
    }

    /// A token for `user` with these issuer and audience (none: left out).
    fn token(&self, user: &str, iss: Option<&str>, aud: Option<&str>) -> String {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut claims = json!({"sub": user, "exp": now + 600, "iat": now});
        if let Some(iss) = iss {
            claims["iss"] = json!(iss);
        }
        if let Some(aud) = aud {
            claims["aud"] = json!(aud);
        }
        let mut header = Header::new(self.alg);
        header.kid = Some(self.kid.into());
        encode(&header, &claims, &self.encoding).unwrap()
    }

    fn good(&self, user: &str) -> String {
        self.token(user, Some(ISSUER), Some(AUDIENCE))
    }
}

/// Serves the JWKS it holds at `/jwks`; `set` replaces it (a rotation at the provider).
struct Provider {
    keys: Arc<Mutex<String>>,
    url: String,
}

impl Provider {
    async fn start(keys: &[&Key]) -> Self {
        let state = Arc::new(Mutex::new(String::new()));
        let router = Router::new()
            .route(
                "/jwks",
                get(|State(s): State<Arc<Mutex<String>>>| async move { s.lock().unwrap().clone() }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await });
        let provider = Self { keys: state, url };
        provider.set(keys);
        provider
    }

    fn set(&self, keys: &[&Key]) {
        let set = JwkSet {
            keys: keys.iter().map(|k| k.jwk()).collect(),
        };
        *self.keys.lock().unwrap() = serde_json::to_string(&set).unwrap();
    }
}

#[tokio::test]
async fn jwks_tokens_are_checked_for_key_issuer_and_audience() {
    let (rsa, ec, stranger) = (Key::rsa("r1"), Key::ec("e1"), Key::rsa("r1"));
    let idp = Provider::start(&[&rsa, &ec]).await;
    let gw = TestGateway::start_with(|cfg| {
        cfg.auth.jwt_jwks = Some(idp.url.clone());
        cfg.auth.jwt_issuer = Some(ISSUER.into());
        cfg.auth.jwt_audience = Some(AUDIENCE.into());
    })
    .await;
    for (what, token) in [("RS256", rsa.good("alice")), ("ES256", ec.good("bob"))] {
        let c = Client::connect(&gw.ws_url(), &token, Some("phone")).await;
        assert!(c.is_ok(), "{what}: {:?}", c.err());
    }
    let refused = [
        (
            "another key under the same kid",
            stranger.good("carol"),
            "signature",
        ),
        (
            "wrong issuer",
            rsa.token("carol", Some("https://evil"), Some(AUDIENCE)),
            "issuer",
        ),
        (
            "no issuer",
            rsa.token("carol", None, Some(AUDIENCE)),
            "required claim",
        ),
        (
            "wrong audience",
            rsa.token("carol", Some(ISSUER), Some("other")),
            "audience",
        ),
        (
            "no audience",
            rsa.token("carol", Some(ISSUER), None),
            "required claim",
        ),
    ];
    for (what, token, why) in refused {
        let (status, body) = upgrade(&gw.ws_url(), &token, "phone").await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(body.contains(why), "{what}: {body}");
    }
    // HS256 tokens of the gateway's own secret still work beside the JWKS.
    gw.connect("dave", "phone").await;
}

#[tokio::test]
async fn a_rotated_jwks_is_fetched_again_for_an_unknown_key_id() {
    let (old, new) = (Key::rsa("2024"), Key::rsa("2025"));
    let idp = Provider::start(&[&old]).await;
    let gw = TestGateway::start_with(|cfg| {
        cfg.auth.jwt_jwks = Some(idp.url.clone());
        cfg.auth.jwt_issuer = Some(ISSUER.into());
        cfg.auth.jwt_audience = Some(AUDIENCE.into());
    })
    .await;
    Client::connect(&gw.ws_url(), &old.good("alice"), Some("phone"))
        .await
        .unwrap();
    // The provider rotates: the new key replaces the old one.
    idp.set(&[&new]);
    // Unknown-kid refetches are at most one a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    Client::connect(&gw.ws_url(), &new.good("bob"), Some("phone"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body) = upgrade(&gw.ws_url(), &old.good("carol"), "phone").await;
    assert_eq!(status, 401, "the retired key: {body}");
    assert!(body.contains("not in the JWKS"), "{body}");
}
