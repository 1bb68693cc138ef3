//! ingress-nginx's annotations for a location's proxy settings: its defaults
//! (`internal/ingress/controller/config/config.go`), then the annotations the operator sets or
//! users commonly add. Unknown annotations and values the controller could not parse are
//! errors, not silently dropped.

use std::collections::BTreeMap;

use crate::translate::{Unsupported, PREFIX};

/// One location's proxy settings: ingress-nginx's defaults (`internal/ingress/controller/config`),
/// then the Ingress's annotations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// `proxy-connect-timeout`, seconds.
    pub connect_timeout: u64,
    /// `proxy-read-timeout`, seconds: how long a WebSocket may stay silent server-side.
    pub read_timeout: u64,
    /// `proxy-send-timeout`, seconds.
    pub send_timeout: u64,
    /// `proxy-body-size` → `client_max_body_size`.
    pub body_size: String,
    /// `proxy-buffering`.
    pub buffering: String,
    /// `proxy-request-buffering`.
    pub request_buffering: String,
    /// `proxy-http-version`.
    pub http_version: String,
}

impl Default for Proxy {
    fn default() -> Self {
        Self {
            connect_timeout: 5,
            read_timeout: 60,
            send_timeout: 60,
            body_size: "1m".into(),
            buffering: "off".into(),
            request_buffering: "on".into(),
            http_version: "1.1".into(),
        }
    }
}

impl Proxy {
    /// The defaults with `annotations` applied; any other `nginx.ingress.kubernetes.io/`
    /// annotation, or a value the controller would not take, is an error.
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Result<Self, Unsupported> {
        let mut proxy = Self::default();
        for (key, value) in annotations {
            let Some(name) = key.strip_prefix(PREFIX) else {
                continue; // other controllers' and our own (spec hash) annotations
            };
            let value = value.trim();
            let seconds = || {
                value.parse::<u64>().map_err(|_| {
                    Unsupported(format!(
                        "{key}: {value:?} is not whole seconds (ingress-nginx would use 60)"
                    ))
                })
            };
            let on_off = || match value {
                "on" | "off" => Ok(value.to_owned()),
                _ => Err(Unsupported(format!("{key}: {value:?} is not on or off"))),
            };
            match name {
                "proxy-connect-timeout" => proxy.connect_timeout = seconds()?,
                "proxy-read-timeout" => proxy.read_timeout = seconds()?,
                "proxy-send-timeout" => proxy.send_timeout = seconds()?,
                "proxy-body-size" if is_size(value) => proxy.body_size = value.to_owned(),
                "proxy-body-size" => {
                    return Err(Unsupported(format!(
                        "{key}: {value:?} is no nginx size (ingress-nginx would leave 1m)"
                    )))
                }
                "proxy-buffering" => proxy.buffering = on_off()?,
                "proxy-request-buffering" => proxy.request_buffering = on_off()?,
                "proxy-http-version" if value == "1.0" || value == "1.1" => {
                    proxy.http_version = value.to_owned();
                }
                _ => {
                    return Err(Unsupported(format!(
                        "{key}={value:?}: this translation does not know what ingress-nginx \
                         does with it; teach it before relying on the annotation"
                    )))
                }
            }
        }
        Ok(proxy)
    }
}

/// `^\d+[kKmMgG]?$`, the controller's check of a body size.
fn is_size(value: &str) -> bool {
    let digits = value.trim_end_matches(['k', 'K', 'm', 'M', 'g', 'G']);
    value.len() - digits.len() <= 1
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
}
