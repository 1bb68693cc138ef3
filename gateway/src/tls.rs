//! TLS and credentials for the backends, beyond what their URLs carry.
//!
//! Every client here is rustls with ring and the webpki roots (the workspace `Cargo.toml` says
//! why): a public or cloud CA works with no file, a private CA is loaded from a PEM file.
//!
//! - PostgreSQL: all in the URL, as libpq spells it (`sslmode=require|verify-ca|verify-full`,
//!   `sslrootcert=/path/ca.pem`), or in libpq's variables (`PGSSLMODE`, `PGSSLROOTCERT`), which
//!   sqlx reads too. `serve` and `migrate` parse the URL the same way.
//! - Redis: `rediss://` turns TLS on; [`BackendTlsArgs::redis_ca_file`] replaces the public roots
//!   with a private CA, and the ACL user and password may come apart from the URL (a Secret).
//! - Pulsar: `pulsar+ssl://` turns TLS on for the binary protocol and `https://` for the admin
//!   API; one CA file and one token serve both, as Pulsar's own token authentication does.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;

use crate::error::{Error, Result};

/// Credentials and CA files of Redis and Pulsar (PostgreSQL's go in its URL).
#[derive(Debug, Clone, Default, Args)]
pub struct BackendTlsArgs {
    /// Redis ACL user name; replaces a user in `--redis-url`.
    #[arg(long, env = "CHAT_REDIS_USERNAME")]
    pub redis_username: Option<String>,

    /// Redis password (of the ACL user, or `requirepass`); replaces a password in `--redis-url`.
    #[arg(long, env = "CHAT_REDIS_PASSWORD", hide_env_values = true)]
    pub redis_password: Option<String>,

    /// PEM file of the CA that signed the Redis server's certificate (`rediss://` URLs only). Without it the public (webpki) roots are trusted.
    #[arg(long, env = "CHAT_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,

    /// Pulsar token (a JWT) sent to the broker (`token` authentication) and, as `Authorization: Bearer`, to the admin API.
    #[arg(
        long,
        env = "CHAT_PULSAR_TOKEN",
        hide_env_values = true,
        conflicts_with = "pulsar_token_file"
    )]
    pub pulsar_token: Option<String>,

    /// File holding the Pulsar token (e.g. a mounted Secret), read at start-up; surrounding whitespace is ignored.
    #[arg(long, env = "CHAT_PULSAR_TOKEN_FILE")]
    pub pulsar_token_file: Option<PathBuf>,

    /// PEM file of a CA to trust, besides the public roots, for `pulsar+ssl://` and an `https://` admin API.
    #[arg(long, env = "CHAT_PULSAR_CA_FILE")]
    pub pulsar_ca_file: Option<PathBuf>,
}

/// Reads a PEM file named by `flag`, with an error that names both.
pub fn read_pem(flag: &str, path: &Path) -> Result<Vec<u8>> {
    let pem = std::fs::read(path)
        .map_err(|e| Error::BadRequest(format!("{flag} {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(Error::BadRequest(format!(
            "{flag} {}: no PEM certificate (-----BEGIN CERTIFICATE-----) in it",
            path.display()
        )));
    }
    Ok(pem)
}

/// An HTTP client that trusts the public roots and, when `ca` names a file, that CA too.
pub fn http_client(flag: &str, ca: Option<&Path>, timeout: Duration) -> Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder().timeout(timeout);
    if let Some(path) = ca {
        for cert in reqwest::Certificate::from_pem_bundle(&read_pem(flag, path)?)
            .map_err(|e| Error::BadRequest(format!("{flag} {}: {e}", path.display())))?
        {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| Error::internal("HTTP client", e))
}

