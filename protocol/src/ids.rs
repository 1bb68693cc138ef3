//! Validated identifiers. Each rule is written once, here: a value of one of these types has
//! passed it, so code that holds one never checks again.
//!
//! | type | rule |
//! |---|---|
//! | [`UserId`], [`GroupId`], [`MessageId`] | 1–128 bytes |
//! | [`DeviceId`] | 1–64 characters of `[A-Za-z0-9._-]` |
//! | [`ConversationId`] | any string; made by [`ConversationId::direct`] / [`ConversationId::group`] |

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::limits::{MAX_DEVICE_BYTES, MAX_ID_BYTES};

/// A value broke an id's rule; `Display` says the rule (`must be 1-128 bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdError {
    rule: &'static str,
}

impl fmt::Display for IdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.rule)
    }
}

impl std::error::Error for IdError {}

const ID_RULE: IdError = IdError {
    rule: "must be 1-128 bytes",
};
const DEVICE_RULE: IdError = IdError {
    rule: "must be 1-64 characters of [A-Za-z0-9._-]",
};

fn check_id(s: &str) -> Result<(), IdError> {
    if s.is_empty() || s.len() > MAX_ID_BYTES {
        return Err(ID_RULE);
    }
    Ok(())
}

fn check_device(s: &str) -> Result<(), IdError> {
    let ok = (1..=MAX_DEVICE_BYTES).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(DEVICE_RULE)
    }
}

fn check_any(_: &str) -> Result<(), IdError> {
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $check:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks `s` against the rule.
            pub fn parse(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                $check(&s)?;
                Ok(Self(s))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id's text, owned.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;
            fn try_from(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_type!(
    /// A user id: the token's `sub`, the seeds' `openid`.
    UserId,
    check_id
);
id_type!(
    /// A group id.
    GroupId,
    check_id
);
id_type!(
    /// A message id. The server makes them as 32 lowercase hex characters; clients may send any
    /// id of 1–128 bytes in an ACK (an unknown one is 404).
    MessageId,
    check_id
);
id_type!(
    /// A device id of one user (the `device` of the upgrade).
    DeviceId,
    check_device
);
id_type!(
    /// A conversation: `dm:<lower user>:<higher user>` or `grp:<group id>`. Clients may send any
    /// string in SYNC; one that names no conversation of theirs is refused by the store (403).
    ConversationId,
    check_any
);

impl ConversationId {
    /// The conversation of two users: the same id whoever sends. User ids are escaped so that
    /// `a:b` + `c` and `a` + `b:c` never collide.
    pub fn direct(a: &UserId, b: &UserId) -> Self {
        let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
        Self(format!(
            "dm:{}:{}",
            escape(lo.as_str()),
            escape(hi.as_str())
        ))
    }

    /// The conversation of a group.
    pub fn group(group: &GroupId) -> Self {
        Self(format!("grp:{group}"))
    }

    /// Is it a group's conversation?
    pub fn is_group(&self) -> bool {
        self.0.starts_with("grp:")
    }

    /// The two users of a 1:1 conversation (`None` for a group's, or an id that is not one).
    pub fn direct_users(&self) -> Option<(UserId, UserId)> {
        let (a, b) = self.0.strip_prefix("dm:")?.split_once(':')?;
        Some((
            UserId::parse(unescape(a)?).ok()?,
            UserId::parse(unescape(b)?).ok()?,
        ))
    }
}

fn escape(id: &str) -> String {
    id.replace('%', "%25").replace(':', "%3A")
}

/// [`escape`] undone; `None` when `id` could not have come from it.
fn unescape(id: &str) -> Option<String> {
    if id.contains(':') {
        return None;
    }
    let unescaped = id.replace("%3A", ":").replace("%25", "%");
    (escape(&unescaped) == id).then_some(unescaped)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    #[test]
    fn ids_are_1_to_128_bytes() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("x".repeat(129)).is_err());
        assert!(UserId::parse("x".repeat(128)).is_ok());
        assert_eq!(
            GroupId::parse("").unwrap_err().to_string(),
            "must be 1-128 bytes"
        );
    }

    #[test]
    fn devices_are_a_restricted_charset() {
        assert!(DeviceId::parse("phone-1.a_b").is_ok());
        for bad in ["", "a b", "é", &"d".repeat(65)] {
            assert!(DeviceId::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deserializing_checks_the_rule() {
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert_eq!(serde_json::from_str::<UserId>("\"bob\"").unwrap(), "bob");
    }

    #[test]
    fn a_direct_id_names_its_two_users() {
        for (a, b) in [("alice", "bob"), ("a:b", "c%3A"), ("x", "x"), ("%", ":")] {
            let id = ConversationId::direct(&user(a), &user(b));
            let (lo, hi) = id.direct_users().unwrap();
            let mut want = [a, b];
            want.sort();
            assert_eq!([lo.as_str(), hi.as_str()], want, "{id}");
        }
        for other in [
            "grp:g1", "dm:alice", "dm:a:b:c", "dm:%3a:b", "dm::b", "chat",
        ] {
            let id = ConversationId::parse(other).unwrap();
            assert_eq!(id.direct_users(), None, "{other}");
        }
    }

    #[test]
    fn direct_ids_are_symmetric_and_unambiguous() {
        assert_eq!(
            ConversationId::direct(&user("bob"), &user("alice")),
            ConversationId::direct(&user("alice"), &user("bob"))
        );
        assert_eq!(
            ConversationId::direct(&user("bob"), &user("alice")).as_str(),
            "dm:alice:bob"
        );
        assert_ne!(
            ConversationId::direct(&user("a:b"), &user("c")),
            ConversationId::direct(&user("a"), &user("b:c"))
        );
        assert!(ConversationId::group(&GroupId::parse("g").unwrap()).is_group());
    }
}
