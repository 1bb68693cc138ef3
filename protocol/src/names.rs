//! Names the gateway writes and the operator reads, spelled once: the Redis keys of the route
//! table and the recent cache (DESIGN §5), the Pulsar topic of each pod's inbox, and the
//! `CHAT_*` environment variables of `chat-gateway serve` (DESIGN §2a).

/// The Redis keys of one cluster, all under its `keyPrefix`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys under `prefix` (the ChatCluster's `keyPrefix`).
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    /// The prefix itself.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{p}:route:{user}:{device}` → `{pod}|{epoch}`.
    pub fn route(&self, user: &str, device: &str) -> String {
        format!("{}:route:{user}:{device}", self.prefix)
    }

    /// `{p}:route:`, what every route key starts with (for scripts that build them).
    pub fn route_prefix(&self) -> String {
        format!("{}:route:", self.prefix)
    }

    /// `{p}:online:{user}`, the SET of the user's online devices.
    pub fn online(&self, user: &str) -> String {
        format!("{}:online:{user}", self.prefix)
    }

    /// `{p}:pod:{pod}`, the SET of `user:device` connected to that pod.
    pub fn pod(&self, pod: &str) -> String {
        format!("{}:pod:{pod}", self.prefix)
    }

    /// `{p}:seen:{user}`, when the user's last device left (ms since the epoch): its
    /// presence's `lastSeen`.
    pub fn seen(&self, user: &str) -> String {
        format!("{}:seen:{user}", self.prefix)
    }

    /// `{p}:watchers:{user}`, the HASH pod → how many times it counted itself watching the
    /// user's presence: where a change of it is sent.
    pub fn watchers(&self, user: &str) -> String {
        format!("{}:watchers:{user}", self.prefix)
    }

    /// `{p}:watching:{pod}`, the SET of users whose presence `pod` watches (to forget its
    /// counts when it is reaped).
    pub fn watching(&self, pod: &str) -> String {
        format!("{}:watching:{pod}", self.prefix)
    }

    /// `{p}:table`, the route table's birth, `{random}|{ms}`: set by the first pod that beats
    /// into an empty Redis, so every pod tells a table that lost its routes (a Redis restarted
    /// empty) from the one it registered into.
    pub fn table(&self) -> String {
        format!("{}:table", self.prefix)
    }

    /// `{p}:servers`, the ZSET pod → last-seen ms.
    pub fn servers(&self) -> String {
        format!("{}:servers", self.prefix)
    }

    /// `{p}:consuming`, the ZSET pod → last ms it reported its inbox consumer working: a pod
    /// whose consumer is down tells its own fault from a broker outage every pod shares.
    pub fn consuming(&self) -> String {
        format!("{}:consuming", self.prefix)
    }

    /// `{p}:recent:{conversation}`, the ZSET seq → message of the recent cache.
    pub fn recent(&self, conversation_id: &str) -> String {
        format!("{}:recent:{conversation_id}", self.prefix)
    }

    /// `{p}:*`, matching every key of the cluster and no other's (what deleting a ChatCluster
    /// removes, with `SCAN MATCH`): glob characters in the prefix are escaped, so a prefix like
    /// `a*` cannot match another cluster's keys.
    pub fn all_pattern(&self) -> String {
        format!("{}:*", escape_glob(&self.prefix))
    }
}

/// `text` as a literal in a Redis glob pattern: `*`, `?`, `[`, `]` and `\` escaped.
fn escape_glob(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

/// Where the pods' inboxes live on Pulsar: one topic per pod in `tenant/namespace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topics {
    /// The Pulsar tenant.
    pub tenant: String,
    /// The Pulsar namespace.
    pub namespace: String,
    /// The cluster's `keyPrefix`.
    pub key_prefix: String,
}

impl Topics {
    /// `persistent://{tenant}/{namespace}/{prefix}-pod-{pod}`.
    pub fn pod_topic(&self, pod: &str) -> String {
        format!(
            "persistent://{}/{}/{}",
            self.tenant,
            self.namespace,
            self.local_name(pod)
        )
    }

    /// `{prefix}-pod-{pod}`: the topic's name inside its namespace (what the admin API takes).
    pub fn local_name(&self, pod: &str) -> String {
        format!("{}-pod-{pod}", self.key_prefix)
    }

    /// `persistent://{tenant}/{namespace}/{prefix}-pod-`: every pod topic of this cluster starts
    /// with it (the pod name follows).
    pub fn pod_topic_prefix(&self) -> String {
        self.pod_topic("")
    }