impl BackendTlsArgs {
    /// The Redis client for `url`, with the user, password and CA given apart from it.
    pub fn redis_client(&self, url: &str) -> Result<redis::Client> {
        use redis::IntoConnectionInfo;
        let bad = |e: redis::RedisError| Error::BadRequest(format!("--redis-url: {e}"));
        let mut info = url.into_connection_info().map_err(bad)?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &self.redis_username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &self.redis_password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
        let tls = matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. });
        match &self.redis_ca_file {
            None => redis::Client::open(info).map_err(bad),
            Some(_) if !tls => Err(Error::BadRequest(
                "--redis-ca-file needs a rediss:// --redis-url (TLS)".into(),
            )),
            Some(path) => {
                let certs = redis::TlsCertificates {
                    client_tls: None,
                    root_cert: Some(read_pem("--redis-ca-file", path)?),
                };
                redis::Client::build_with_tls(info, certs).map_err(bad)
            }
        }
    }

    /// The Pulsar token: the flag, else the file's content; `None` when neither is set.
    pub fn pulsar_token(&self) -> Result<Option<String>> {
        if let Some(token) = &self.pulsar_token {
            return Ok(Some(token.trim().to_owned()));
        }
        let Some(path) = &self.pulsar_token_file else {
            return Ok(None);
        };
        let token = std::fs::read_to_string(path).map_err(|e| {
            Error::BadRequest(format!("--pulsar-token-file {}: {e}", path.display()))
        })?;
        match token.trim() {
            "" => Err(Error::BadRequest(format!(
                "--pulsar-token-file {}: the file is empty",
                path.display()
            ))),
            token => Ok(Some(token.to_owned())),
        }
    }

    /// What the Pulsar clients need: the token and the CA, read once at start-up.
    pub fn pulsar(&self) -> Result<PulsarAccess> {
        Ok(PulsarAccess {
            token: self.pulsar_token()?,
            ca_pem: self
                .pulsar_ca_file
                .as_deref()
                .map(|p| read_pem("--pulsar-ca-file", p))
                .transpose()?,
            ca_file: self.pulsar_ca_file.clone(),
        })
    }
}

/// The Pulsar token and CA, for the binary protocol and the admin API alike.
#[derive(Clone, Default)]
pub struct PulsarAccess {
    /// Sent as `token` authentication on CONNECT and as a bearer token to the admin API.
    pub token: Option<String>,
    /// A CA to trust besides the public roots (PEM).
    pub ca_pem: Option<Vec<u8>>,
    /// Where `ca_pem` came from, for error messages.
    pub ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PulsarAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PulsarAccess")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("ca_file", &self.ca_file)
            .finish()
    }
}

impl PulsarAccess {
    /// The admin API's HTTP client: the public roots and the CA.
    pub fn admin_client(&self, timeout: Duration) -> Result<reqwest::Client> {
        http_client("--pulsar-ca-file", self.ca_file.as_deref(), timeout)
    }

    /// `request` with the token as `Authorization: Bearer`, when there is one.
    pub fn authorize(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_credentials_apart_from_the_url_replace_the_urls() {
        let args = BackendTlsArgs {
            redis_username: Some("chat".into()),
            redis_password: Some("s3cret".into()),
            ..Default::default()
        };
        let client = args.redis_client("redis://old:pw@127.0.0.1:6379/").unwrap();
        let settings = client.get_connection_info().redis_settings();
        assert_eq!(settings.username(), Some("chat"));
        assert_eq!(settings.password(), Some("s3cret"));
    }

    #[test]
    fn a_ca_file_is_refused_without_tls_or_without_a_certificate() {
        let dir = std::env::temp_dir().join(format!("chat-tls-{}", crate::model::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let not_pem = dir.join("ca.pem");
        std::fs::write(&not_pem, "hello").unwrap();
        let args = BackendTlsArgs {
            redis_ca_file: Some(not_pem.clone()),
            ..Default::default()
        };
        let plain = args.redis_client("redis://127.0.0.1:6379/").unwrap_err();
        assert!(plain.to_string().contains("needs a rediss://"), "{plain}");
        let garbage = args.redis_client("rediss://127.0.0.1:6379/").unwrap_err();
        assert!(
            garbage.to_string().contains("no PEM certificate"),
            "{garbage}"
        );
        let missing = BackendTlsArgs {
            pulsar_ca_file: Some(dir.join("absent.pem")),
            ..Default::default()
        };
        let err = missing.pulsar().unwrap_err().to_string();
        assert!(
            err.contains("--pulsar-ca-file") && err.contains("absent.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn the_pulsar_token_comes_from_the_flag_or_the_file() {
        let dir = std::env::temp_dir().join(format!("chat-tok-{}", crate::model::new_id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("token");
        std::fs::write(&file, "abc.def.ghi\n").unwrap();
        let from_file = BackendTlsArgs {
            pulsar_token_file: Some(file.clone()),
            ..Default::default()
        };
        assert_eq!(
            from_file.pulsar_token().unwrap().as_deref(),
            Some("abc.def.ghi")
        );
        std::fs::write(&file, "  \n").unwrap();
        let err = from_file.pulsar_token().unwrap_err().to_string();
        assert!(err.contains("empty"), "{err}");
        assert_eq!(BackendTlsArgs::default().pulsar_token().unwrap(), None);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
