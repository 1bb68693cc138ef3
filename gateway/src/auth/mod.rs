//! Authentication: JWTs checked at the WebSocket upgrade and on the HTTP API.
//!
//! Accepted keys (docs/operations.md "Tokens"):
//! - HS256 with the user secret (`--jwt-secret`, else `<data-dir>/jwt-secret`), and during a
//!   rotation with the previous one too (`--jwt-previous-secret`);
//! - RS256 / ES256 with the keys of a JWKS (`--jwt-jwks`, file or URL), whose tokens must also
//!   carry `--jwt-issuer` / `--jwt-audience` when those are set;
//! - service tokens (`role: "service"`): with `--service-jwt-secret`, only HS256 with that key,
//!   which signs nothing else; without it, any accepted key.
//!
//! Revocation (a kick or a logout) is [`revoke`]: a not-before time per user and per device,
//! compared with the token's `iat`.

pub mod args;
mod jwks;
pub mod revoke;
mod secret;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{decode, decode_header, encode, Algorithm, DecodingKey, EncodingKey, Header};
use jsonwebtoken::{TokenData, Validation};
use serde::{Deserialize, Serialize};

pub use self::args::AuthArgs;
pub use self::jwks::Jwks;
pub use self::secret::resolve_secret;
use crate::config::StoreArgs;
use crate::error::{Error, Result};

/// The `role` claim of service tokens: only they may call the HTTP push and kick API.
pub const SERVICE_ROLE: &str = "service";

/// What a token asserts: which user, under what name, since and until when, and whether it is a
/// service.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Claims {
    /// User id (the seeds' `openid`).
    pub sub: String,
    /// Display name (the seeds' `userName`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at, seconds since the epoch (fractional: this gateway writes milliseconds). A kick
    /// or logout refuses tokens issued before it; one without `iat` is refused once its user or
    /// device was revoked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<f64>,
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

    /// `iat` in milliseconds, when the token has a usable one.
    pub fn issued_at_ms(&self) -> Option<i64> {
        self.iat
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| (s * 1000.0).round() as i64)
    }

    /// `exp` in milliseconds.
    pub fn expires_at_ms(&self) -> i64 {
        i64::try_from(self.exp.saturating_mul(1000)).unwrap_or(i64::MAX)
    }
}

/// An HS256 key: signs and verifies.
#[derive(Clone)]
struct Hmac {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl Hmac {
    fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }
}

/// Signs tokens with the current secrets and verifies them against every accepted key.
#[derive(Clone)]
pub struct Auth {
    user: Hmac,
    previous: Option<DecodingKey>,
    service: Option<Hmac>,
    jwks: Option<Arc<Jwks>>,
    /// `--jwt-issuer` / `--jwt-audience`, for JWKS tokens.
    issuer: Option<String>,
    audience: Option<String>,
}

