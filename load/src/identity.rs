//! Who the load clients are: distinct user ids under a per-run prefix, each with a HS256 JWT
//! minted from the gateway's secret (claims `sub`, `name`, `exp`, DESIGN.md §3).

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, EncodingKey, Header};
use serde::Serialize;

/// The device id every load client connects with; users are distinct, so one is enough.
pub const DEVICE: &str = "load";

/// One client: its user id and the token it connects with.
#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub token: String,
}

#[derive(Serialize)]
struct Claims<'a> {
    sub: &'a str,
    name: &'a str,
    exp: u64,
}

/// Mints users `<prefix>-<role><index>`.
#[derive(Clone)]
pub struct Users {
    prefix: String,
    key: EncodingKey,
    exp: u64,
}

impl Users {
    /// `prefix` defaults to [`run_prefix`]; tokens expire `ttl_seconds` from now.
    pub fn new(prefix: Option<String>, secret: &str, ttl_seconds: u64) -> Self {
        Self {
            prefix: prefix.unwrap_or_else(run_prefix),
            key: EncodingKey::from_secret(secret.as_bytes()),
            exp: unix_seconds() + ttl_seconds,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The user `<prefix>-<role><index>` with a fresh token.
    pub fn user(&self, role: &str, index: usize) -> User {
        let id = format!("{}-{role}{index}", self.prefix);
        let claims = Claims {
            sub: &id,
            name: &id,
            exp: self.exp,
        };
        let token = encode(&Header::default(), &claims, &self.key)
            .expect("HS256 signing with an HMAC key cannot fail");
        User { id, token }
    }
}

/// A prefix unique to this run (time and pid), so runs and parallel processes never share users
/// and a fresh user has no backlog to catch up on.
pub fn run_prefix() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "load{:x}",
        (nanos as u64 ^ u64::from(std::process::id()) << 40) & 0xffff_ffff_ffff
    )
}

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{decode, Algorithm, DecodingKey, Validation};

    #[derive(serde::Deserialize)]
    struct Decoded {
        sub: String,
        name: String,
        exp: u64,
    }

    #[test]
    fn tokens_verify_with_the_same_secret() {
        let users = Users::new(Some("p".into()), "s3cret", 600);
        let user = users.user("s", 7);
        assert_eq!(user.id, "p-s7");
        let data = decode::<Decoded>(
            &user.token,
            &DecodingKey::from_secret(b"s3cret"),
            &Validation::new(Algorithm::HS256),
        )
        .unwrap();
        assert_eq!(data.claims.sub, "p-s7");
        assert_eq!(data.claims.name, "p-s7");
        assert!(data.claims.exp > unix_seconds());
        assert!(decode::<Decoded>(
            &user.token,
            &DecodingKey::from_secret(b"other"),
            &Validation::new(Algorithm::HS256),
        )
        .is_err());
    }

    #[test]
    fn run_prefixes_are_url_safe() {
        let prefix = run_prefix();
        assert!(prefix.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
