//! Identity-provider keys: a JWKS (RFC 7517) read from a file or fetched over HTTP(S), cached,
//! refreshed every `--jwt-jwks-refresh-seconds` and when a token names a key id the cache does
//! not hold (at most once per [`MIN_REFRESH`], so made-up key ids cannot hammer the provider).
//! Only RS256 and ES256 (P-256) keys are taken; others in the set are skipped with a log line.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey};
use tokio::time::Instant;

use crate::error::{Error, Result};

/// The least time between two fetches started by unknown key ids.
pub(super) const MIN_REFRESH: Duration = Duration::from_secs(1);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// One verification key of the set.
#[derive(Clone)]
pub(super) struct Key {
    pub(super) alg: Algorithm,
    pub(super) decoding: DecodingKey,
}

enum Source {
    File(PathBuf),
    Url(String),
}

/// The cached key set and where it comes from.
pub struct Jwks {
    source: Source,
    http: reqwest::Client,
    period: Duration,
    /// Key id ("" for a key without one) → key.
    keys: RwLock<Arc<HashMap<String, Key>>>,
    /// When the set was last fetched (or tried); held while fetching, so one fetch runs at a time.
    fetched: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Keys from `location` (an `http://` or `https://` URL, else a file path), refreshed every
    /// `period`. A file that cannot be read or parsed is an error now; a URL that does not answer
    /// is logged and fetched again when a token needs it (the provider may be down while pods
    /// start).
    pub async fn load(location: &str, period: Duration) -> Result<Self> {
        let source = if location.starts_with("http://") || location.starts_with("https://") {
            Source::Url(location.to_owned())
        } else {
            Source::File(PathBuf::from(location))
        };
        let http = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| Error::internal("building the JWKS client", e))?;
        let jwks = Self {
            source,
            http,
            period,
            keys: RwLock::new(Arc::default()),
            fetched: tokio::sync::Mutex::new(None),
        };
        match (
            jwks.refresh(&mut *jwks.fetched.lock().await).await,
            &jwks.source,
        ) {
            (Ok(()), _) => {}
            (Err(e), Source::File(_)) => return Err(e),
            (Err(e), Source::Url(url)) => {
                tracing::warn!(error = %e, url, "JWKS not fetched; trying again when a token needs it")
            }
        }
        Ok(jwks)
    }

    /// The keys that may have signed a token with `kid` and `alg`: the one with that id, or
    /// every key of the algorithm when the token names none. An unknown id (or a stale set)
    /// fetches the set again first.
    pub(super) async fn keys_for(&self, kid: Option<&str>, alg: Algorithm) -> Result<Vec<Key>> {
        let found = self.lookup(kid, alg);
        let stale = self
            .fetched
            .try_lock()
            .is_ok_and(|at| at.is_none_or(|at| at.elapsed() >= self.period));
        if !found.is_empty() && !stale {
            return Ok(found);
        }
        {
            let mut fetched = self.fetched.lock().await;
            let recent = fetched.is_some_and(|at| at.elapsed() < MIN_REFRESH);
            if !recent {
                if let Err(e) = self.refresh(&mut fetched).await {
                    tracing::warn!(error = %e, "JWKS refresh failed; keeping the keys it had");
                }
            }
        }
        let found = self.lookup(kid, alg);
        if found.is_empty() {
            return Err(Error::Unauthorized(match kid {
                Some(kid) => format!("token key id {kid:?} is not in the JWKS"),
                None => format!("no {alg:?} key in the JWKS (and the token names no kid)"),
            }));
        }
        Ok(found)
    }

    fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Vec<Key> {
        let keys = self.keys.read().expect("JWKS lock").clone();
        match kid {
            Some(kid) => keys
                .get(kid)
                .filter(|k| k.alg == alg)
                .cloned()
                .into_iter()
                .collect(),
            None => keys.values().filter(|k| k.alg == alg).cloned().collect(),
        }
    }

    async fn refresh(&self, fetched: &mut Option<Instant>) -> Result<()> {
        *fetched = Some(Instant::now());
        let text = match &self.source {
            Source::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| Error::internal(format!("reading JWKS {}", path.display()), e))?,
            Source::Url(url) => {
                let response =
                    self.http
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| Error::UnavailableFrom {
                            context: format!("fetching JWKS {url}"),
                            source: e.into(),
                        })?;
                let status = response.status();
                if !status.is_success() {
                    return Err(Error::Unavailable(format!("JWKS {url} answered {status}")));
                }
                response.text().await.map_err(|e| Error::UnavailableFrom {
                    context: format!("reading JWKS {url}"),
                    source: e.into(),
                })?
            }
        };
        let set: JwkSet = serde_json::from_str(&text)
            .map_err(|e| Error::BadRequest(format!("JWKS is not a key set: {e}")))?;
        let keys = parse_set(&set);
        tracing::info!(keys = keys.len(), "JWKS loaded");
        *self.keys.write().expect("JWKS lock") = Arc::new(keys);
        Ok(())
    }
}

fn parse_set(set: &JwkSet) -> HashMap<String, Key> {
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let kid = jwk.common.key_id.clone().unwrap_or_default();
        match key(jwk) {
            Ok(key) => {
                keys.insert(kid, key);
            }
            Err(why) => tracing::info!(kid, why, "JWKS key skipped"),
        }
    }
    keys
}

/// The key of an RS256 or ES256 (P-256) JWK, its algorithm from `alg` or else from its type.
fn key(jwk: &Jwk) -> std::result::Result<Key, &'static str> {
    let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
        (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
        (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
            if ec.curve == EllipticCurve::P256 =>
        {
            Algorithm::ES256
        }
        _ => return Err("only RS256 and ES256 (P-256) keys are accepted"),
    };
    let decoding = DecodingKey::from_jwk(jwk).map_err(|_| "key parameters invalid")?;
    Ok(Key { alg, decoding })
}