impl Auth {
    /// Signs and verifies with one HS256 `secret`, for users and services alike. Verification
    /// requires `exp` and `sub` and allows no clock leeway, so a token is refused from the second
    /// it expires.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            user: Hmac::new(secret),
            previous: None,
            service: None,
            jwks: None,
            issuer: None,
            audience: None,
        }
    }

    /// Also accepts user tokens signed with `secret` (the one a rotation replaces).
    pub fn with_previous_secret(mut self, secret: &[u8]) -> Self {
        self.previous = Some(DecodingKey::from_secret(secret));
        self
    }

    /// Service tokens are signed with `secret`, and only they: a user-key token claiming the
    /// service role is refused, as is a service-key token claiming anything else.
    pub fn with_service_secret(mut self, secret: &[u8]) -> Self {
        self.service = Some(Hmac::new(secret));
        self
    }

    /// Also accepts RS256 / ES256 tokens signed with a key of `jwks`, which must carry `issuer`
    /// and `audience` when they are given.
    pub fn with_jwks(
        mut self,
        jwks: Arc<Jwks>,
        issuer: Option<String>,
        audience: Option<String>,
    ) -> Self {
        self.jwks = Some(jwks);
        self.issuer = issuer;
        self.audience = audience;
        self
    }

    /// The HS256 keys `args` name (what `chat-gateway token` signs with); `serve` adds the JWKS
    /// ([`Auth::from_config`]).
    pub fn from_store_args(args: &StoreArgs) -> Result<Self> {
        let mut auth = Self::new(resolve_secret(args)?.as_bytes());
        if let Some(previous) = nonempty(&args.jwt_previous_secret) {
            auth = auth.with_previous_secret(previous.as_bytes());
        }
        if let Some(service) = nonempty(&args.service_jwt_secret) {
            auth = auth.with_service_secret(service.as_bytes());
        }
        Ok(auth)
    }

    /// Every key `serve` is configured with: the HS256 ones and, with `--jwt-jwks`, the JWKS
    /// (loaded now: a file that does not parse stops the start).
    pub async fn from_config(store: &StoreArgs, args: &AuthArgs) -> Result<Self> {
        let auth = Self::from_store_args(store)?;
        let Some(location) = nonempty(&args.jwt_jwks) else {
            return Ok(auth);
        };
        let period = Duration::from_secs(args.jwt_jwks_refresh_seconds);
        let jwks = Arc::new(Jwks::load(location, period).await?);
        Ok(auth.with_jwks(
            jwks,
            nonempty(&args.jwt_issuer).map(str::to_owned),
            nonempty(&args.jwt_audience).map(str::to_owned),
        ))
    }

    /// Signs a token for `user` issued now that expires `ttl_seconds` from now, a service token
    /// (with the service key, when there is one) when `service` is set: what `chat-gateway token`
    /// and `/dev/login` hand out.
    pub fn issue(
        &self,
        user: &str,
        name: Option<&str>,
        service: bool,
        ttl_seconds: u64,
    ) -> Result<String> {
        let now = now_ms();
        let claims = Claims {
            sub: user.to_owned(),
            name: name.map(str::to_owned),
            exp: (now / 1000) as u64 + ttl_seconds,
            iat: Some(now as f64 / 1000.0),
            role: service.then(|| SERVICE_ROLE.to_owned()),
        };
        self.sign(&claims)
    }

    /// Signs arbitrary claims (tests use it for expired tokens), with the service key for service
    /// claims when there is one.
    pub fn sign(&self, claims: &Claims) -> Result<String> {
        let key = match &self.service {
            Some(service) if claims.is_service() => &service.encoding,
            _ => &self.user.encoding,
        };
        encode(&Header::new(Algorithm::HS256), claims, key)
            .map_err(|e| Error::internal("signing token", e))
    }

    /// Verifies signature, algorithm, expiry (and issuer and audience for JWKS tokens). Any
    /// failure is 401 with a reason.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let header = decode_header(token).map_err(|_| unauthorized("token malformed"))?;
        let claims = match header.alg {
            Algorithm::HS256 => self.verify_hmac(token)?,
            Algorithm::RS256 | Algorithm::ES256 => self.verify_jwks(token, &header).await?,
            other => {
                return Err(Error::Unauthorized(format!(
                    "token algorithm {other:?} is not accepted (HS256, or RS256/ES256 with a JWKS)"
                )))
            }
        };
        if claims.sub.is_empty() || claims.sub.len() > 128 {
            return Err(unauthorized("token subject must be 1-128 bytes"));
        }
        Ok(claims)
    }

    fn verify_hmac(&self, token: &str) -> Result<Claims> {
        let rules = validation(Algorithm::HS256, None, None);
        if let Some(service) = &self.service {
            match decode::<Claims>(token, &service.decoding, &rules) {
                Ok(data) if data.claims.is_service() => return Ok(data.claims),
                Ok(_) => {
                    return Err(unauthorized(
                        "a token signed with the service key must carry role \"service\"",
                    ))
                }
                Err(e) if *e.kind() == ErrorKind::InvalidSignature => {}
                Err(e) => return Err(refusal(&e)),
            }
        }
        let data = match decode::<Claims>(token, &self.user.decoding, &rules) {
            Err(e) if *e.kind() == ErrorKind::InvalidSignature => match &self.previous {
                Some(previous) => decode::<Claims>(token, previous, &rules),
                None => Err(e),
            },
            other => other,
        };
        self.user_key_claims(data.map_err(|e| refusal(&e))?)
    }

    async fn verify_jwks(&self, token: &str, header: &Header) -> Result<Claims> {
        let Some(jwks) = &self.jwks else {
            return Err(unauthorized(
                "token algorithm must be HS256 (this gateway has no --jwt-jwks)",
            ));
        };
        let rules = validation(header.alg, self.issuer.as_deref(), self.audience.as_deref());
        let mut last = unauthorized("token signature invalid");
        for key in jwks.keys_for(header.kid.as_deref(), header.alg).await? {
            match decode::<Claims>(token, &key.decoding, &rules) {
                Ok(data) => return self.user_key_claims(data),
                Err(e) => last = refusal(&e),
            }
        }
        Err(last)
    }

    /// Claims a key other than the service key signed: not a service token when there is a
    /// service key.
    fn user_key_claims(&self, data: TokenData<Claims>) -> Result<Claims> {
        if self.service.is_some() && data.claims.is_service() {
            return Err(unauthorized(
                "service tokens must be signed with the service key (--service-jwt-secret)",
            ));
        }
        Ok(data.claims)
    }
}

fn validation(alg: Algorithm, issuer: Option<&str>, audience: Option<&str>) -> Validation {
    let mut v = Validation::new(alg);
    v.leeway = 0;
    let mut required = vec!["exp", "sub"];
    if let Some(iss) = issuer {
        v.set_issuer(&[iss]);
        required.push("iss");
    }
    match audience {
        Some(aud) => {
            v.set_audience(&[aud]);
            required.push("aud");
        }
        None => v.validate_aud = false,
    }
    v.set_required_spec_claims(&required);
    v
}

fn refusal(e: &jsonwebtoken::errors::Error) -> Error {
    unauthorized(match e.kind() {
        ErrorKind::ExpiredSignature => "token expired",
        ErrorKind::ImmatureSignature => "token not valid yet (nbf)",
        ErrorKind::InvalidSignature => "token signature invalid",
        ErrorKind::InvalidAlgorithm => "token algorithm does not match its key",
        ErrorKind::InvalidIssuer => "token issuer (iss) is not the configured --jwt-issuer",
        ErrorKind::InvalidAudience => "token audience (aud) is not the configured --jwt-audience",
        ErrorKind::MissingRequiredClaim(_) => {
            "token lacks a required claim (sub, exp; iss, aud when configured)"
        }
        _ => "token malformed",
    })
}

fn unauthorized(why: &str) -> Error {
    Error::Unauthorized(why.to_owned())
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().filter(|s| !s.is_empty())
}

/// The wall clock in milliseconds.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
