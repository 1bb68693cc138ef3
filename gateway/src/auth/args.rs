//! `serve`'s flags for who may connect: identity-provider keys, browser origins, the admin
//! token. (The HS256 secrets are in [`crate::config::StoreArgs`]: `chat-gateway token` needs
//! them too.)

use clap::Args;

use crate::error::{Error, Result};

/// Identity-provider keys, allowed browser origins and the admin port's token.
#[derive(Debug, Clone, Default, Args)]
pub struct AuthArgs {
    /// JWKS of an identity provider (a file path, or an http:// or https:// URL): RS256 and ES256 tokens signed with its keys are accepted beside HS256. Cached; fetched again every --jwt-jwks-refresh-seconds and when a token names an unknown key id (at most once a second).
    #[arg(long, env = "CHAT_JWT_JWKS")]
    pub jwt_jwks: Option<String>,

    /// How often the JWKS is fetched again.
    #[arg(long, env = "CHAT_JWT_JWKS_REFRESH_SECONDS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub jwt_jwks_refresh_seconds: u64,

    /// The `iss` JWKS tokens must carry (unset: not checked).
    #[arg(long, env = "CHAT_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// The `aud` JWKS tokens must carry (unset: a token with an `aud` claim is refused).
    #[arg(long, env = "CHAT_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Comma-separated origins (`scheme://host[:port]`) browsers may open WebSockets from; an upgrade with another `Origin` gets 403. Upgrades without an `Origin` (mobile apps, servers) are not affected. Unset: every origin.
    #[arg(long, env = "CHAT_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Bearer token the admin port's endpoints (all but /healthz, /readyz, /metrics) require. Required when --admin-listen is not a loopback address.
    #[arg(long, env = "CHAT_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl AuthArgs {
    /// `--allowed-origins`, normalized (lowercase, no trailing slash, empty entries dropped);
    /// an entry that is not `scheme://host[:port]` is an error.
    pub fn origins(&self) -> Result<Vec<String>> {
        self.allowed_origins
            .iter()
            .map(|o| o.trim())
            .filter(|o| !o.is_empty())
            .map(|o| {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                let valid = o.split_once("://").is_some_and(|(scheme, rest)| {
                    !scheme.is_empty() && !rest.is_empty() && !rest.contains(['/', '?', '#'])
                });
                if valid {
                    Ok(o)
                } else {
                    Err(Error::BadRequest(format!(
                        "--allowed-origins: {o:?} is not an origin (scheme://host[:port])"
                    )))
                }
            })
            .collect()
    }

    /// `--admin-token`, when set and not empty.
    pub fn admin_token(&self) -> Option<&str> {
        self.admin_token.as_deref().filter(|t| !t.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_normalized_and_checked() {
        let args = AuthArgs {
            allowed_origins: vec![
                "https://Chat.Example.com/".into(),
                " ".into(),
                "http://localhost:8080".into(),
            ],
            ..AuthArgs::default()
        };
        assert_eq!(
            args.origins().unwrap(),
            ["https://chat.example.com", "http://localhost:8080"]
        );
        let bad = AuthArgs {
            allowed_origins: vec!["chat.example.com".into()],
            ..AuthArgs::default()
        };
        assert!(bad
            .origins()
            .unwrap_err()
            .to_string()
            .contains("scheme://host"));
    }
}
