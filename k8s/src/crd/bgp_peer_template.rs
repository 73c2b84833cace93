//! BGPPeerTemplate: peer settings shared by many nodes' BGPPeers.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

#[derive(CustomResource, Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[kube(
    group = "sart.terassyi.net",
    version = "v1alpha2",
    kind = "BGPPeerTemplate",
    doc = "Peer settings shared by the BGPPeers of many nodes.",
    printcolumn = r#"{"name":"AGE","type":"date","description":"Date from created","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BGPPeerTemplateSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asn: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addr: Option<String>,
    #[serde(flatten)]
    pub settings: PeerSettings,
}

// What a BGPPeer and a BGPPeerTemplate both set about a session, besides the peer's AS and
// address. (Not a doc comment: flattened into both specs, it would become their description.)
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Vec<String>>,
    /// Seconds: 0 (no keepalives) or 3-65535 (RFC 4271 §4.2); default 90.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self == 0 || (self >= 3 && self <= 65535)", "message": "must be 0 or 3-65535 (RFC 4271 §4.2)"}]))]
    pub hold_time: Option<u32>,
    /// Seconds, at most a third of the hold time; default a third of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self <= 21845", "message": "at most 21845 s, a third of the largest hold time"}]))]
    pub keepalive_time: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<Vec<String>>,
    /// TCP MD5 password (RFC 2385), read by the node's agent from this Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<PasswordSecretRef>,
    /// Graceful restart (RFC 4724) with the peer; present = enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graceful_restart: Option<GracefulRestartSpec>,
    /// A BFD session (RFC 5880/5881) tied to the BGP session; present = enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bfd: Option<BfdSpec>,
    /// A limit on the routes accepted from the peer; absent: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_prefix: Option<MaxPrefixSpec>,
    /// Also announce to this peer the routes learned from the node's other peers. Default
    /// false: the node announces only its own pod blocks and Service addresses, and is never
    /// a transit path between its peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub announce_learned: Option<bool>,
    /// GTSM (RFC 5082): BGP packets sent with TTL 255 and only those that arrive with 255
    /// taken, so that only a directly connected peer can reach the session (the peer must have
    /// it too: FRR `ttl-security hops 1`, BIRD `ttl security on`). Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_security: Option<bool>,
    /// Which of the peer's routes the node accepts: the first rule that matches decides, a
    /// route no rule matches is refused. Absent or empty: every route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub import_prefixes: Option<Vec<PrefixRuleSpec>>,
}

impl PeerSettings {
    /// These settings, with `base`'s where these set none.
    pub fn or(self, base: PeerSettings) -> PeerSettings {
        PeerSettings {
            capabilities: self.capabilities.or(base.capabilities),
            hold_time: self.hold_time.or(base.hold_time),
            keepalive_time: self.keepalive_time.or(base.keepalive_time),
            groups: self.groups.or(base.groups),
            password_secret_ref: self.password_secret_ref.or(base.password_secret_ref),
            graceful_restart: self.graceful_restart.or(base.graceful_restart),
            bfd: self.bfd.or(base.bfd),
            max_prefix: self.max_prefix.or(base.max_prefix),
            announce_learned: self.announce_learned.or(base.announce_learned),
            ttl_security: self.ttl_security.or(base.ttl_security),
            import_prefixes: self.import_prefixes.or(base.import_prefixes),
        }
    }
}

/// Where a peer's TCP MD5 password is: a key of a Secret.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordSecretRef {
    pub name: String,
    /// Default: the namespace the agent reads passwords from (`--password-namespace`,
    /// `sart-bgp-secrets` in the manifests), the only one it may name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Default: `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

impl PasswordSecretRef {
    /// The Secret's namespace, `default` when the reference names none.
    pub fn namespace_or<'a>(&'a self, default: &'a str) -> &'a str {
        self.namespace.as_deref().unwrap_or(default)
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or("password")
    }
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct GracefulRestartSpec {
    /// Seconds (1-4095) the peer keeps our routes while we restart; default 120.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_time: Option<u32>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BfdSpec {
    /// Transmit and receive interval in milliseconds (10-60000); default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_ms: Option<u32>,
    /// Detect multiplier (1-255); default 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiplier: Option<u32>,
    /// Multihop BFD (RFC 5883, UDP 4784) for a peer that is not directly connected, such as a
    /// router's loopback; FRR uses it for iBGP peers over loopbacks. Default false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multihop: Option<bool>,
    /// Sign packets and take only signed ones (RFC 5880 §6.7.4); the same at both ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<BfdAuthSpec>,
}

/// A shared key for BFD, as BIRD and Junos have it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BfdAuthSpec {
    /// `keyed-sha1` (the sequence number may repeat) or `meticulous-keyed-sha1` (it rises with
    /// every packet, so no packet can be replayed).
    #[serde(rename = "type")]
    pub auth_type: BfdAuthType,
    /// 0-255, the peer's key id for this key.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 0 && self <= 255", "message": "0-255"}]))]
    pub key_id: u32,
    /// The key, 1-20 octets, under `key` (default `password`) of a Secret in the passwords
    /// namespace.
    pub password_secret_ref: PasswordSecretRef,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
pub enum BfdAuthType {
    #[default]
    #[serde(rename = "keyed-sha1")]
    KeyedSha1,
    #[serde(rename = "meticulous-keyed-sha1")]
    MeticulousKeyedSha1,
}

impl BfdAuthType {
    pub fn method(self) -> bfd::Method {
        match self {
            BfdAuthType::KeyedSha1 => bfd::Method::KeyedSha1,
            BfdAuthType::MeticulousKeyedSha1 => bfd::Method::MeticulousKeyedSha1,
        }
    }
}

/// Past `limit` routes from the peer the session is closed with Cease / Maximum Number of
/// Prefixes Reached (RFC 4486), or only a warning is logged and counted.
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct MaxPrefixSpec {
    /// Routes accepted (after `importPrefixes`); at least 1.
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self >= 1", "message": "at least 1"}]))]
    pub limit: u32,
    /// Log and count it (`sart_bgp_max_prefix_exceeded`), keep the session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning_only: Option<bool>,
    /// Seconds before the closed session starts again: absent, after the idle hold time; 0,
    /// only on a hard reset (`sart bgp neighbor reset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self <= 86400", "message": "at most 86400 s (a day)"}]))]
    pub restart_after: Option<u32>,
}

/// One prefix-list rule, as FRR's `ip prefix-list`: `ge`/`le` bound the matched lengths
/// (neither: exactly the prefix's length).
#[derive(Clone, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PrefixRuleSpec {
    /// CIDR, e.g. 10.0.0.0/8.
    pub prefix: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self <= 128", "message": "a prefix length: at most 128"}]))]
    pub ge: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("x-kubernetes-validations" = [{"rule": "self <= 128", "message": "a prefix length: at most 128"}]))]
    pub le: Option<u32>,
    /// `permit` (default) or `deny`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<PrefixAction>,
}

#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PrefixAction {
    #[default]
    Permit,
    Deny,
}

impl PrefixAction {
    pub fn name(self) -> &'static str {
        match self {
            PrefixAction::Permit => "permit",
            PrefixAction::Deny => "deny",
        }
    }
}