    /// The pod whose inbox `topic` is, if it is one of this cluster's.
    pub fn pod_of<'t>(&self, topic: &'t str) -> Option<&'t str> {
        topic
            .strip_prefix(&self.pod_topic_prefix())
            .filter(|pod| !pod.is_empty())
    }

    /// The subscription a pod consumes its inbox with (exclusive): the pod's name.
    pub fn subscription(pod: &str) -> &str {
        pod
    }
}

/// The environment variables of `chat-gateway serve` (each flag reads one).
pub mod env {
    /// `--listen`.
    pub const LISTEN: &str = "CHAT_LISTEN";
    /// `--admin-listen`.
    pub const ADMIN_LISTEN: &str = "CHAT_ADMIN_LISTEN";
    /// `--data-dir`.
    pub const DATA_DIR: &str = "CHAT_DATA_DIR";
    /// `--database-url`.
    pub const DATABASE_URL: &str = "CHAT_DATABASE_URL";
    /// `--redis-url`.
    pub const REDIS_URL: &str = "CHAT_REDIS_URL";
    /// `--pulsar-url`.
    pub const PULSAR_URL: &str = "CHAT_PULSAR_URL";
    /// `--pulsar-admin-url`.
    pub const PULSAR_ADMIN_URL: &str = "CHAT_PULSAR_ADMIN_URL";
    /// `--pulsar-tenant`.
    pub const PULSAR_TENANT: &str = "CHAT_PULSAR_TENANT";
    /// `--pulsar-namespace`.
    pub const PULSAR_NAMESPACE: &str = "CHAT_PULSAR_NAMESPACE";
    /// `--pod-name`.
    pub const POD_NAME: &str = "CHAT_POD_NAME";
    /// `--key-prefix`.
    pub const KEY_PREFIX: &str = "CHAT_KEY_PREFIX";
    /// `--jwt-secret`.
    pub const JWT_SECRET: &str = "CHAT_JWT_SECRET";
    /// `--dev-login`.
    pub const DEV_LOGIN: &str = "CHAT_DEV_LOGIN";
    /// `--heartbeat-seconds`.
    pub const HEARTBEAT_SECONDS: &str = "CHAT_HEARTBEAT_SECONDS";
    /// `--timelife-seconds`.
    pub const TIMELIFE_SECONDS: &str = "CHAT_TIMELIFE_SECONDS";
    /// `--drain-seconds`.
    pub const DRAIN_SECONDS: &str = "CHAT_DRAIN_SECONDS";
    /// `--max-connections`.
    pub const MAX_CONNECTIONS: &str = "CHAT_MAX_CONNECTIONS";
    /// `--max-file-bytes`.
    pub const MAX_FILE_BYTES: &str = "CHAT_MAX_FILE_BYTES";
    /// `--recall-seconds`.
    pub const RECALL_SECONDS: &str = "CHAT_RECALL_SECONDS";
    /// `--object-store-url`.
    pub const OBJECT_STORE_URL: &str = "CHAT_OBJECT_STORE_URL";
    /// `--object-store-endpoint`.
    pub const OBJECT_STORE_ENDPOINT: &str = "CHAT_OBJECT_STORE_ENDPOINT";
    /// `--object-store-region`.
    pub const OBJECT_STORE_REGION: &str = "CHAT_OBJECT_STORE_REGION";
    /// `--object-store-access-key-id`.
    pub const OBJECT_STORE_ACCESS_KEY_ID: &str = "CHAT_OBJECT_STORE_ACCESS_KEY_ID";
    /// `--object-store-secret-access-key`.
    pub const OBJECT_STORE_SECRET_ACCESS_KEY: &str = "CHAT_OBJECT_STORE_SECRET_ACCESS_KEY";
    /// `--public-url`.
    pub const PUBLIC_URL: &str = "CHAT_PUBLIC_URL";
    /// `--unsent-file-seconds`.
    pub const UNSENT_FILE_SECONDS: &str = "CHAT_UNSENT_FILE_SECONDS";
    /// `--ack-timeout-ms`.
    pub const ACK_TIMEOUT_MS: &str = "CHAT_ACK_TIMEOUT_MS";
    /// `--ack-window`.
    pub const ACK_WINDOW: &str = "CHAT_ACK_WINDOW";
    /// `--duplicate-login`.
    pub const DUPLICATE_LOGIN: &str = "CHAT_DUPLICATE_LOGIN";
    /// `--rate-limit`.
    pub const RATE_LIMIT: &str = "CHAT_RATE_LIMIT";
    /// `--rate-burst`.
    pub const RATE_BURST: &str = "CHAT_RATE_BURST";
    /// `--trusted-proxies`.
    pub const TRUSTED_PROXIES: &str = "CHAT_TRUSTED_PROXIES";
    /// `--store-commit-interval-ms`.
    pub const STORE_COMMIT_INTERVAL_MS: &str = "CHAT_STORE_COMMIT_INTERVAL_MS";
    /// `--log-json`.
    pub const LOG_JSON: &str = "CHAT_LOG_JSON";
    /// `--offline-webhook-url`.
    pub const OFFLINE_WEBHOOK_URL: &str = "CHAT_OFFLINE_WEBHOOK_URL";
    /// `--offline-webhook-secret`.
    pub const OFFLINE_WEBHOOK_SECRET: &str = "CHAT_OFFLINE_WEBHOOK_SECRET";
    /// `--offline-webhook-retry-seconds`.
    pub const OFFLINE_WEBHOOK_RETRY_SECONDS: &str = "CHAT_OFFLINE_WEBHOOK_RETRY_SECONDS";
    /// `--jwt-previous-secret`.
    pub const JWT_PREVIOUS_SECRET: &str = "CHAT_JWT_PREVIOUS_SECRET";
    /// `--service-jwt-secret`.
    pub const SERVICE_JWT_SECRET: &str = "CHAT_SERVICE_JWT_SECRET";
    /// `--jwt-jwks`.
    pub const JWT_JWKS: &str = "CHAT_JWT_JWKS";
    /// `--jwt-issuer`.
    pub const JWT_ISSUER: &str = "CHAT_JWT_ISSUER";
    /// `--jwt-audience`.
    pub const JWT_AUDIENCE: &str = "CHAT_JWT_AUDIENCE";
    /// `--allowed-origins`.
    pub const ALLOWED_ORIGINS: &str = "CHAT_ALLOWED_ORIGINS";
    /// `--admin-token`.
    pub const ADMIN_TOKEN: &str = "CHAT_ADMIN_TOKEN";
    /// `--offline-webhook-ca-file`.
    pub const OFFLINE_WEBHOOK_CA_FILE: &str = "CHAT_OFFLINE_WEBHOOK_CA_FILE";
    /// `--redis-username`.
    pub const REDIS_USERNAME: &str = "CHAT_REDIS_USERNAME";
    /// `--redis-password`.
    pub const REDIS_PASSWORD: &str = "CHAT_REDIS_PASSWORD";
    /// `--redis-ca-file`.
    pub const REDIS_CA_FILE: &str = "CHAT_REDIS_CA_FILE";
    /// `--pulsar-token`.
    pub const PULSAR_TOKEN: &str = "CHAT_PULSAR_TOKEN";
    /// `--pulsar-ca-file`.
    pub const PULSAR_CA_FILE: &str = "CHAT_PULSAR_CA_FILE";
    /// libpq's CA file for `sslmode=verify-ca|verify-full`, which sqlx reads too (the gateway's
    /// `--database-url` and `migrate` alike).
    pub const PG_SSL_ROOT_CERT: &str = "PGSSLROOTCERT";
}

