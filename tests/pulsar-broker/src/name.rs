//! Topic names. Clients may send `my-topic`, `tenant/ns/my-topic` or the full
//! `persistent://tenant/ns/my-topic`; the broker keys everything by the full form, as Pulsar does.

use std::fmt;

use crate::error::{Error, Result};

/// Tenant and namespace of a topic given without them (Pulsar's defaults).
const DEFAULT_NAMESPACE: (&str, &str) = ("public", "default");

/// A parsed, normalised topic name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicName {
    /// `persistent` or `non-persistent`.
    pub domain: String,
    /// The tenant.
    pub tenant: String,
    /// The namespace's local name (without the tenant).
    pub namespace: String,
    /// The topic's local name.
    pub local: String,
}

impl TopicName {
    /// Parses any of the forms clients send.
    pub fn parse(name: &str) -> Result<Self> {
        let invalid = || Error::InvalidTopicName(name.to_owned());
        let (domain, rest) = match name.split_once("://") {
            Some((domain @ ("persistent" | "non-persistent"), rest)) => (domain, rest),
            Some(_) => return Err(invalid()),
            None => ("persistent", name),
        };
        let parts: Vec<&str> = rest.split('/').collect();
        let (tenant, namespace, local) = match parts[..] {
            [local] if domain == "persistent" && !name.contains("://") => {
                (DEFAULT_NAMESPACE.0, DEFAULT_NAMESPACE.1, local)
            }
            [tenant, namespace, local] => (tenant, namespace, local),
            _ => return Err(invalid()),
        };
        if [tenant, namespace, local]
            .iter()
            .any(|part| part.is_empty())
        {
            return Err(invalid());
        }
        Ok(TopicName {
            domain: domain.to_owned(),
            tenant: tenant.to_owned(),
            namespace: namespace.to_owned(),
            local: local.to_owned(),
        })
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}/{}/{}",
            self.domain, self.tenant, self.namespace, self.local
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(name: &str) -> String {
        TopicName::parse(name).unwrap().to_string()
    }

    #[test]
    fn short_forms_are_normalised() {
        assert_eq!(full("t1"), "persistent://public/default/t1");
        assert_eq!(full("a/b/t1"), "persistent://a/b/t1");
        assert_eq!(full("persistent://a/b/t1"), "persistent://a/b/t1");
        assert_eq!(full("non-persistent://a/b/t1"), "non-persistent://a/b/t1");
    }

    #[test]
    fn malformed_names_are_rejected() {
        for name in [
            "",
            "a/b",
            "a//t",
            "persistent://a/b",
            "persistent://t1",
            "persistent://a/b/c/d",
            "kafka://a/b/c",
        ] {
            assert!(TopicName::parse(name).is_err(), "{name:?} accepted");
        }
    }
}
