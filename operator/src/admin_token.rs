//! The admin token of a ChatCluster's gateways: the Secret holding it is created when the spec
//! names none (random, owned by the ChatCluster, never rewritten), and read back for the
//! operator's own drain and status calls.

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

use crate::builders::Blueprint;
use crate::Result;

/// The token the gateways of `bp` require on their admin port, creating its Secret first when
/// the operator owns it. `None` when the Secret the spec names is missing (the pods cannot start
/// then either; the calls go without a token and fail until it exists).
pub async fn ensure(bp: &Blueprint<'_>, secrets: &Api<Secret>) -> Result<Option<String>> {
    let reference = bp.admin_token_ref();
    if let Some(token) = read(secrets, &reference.name, &reference.key).await? {
        return Ok(Some(token));
    }
    if !bp.generates_admin_token() {
        warn!(secret = %reference.name, key = %reference.key, "the admin token Secret the spec names is missing");
        return Ok(None);
    }
    let token = hex_token();
    let mut secret = bp.admin_token_secret(&token);
    // `data`, not `stringData`: what is read back is the same either way.
    secret.data = secret.string_data.take().map(|m| {
        m.into_iter()
            .map(|(k, v)| (k, ByteString(v.into_bytes())))
            .collect()
    });
    match secrets.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            info!(secret = %reference.name, "created the admin token Secret");
            Ok(Some(token))
        }
        // Created meanwhile (another reconcile, a previous operator): that one is the token.
        Err(kube::Error::Api(status)) if status.code == 409 => {
            read(secrets, &reference.name, &reference.key).await
        }
        Err(err) => Err(err.into()),
    }
}

async fn read(secrets: &Api<Secret>, name: &str, key: &str) -> Result<Option<String>> {
    let Some(secret) = secrets.get_opt(name).await? else {
        return Ok(None);
    };
    let from_data = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).trim().to_owned());
    let from_string = || {
        secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key))
            .map(|s| s.trim().to_owned())
    };
    Ok(from_data.or_else(from_string).filter(|t| !t.is_empty()))
}

/// 32 random bytes, hex.
fn hex_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}