/// The WebSocket subprotocol of this protocol: a client may offer it with its token as a second
/// one (`Sec-WebSocket-Protocol: chatcluster.v1, bearer.<JWT>`), and the server selects it.
pub const SUBPROTOCOL: &str = "chatcluster.v1";
/// The prefix of a token offered as a subprotocol (`bearer.<JWT>`).
pub const BEARER_SUBPROTOCOL_PREFIX: &str = "bearer.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_design() {
        let k = Keys::new("demo");
        assert_eq!(k.route("bob", "phone"), "demo:route:bob:phone");
        assert!(k.route("bob", "phone").starts_with(&k.route_prefix()));
        assert_eq!(k.online("bob"), "demo:online:bob");
        assert_eq!(k.pod("gw-1"), "demo:pod:gw-1");
        assert_eq!(k.servers(), "demo:servers");
        assert_eq!(k.recent("dm:a:b"), "demo:recent:dm:a:b");
        assert_eq!(k.all_pattern(), "demo:*");
    }

    #[test]
    fn glob_characters_in_the_prefix_are_literal_in_the_pattern() {
        assert_eq!(
            Keys::new("a*b?[c]\\").all_pattern(),
            "a\\*b\\?\\[c\\]\\\\:*"
        );
    }

    #[test]
    fn topics_follow_the_design() {
        let t = Topics {
            tenant: "public".into(),
            namespace: "chat".into(),
            key_prefix: "demo".into(),
        };
        let topic = t.pod_topic("demo-gateway-2");
        assert_eq!(topic, "persistent://public/chat/demo-pod-demo-gateway-2");
        assert_eq!(t.local_name("p0"), "demo-pod-p0");
        assert_eq!(t.pod_of(&topic), Some("demo-gateway-2"));
        assert_eq!(t.pod_of("persistent://public/chat/other-pod-x"), None);
        assert_eq!(t.pod_of(&t.pod_topic_prefix()), None);
    }
}
