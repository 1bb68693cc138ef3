//! Authentication: HS256 JWTs checked at the WebSocket upgrade and on the HTTP API.
//!
//! The secret comes from `--jwt-secret` (a Kubernetes Secret in cluster mode) or, in embedded
//! mode, from `<data-dir>/jwt-secret`, generated on first start and reused, so `chat-gateway token`
//! and `chat-gateway serve` agree without configuration.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::config::StoreArgs;
use crate::error::{Error, Result};

const SECRET_FILE: &str = "jwt-secret";
/// The `role` claim of service tokens: only they may call the HTTP push and kick API.
pub const SERVICE_ROLE: &str = "service";

/// What a token asserts: which user, under what name, until when, and whether it is a service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// User id (the seeds' `openid`).
    pub sub: String,
    /// Display name (the seeds' `userName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// `"service"` for tokens of the HTTP push/kick API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

impl Claims {
    /// The name the user's messages show: `name`, or the user id when it is missing or empty.
    pub fn display_name(&self) -> &str {
        self.name
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or(&self.sub)
    }

    /// Whether the token may call the HTTP push and kick API.
    pub fn is_service(&self) -> bool {
        self.role.as_deref() == Some(SERVICE_ROLE)
    }
}

/// Signs and verifies tokens with one HS256 secret.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl Auth {
    /// Signs and verifies with `secret`. Verification requires `exp` and `sub` and allows no clock
    /// leeway, so a token is refused from the second it expires.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Resolves the secret as every command does: flag/env first, else the data-dir file (created if missing).
    pub fn from_store_args(args: &StoreArgs) -> Result<Self> {
        Ok(Self::new(resolve_secret(args)?.as_bytes()))
    }

    /// Signs a token for `user` that expires `ttl_seconds` from now, a service token when `service`
    /// is set: what `chat-gateway token` and `/dev/login` hand out.
    pub fn issue(
        &self,
        user: &str,
        name: Option<&str>,
        service: bool,
        ttl_seconds: u64,
    ) -> Result<String> {
        let claims = Claims {
            sub: user.to_owned(),
            name: name.map(str::to_owned),
            exp: now_secs() + ttl_seconds,
            role: service.then(|| SERVICE_ROLE.to_owned()),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it for expired tokens).
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| Error::internal("signing token", e))
    }

    /// Verifies signature, algorithm and expiry. Any failure is 401 with a reason.
    pub fn verify(&self, token: &str) -> Result<Claims> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind::*;
            let why = match e.kind() {
                ExpiredSignature => "token expired",
                InvalidSignature => "token signature invalid",
                InvalidAlgorithm => "token algorithm must be HS256",
                MissingRequiredClaim(_) => "token lacks a required claim (sub, exp)",
                _ => "token malformed",
            };
            Error::Unauthorized(why.to_owned())
        })?;
        let claims = data.claims;
        if claims.sub.is_empty() || claims.sub.len() > 128 {
            return Err(Error::Unauthorized(
                "token subject must be 1-128 bytes".into(),
            ));
        }
        Ok(claims)
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The configured secret: `--jwt-secret` first, else the data dir's file (created if missing).
/// Signed file URLs derive their key from it too, so every pod of a cluster accepts them.
pub fn resolve_secret(args: &StoreArgs) -> Result<String> {
    if let Some(secret) = args.jwt_secret.as_deref().filter(|s| !s.is_empty()) {
        return Ok(secret.to_owned());
    }
    load_or_create_secret(&args.data_dir)
}

fn load_or_create_secret(dir: &Path) -> Result<String> {
    let path = dir.join(SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::internal(format!("reading {}", path.display()), e)),
    }
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::internal(format!("creating {}", dir.display()), e))?;
    let secret = hex::encode(rand::random::<[u8; 32]>());
    write_private(&path, &secret)
        .map_err(|e| Error::internal(format!("writing {}", path.display()), e))?;
    Ok(secret)
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    std::fs::write(path, contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issues_and_verifies() {
        let auth = Auth::new(b"s3cret");
        let token = auth.issue("alice", Some("Alice"), false, 60).unwrap();
        let claims = auth.verify(&token).unwrap();
        assert_eq!(
            (
                claims.sub.as_str(),
                claims.display_name(),
                claims.is_service()
            ),
            ("alice", "Alice", false)
        );
        assert!(auth
            .verify(&auth.issue("svc", None, true, 60).unwrap())
            .unwrap()
            .is_service());
    }

    #[test]
    fn rejects_wrong_secret_expired_and_garbage() {
        let auth = Auth::new(b"s3cret");
        let other = Auth::new(b"other").issue("alice", None, false, 60).unwrap();
        assert_eq!(auth.verify(&other).unwrap_err().status(), 401);
        let expired = encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "a".into(),
                name: None,
                exp: now_secs() - 1,
                role: None,
            },
            &EncodingKey::from_secret(b"s3cret"),
        )
        .unwrap();
        assert_eq!(
            auth.verify(&expired).unwrap_err().to_string(),
            "token expired"
        );
        assert_eq!(auth.verify("a.b.c").unwrap_err().status(), 401);
    }

    #[test]
    fn secret_file_is_created_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("chat-auth-{}", uuid::Uuid::new_v4().simple()));
        let first = load_or_create_secret(&dir).unwrap();
        assert_eq!(first, load_or_create_secret(&dir).unwrap());
        std::fs::remove_dir_all(dir).unwrap();
    }
}
