//! The network configuration the runtime writes on stdin: sart's netconf (`type: sart-cni`,
//! `endpoint`, `timeout`) plus what the runtime adds (`prevResult`, `runtimeConfig`, the
//! GC attachment list).

use std::time::Duration;

use serde_json::Value;

use crate::error::{CniError, Code};
use crate::version::{SUPPORTED, Version};

/// Where the agent serves CNI when the netconf does not say.
pub const DEFAULT_ENDPOINT: &str = "unix:///run/sart/cni.sock";
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// An attachment the runtime still uses (GC's `cni.dev/valid-attachments`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attachment {
    pub container_id: String,
    pub ifname: String,
}

#[derive(Clone, Debug, PartialEq)]
pub struct NetConf {
    pub version: Version,
    pub name: String,
    pub endpoint: String,
    pub timeout: Duration,
    pub prev_result: Option<Value>,
    pub runtime_config: Option<Value>,
    /// GC only: `None` when the runtime sent no list (then nothing may be collected).
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The configuration as received, for the agent.
    pub raw: Value,
}

/// The `cniVersion` as written, for error replies even when the rest cannot be read.
pub fn raw_version(stdin: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(stdin).ok()?;
    v.get("cniVersion")?.as_str().map(str::to_owned)
}

fn decoding(msg: String) -> CniError {
    CniError::new(Code::Decoding, msg)
}

fn invalid(msg: String) -> CniError {
    CniError::new(Code::InvalidConfig, msg)
}

/// Only the version (what VERSION reads).
pub fn version(stdin: &[u8]) -> Result<Version, CniError> {
    let v: Value = serde_json::from_slice(stdin)
        .map_err(|e| decoding(format!("network configuration is not JSON: {e}")))?;
    let s = v
        .get("cniVersion")
        .and_then(Value::as_str)
        .ok_or_else(|| invalid("cniVersion missing".into()))?;
    Version::parse(s).ok_or_else(|| {
        let ours: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
        CniError::new(Code::IncompatibleVersion, "incompatible CNI version").details(format!(
            "config is {s:?}, sart-cni supports {}",
            ours.join(", ")
        ))
    })
}

pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
    let version = version(stdin)?;
    let v: Value = serde_json::from_slice(stdin)
        .map_err(|e| decoding(format!("network configuration is not JSON: {e}")))?;
    let string = |k: &str| -> Result<Option<String>, CniError> {
        match v.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(decoding(format!("{k}: expected a string, got {other}"))),
        }
    };
    let name = string("name")?.ok_or_else(|| invalid("name missing".into()))?;
    match string("type")?.as_deref() {
        Some("sart-cni") => {}
        Some(t) => return Err(invalid(format!("type is {t:?}, this plugin is sart-cni"))),
        None => return Err(invalid("type missing".into())),
    }
    let endpoint = string("endpoint")?.unwrap_or_else(|| DEFAULT_ENDPOINT.into());
    check_endpoint(&endpoint)?;
    let timeout = match v.get("timeout") {
        None | Some(Value::Null) => DEFAULT_TIMEOUT,
        Some(t) => match t.as_u64() {
            Some(0) | None => {
                return Err(invalid(format!(
                    "timeout {t}: expected whole seconds, more than 0"
                )));
            }
            Some(s) => Duration::from_secs(s),
        },
    };
    // Runtimes since libcni 1.2.3 send both names; older 1.1.0 ones only the first.
    let attachments = v
        .get("cni.dev/valid-attachments")
        .or_else(|| v.get("cni.dev/attachments"))
        .map(attachments)
        .transpose()?;
    Ok(NetConf {
        version,
        name,
        endpoint,
        timeout,
        prev_result: v.get("prevResult").filter(|p| !p.is_null()).cloned(),
        runtime_config: v.get("runtimeConfig").filter(|p| !p.is_null()).cloned(),
        valid_attachments: attachments,
        raw: v,
    })
}

fn attachments(v: &Value) -> Result<Vec<Attachment>, CniError> {
    let items = v
        .as_array()
        .ok_or_else(|| decoding("cni.dev/valid-attachments: expected a list".into()))?;
    items
        .iter()
        .map(|a| {
            let field = |k: &str| {
                a.get(k)
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .ok_or_else(|| {
                        decoding(format!("cni.dev/valid-attachments: an entry without {k}"))
                    })
            };
            Ok(Attachment {
                container_id: field("containerID")?,
                ifname: field("ifname")?,
            })
        })
        .collect()
}

