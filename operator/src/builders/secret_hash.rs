//! The content hash of the Secret data the gateway pods read, put on the pod template
//! ([`SECRETS_HASH_ANNOTATION`](super::SECRETS_HASH_ANNOTATION)) so that rotating a Secret is a
//! template change, hence a drained rollout: the pods read their Secrets only at start (env vars,
//! CA files loaded once).
//!
//! Which Secrets count is read off the built pod spec itself — every `secretKeyRef`, `secretRef`
//! and Secret volume — so a reference added to the builders (or in `spec.pod.env`) is covered
//! without a list to keep in sync. The hash mixes every value into one digest, the random admin
//! token among them, so the annotation tells nothing about a weak password on its own.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{PodSpec, Secret};
use sha2::{Digest, Sha256};

/// A piece of Secret data the pods read: a key, or (`None`) every key of the Secret.
pub type SecretUse = (String, Option<String>);

/// The Secret data `pod` reads: env `secretKeyRef`s, `envFrom` `secretRef`s and Secret volumes
/// (their `items`, or every key without them). Image pull secrets are not among them: the kubelet
/// reads those at pull time, and rotating one needs no restart.
pub fn uses(pod: &PodSpec) -> BTreeSet<SecretUse> {
    let mut uses = BTreeSet::new();
    for container in pod
        .containers
        .iter()
        .chain(pod.init_containers.iter().flatten())
    {
        for var in container.env.iter().flatten() {
            if let Some(secret) = var
                .value_from
                .as_ref()
                .and_then(|v| v.secret_key_ref.as_ref())
            {
                uses.insert((secret.name.clone(), Some(secret.key.clone())));
            }
        }
        for source in container.env_from.iter().flatten() {
            if let Some(secret) = &source.secret_ref {
                uses.insert((secret.name.clone(), None));
            }
        }
    }
    for volume in pod.volumes.iter().flatten() {
        let Some(secret) = &volume.secret else {
            continue;
        };
        let Some(name) = &secret.secret_name else {
            continue;
        };
        match &secret.items {
            Some(items) => uses.extend(
                items
                    .iter()
                    .map(|item| (name.clone(), Some(item.key.clone()))),
            ),
            None => {
                uses.insert((name.clone(), None));
            }
        }
    }
    uses
}

/// The names of the Secrets in `uses`, each once.
pub fn secret_names(uses: &BTreeSet<SecretUse>) -> BTreeSet<String> {
    uses.iter().map(|(name, _)| name.clone()).collect()
}

/// First 16 hex digits of a SHA-256 over every used value (a missing Secret or key counts as
/// missing, so its later creation changes the hash too). `secrets` holds the Secrets that exist,
/// by name.
pub fn digest(uses: &BTreeSet<SecretUse>, secrets: &BTreeMap<String, Secret>) -> String {
    let mut hasher = Sha256::new();
    for (name, key) in uses {
        let data = secrets.get(name).and_then(|s| s.data.as_ref());
        let mut feed = |key: &str, value: Option<&[u8]>| {
            // Length-prefixed fields: no two different inputs feed the same bytes.
            for part in [name.as_bytes(), key.as_bytes()] {
                hasher.update((part.len() as u64).to_be_bytes());
                hasher.update(part);
            }
            match value {
                Some(bytes) => {
                    hasher.update([1]);
                    hasher.update((bytes.len() as u64).to_be_bytes());
                    hasher.update(bytes);
                }
                None => hasher.update([0]),
            }
        };
        match (key, data) {
            (Some(key), data) => feed(key, data.and_then(|d| d.get(key)).map(|v| &v.0[..])),
            (None, Some(data)) => {
                for (key, value) in data {
                    feed(key, Some(&value.0));
                }
            }
            (None, None) => feed("", None),
        }
    }
    hex::encode(&hasher.finalize()[..8])
}
