//! The few Secret values the operator itself uses, read at each reconcile that needs them (never
//! cached, never copied into an object): the Redis URL, user, password and CA (it reads and
//! cleans the route-table keys) and the Pulsar admin API's token and CA; and the hash of the
//! Secret data the pods read ([`pod_secrets_hash`]), which only a digest of leaves.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::ResourceExt;

use crate::builders::{secret_hash, Blueprint};
use crate::crd::{ChatCluster, SecretKeyRef};
use crate::keys::RedisTarget;
use crate::pulsar::AdminEndpoint;
use crate::{Error, Result};

/// The admin API of `cc`'s broker: `spec.pulsar.adminUrl`, the token `adminTokenSecretRef` (else
/// `tokenSecretRef`) names and the CA `caSecretRef` names. A named Secret or key that is missing
/// is an error that says which.
pub async fn pulsar_admin(cc: &ChatCluster, secrets: &Api<Secret>) -> Result<AdminEndpoint> {
    let pulsar = &cc.spec.pulsar;
    let token = match (&pulsar.admin_token_secret_ref, &pulsar.token_secret_ref) {
        (Some(r), _) => Some((r, "pulsar.adminTokenSecretRef")),
        (None, Some(r)) => Some((r, "pulsar.tokenSecretRef")),
        (None, None) => None,
    };
    let token = match token {
        Some((reference, field)) => {
            let bytes = value(cc, secrets, field, reference).await?;
            Some(String::from_utf8_lossy(&bytes).trim().to_owned())
        }
        None => None,
    };
    let ca_pem = match &pulsar.ca_secret_ref {
        Some(reference) => Some(value(cc, secrets, "pulsar.caSecretRef", reference).await?),
        None => None,
    };
    Ok(AdminEndpoint {
        url: pulsar.admin_url.clone(),
        token,
        ca_pem,
    })
}

/// The cluster's Redis as the gateways reach it: `spec.redis.url` or the `urlSecretRef` key, and
/// the user, password and CA keys. `Ok(None)` when the URL's Secret or key is missing (a
/// namespace being deleted); a missing credential or CA is an error.
pub async fn redis_target(cc: &ChatCluster, secrets: &Api<Secret>) -> Result<Option<RedisTarget>> {
    let redis = &cc.spec.redis;
    let url = match (&redis.url, &redis.url_secret_ref) {
        (Some(url), _) => url.clone(),
        (None, Some(reference)) => match optional(secrets, reference).await? {
            Some(bytes) => String::from_utf8_lossy(&bytes).trim().to_owned(),
            None => return Ok(None),
        },
        (None, None) => return Ok(None),
    };
    let text = |bytes: Vec<u8>| String::from_utf8_lossy(&bytes).trim().to_owned();
    let mut target = RedisTarget::plain(&url);
    if let Some(reference) = &redis.username_secret_ref {
        target.username = Some(text(
            value(cc, secrets, "redis.usernameSecretRef", reference).await?,
        ));
    }
    if let Some(reference) = &redis.password_secret_ref {
        target.password = Some(text(
            value(cc, secrets, "redis.passwordSecretRef", reference).await?,
        ));
    }
    if let Some(reference) = &redis.ca_secret_ref {
        target.ca_pem = Some(value(cc, secrets, "redis.caSecretRef", reference).await?);
    }
    Ok(Some(target))
}

/// [`secret_hash::digest`] of the Secret data `bp`'s pods read, for the pod template. A Secret
/// that does not exist counts as missing (the pods cannot start without it anyway; creating it
/// changes the hash); any other read error fails the reconcile, which must not roll the pods on a
/// hash it could not compute.
pub async fn pod_secrets_hash(bp: &Blueprint<'_>, secrets: &Api<Secret>) -> Result<String> {
    let uses = bp.secret_uses();
    let mut found = BTreeMap::new();
    for name in secret_hash::secret_names(&uses) {
        if let Some(secret) = secrets.get_opt(&name).await? {
            found.insert(name, secret);
        }
    }
    Ok(secret_hash::digest(&uses, &found))
}

/// The bytes of the Secret key `reference` names, `None` when the Secret or key is missing.
async fn optional(secrets: &Api<Secret>, reference: &SecretKeyRef) -> Result<Option<Vec<u8>>> {
    let Some(secret) = secrets.get_opt(&reference.name).await? else {
        return Ok(None);
    };
    Ok(secret
        .data
        .and_then(|mut data| data.remove(&reference.key))
        .map(|bytes| bytes.0))
}

/// The bytes of the Secret key `reference` names (`field` is the spec field, for the error).
async fn value(
    cc: &ChatCluster,
    secrets: &Api<Secret>,
    field: &str,
    reference: &SecretKeyRef,
) -> Result<Vec<u8>> {
    let missing = || Error::SecretMissing {
        cluster: cc.name_any(),
        field: field.to_owned(),
        secret: reference.name.clone(),
        key: reference.key.clone(),
    };
    optional(secrets, reference).await?.ok_or_else(missing)
}