/// The agent is reached on a unix socket or on loopback: pod set-up is never asked over the
/// network (sart's netconf used `http://localhost:6000`, which still works).
fn check_endpoint(e: &str) -> Result<(), CniError> {
    if let Some(path) = proto::unix_path(e) {
        if path.starts_with('/') {
            return Ok(());
        }
        return Err(invalid(format!(
            "endpoint {e:?}: a unix socket needs an absolute path"
        )));
    }
    let host = e
        .strip_prefix("http://")
        .or_else(|| e.strip_prefix("https://"))
        .map(|rest| rest.split('/').next().unwrap_or_default())
        .ok_or_else(|| {
            invalid(format!(
                "endpoint {e:?}: expected unix:///path or http://127.0.0.1:port"
            ))
        })?;
    if proto::is_loopback_host(proto::split_authority(host).0) {
        Ok(())
    } else {
        Err(invalid(format!(
            "endpoint {e:?}: the agent is reached on a unix socket or a loopback address only"
        )))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn conf(v: Value) -> Result<NetConf, CniError> {
        parse(v.to_string().as_bytes())
    }

    #[test]
    fn sart_netconf_and_defaults() {
        // sart's own netconf.
        let c = conf(
            json!({"cniVersion": "1.0.0", "name": "sart-network", "type": "sart-cni",
            "endpoint": "http://localhost:6000", "timeout": 60}),
        )
        .unwrap();
        assert_eq!(
            (c.version, c.timeout),
            (Version::V1_0_0, Duration::from_secs(60))
        );
        let c = conf(
            json!({"cniVersion": "0.3.1", "name": "n", "type": "sart-cni",
            "prevResult": {"ips": []}}),
        )
        .unwrap();
        assert_eq!(c.endpoint, DEFAULT_ENDPOINT);
        assert!(c.prev_result.is_some() && c.valid_attachments.is_none());
    }

    #[test]
    fn refusals_with_the_right_codes() {
        let code = |v: Value| conf(v).unwrap_err().code;
        assert_eq!(
            code(json!({"cniVersion": "0.2.0", "name": "n", "type": "sart-cni"})),
            Code::IncompatibleVersion
        );
        assert_eq!(parse(b"{not json").unwrap_err().code, Code::Decoding);
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "type": "sart-cni"})),
            Code::InvalidConfig
        );
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": "n", "type": "bridge"})),
            Code::InvalidConfig
        );
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": 7, "type": "sart-cni"})),
            Code::Decoding
        );
        for bad in [
            "http://10.0.0.1:6000",
            "tcp://localhost:1",
            "unix:relative.sock",
        ] {
            assert_eq!(
                code(
                    json!({"cniVersion": "1.0.0", "name": "n", "type": "sart-cni", "endpoint": bad})
                ),
                Code::InvalidConfig,
                "{bad}"
            );
        }
        for good in [
            "unix:///run/sart/cni.sock",
            "http://127.0.0.1:6000",
            "http://[::1]:6000",
        ] {
            conf(json!({"cniVersion": "1.0.0", "name": "n", "type": "sart-cni", "endpoint": good}))
                .unwrap();
        }
        assert_eq!(
            code(json!({"cniVersion": "1.0.0", "name": "n", "type": "sart-cni", "timeout": 0})),
            Code::InvalidConfig
        );
    }

    #[test]
    fn gc_attachments_under_either_name() {
        let list = json!([{"containerID": "a", "ifname": "eth0"}]);
        for key in ["cni.dev/valid-attachments", "cni.dev/attachments"] {
            let mut v = json!({"cniVersion": "1.1.0", "name": "n", "type": "sart-cni"});
            v[key] = list.clone();
            let c = conf(v).unwrap();
            assert_eq!(
                c.valid_attachments,
                Some(vec![Attachment {
                    container_id: "a".into(),
                    ifname: "eth0".into()
                }])
            );
        }
        let bad = json!({"cniVersion": "1.1.0", "name": "n", "type": "sart-cni",
            "cni.dev/valid-attachments": [{"ifname": "eth0"}]});
        assert_eq!(conf(bad).unwrap_err().code, Code::Decoding);
    }
}
