//! The ADD result, kept version-neutral and written in the version the configuration asks for
//! (spec section "Success"): before 1.0.0 every address says `"version": "4" | "6"`; interface
//! `mtu` is a 1.1.0 field. Results read back (`prevResult`) from any version.

use std::net::IpAddr;

use ipnet::IpNet;
use serde_json::{Map, Value, json};

use crate::error::{CniError, Code};
use crate::version::Version;

/// An optional address as results write it: absent or empty is none.
pub(crate) fn optional_ip(s: Option<&str>) -> Result<Option<IpAddr>, String> {
    match s {
        None | Some("") => Ok(None),
        Some(g) => g
            .parse()
            .map(Some)
            .map_err(|_| format!("bad address {g:?}")),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Interface {
    pub name: String,
    pub mac: Option<String>,
    /// The netns path for a pod-side interface; `None` on the host.
    pub sandbox: Option<String>,
    pub mtu: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    /// Index into `interfaces`.
    pub interface: Option<usize>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    pub dst: IpNet,
    pub gw: Option<IpAddr>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    /// Passed through as given.
    pub dns: Option<Value>,
}

impl CniResult {
    pub fn to_json(&self, v: Version) -> Value {
        let interfaces: Vec<Value> = self
            .interfaces
            .iter()
            .map(|i| {
                let mut o = Map::new();
                o.insert("name".into(), i.name.clone().into());
                if let Some(m) = &i.mac {
                    o.insert("mac".into(), m.clone().into());
                }
                if let Some(s) = &i.sandbox {
                    o.insert("sandbox".into(), s.clone().into());
                }
                if let (Some(m), true) = (i.mtu, v.has_1_1_fields()) {
                    o.insert("mtu".into(), m.into());
                }
                Value::Object(o)
            })
            .collect();
        let ips: Vec<Value> = self
            .ips
            .iter()
            .map(|ip| {
                let mut o = Map::new();
                if v.ips_have_version() {
                    let fam = if ip.address.addr().is_ipv4() {
                        "4"
                    } else {
                        "6"
                    };
                    o.insert("version".into(), fam.into());
                }
                o.insert("address".into(), ip.address.to_string().into());
                if let Some(g) = ip.gateway {
                    o.insert("gateway".into(), g.to_string().into());
                }
                if let Some(i) = ip.interface {
                    o.insert("interface".into(), i.into());
                }
                Value::Object(o)
            })
            .collect();
        let routes: Vec<Value> = self
            .routes
            .iter()
            .map(|r| match r.gw {
                Some(gw) => json!({"dst": r.dst.to_string(), "gw": gw.to_string()}),
                None => json!({"dst": r.dst.to_string()}),
            })
            .collect();
        let mut out = json!({
            "cniVersion": v.as_str(),
            "interfaces": interfaces,
            "ips": ips,
            "routes": routes,
        });
        if let Some(d) = &self.dns {
            out["dns"] = d.clone();
        } else {
            out["dns"] = json!({});
        }
        out
    }

    /// Reads a result of any supported version (a `prevResult`).
    pub fn from_json(v: &Value) -> Result<CniResult, CniError> {
        let bad = |what: String| CniError::new(Code::Decoding, format!("prevResult: {what}"));
        let list = |k: &str| -> Result<Vec<Value>, CniError> {
            match v.get(k) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Array(a)) => Ok(a.clone()),
                Some(o) => Err(bad(format!("{k} is not a list: {o}"))),
            }
        };
        let text = |o: &Value, k: &str| o.get(k).and_then(Value::as_str).map(str::to_owned);
        let interfaces = list("interfaces")?
            .iter()
            .map(|i| {
                Ok(Interface {
                    name: text(i, "name")
                        .ok_or_else(|| bad("an interface without a name".into()))?,
                    mac: text(i, "mac"),
                    sandbox: text(i, "sandbox").filter(|s| !s.is_empty()),
                    mtu: i
                        .get("mtu")
                        .and_then(Value::as_u64)
                        .and_then(|m| u32::try_from(m).ok()),
                })
            })
            .collect::<Result<_, CniError>>()?;
        let ips = list("ips")?
            .iter()
            .map(|i| {
                let address = text(i, "address")
                    .and_then(|a| a.parse::<IpNet>().ok())
                    .ok_or_else(|| bad(format!("bad address in {i}")))?;
                let gateway = optional_ip(text(i, "gateway").as_deref()).map_err(bad)?;
                let interface = i
                    .get("interface")
                    .and_then(Value::as_u64)
                    .and_then(|n| usize::try_from(n).ok());
                Ok(IpConfig {
                    address,
                    gateway,
                    interface,
                })
            })
            .collect::<Result<_, CniError>>()?;
        let routes = list("routes")?
            .iter()
            .map(|r| {
                let dst = text(r, "dst")
                    .and_then(|d| d.parse::<IpNet>().ok())
                    .ok_or_else(|| bad(format!("bad route {r}")))?;
                let gw = optional_ip(text(r, "gw").as_deref()).map_err(bad)?;
                Ok(Route { dst, gw })
            })
            .collect::<Result<_, CniError>>()?;
        Ok(CniResult {
            interfaces,
            ips,
            routes,
            dns: v
                .get("dns")
                .filter(|d| d.as_object().is_some_and(|o| !o.is_empty()))
                .cloned(),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "veth1a2b3c".into(),
                    mac: Some("ee:ee:ee:ee:ee:ee".into()),
                    sandbox: None,
                    mtu: Some(1500),
                },
                Interface {
                    name: "eth0".into(),
                    mac: Some("02:00:00:00:00:01".into()),
                    sandbox: Some("/run/netns/p".into()),
                    mtu: Some(1500),
                },
            ],
            ips: vec![
                IpConfig {
                    address: "100.64.0.5/32".parse().unwrap(),
                    gateway: Some("169.254.1.1".parse().unwrap()),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00:64::5/128".parse().unwrap(),
                    gateway: None,
                    interface: Some(1),
                },
            ],
            routes: vec![Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                gw: Some("169.254.1.1".parse().unwrap()),
            }],
            dns: None,
        }
    }

    #[test]
    fn shaped_per_version() {
        let r = sample();
        let old = r.to_json(Version::V0_3_1);
        assert_eq!(old["cniVersion"], "0.3.1");
        assert_eq!(old["ips"][0]["version"], "4");
        assert_eq!(old["ips"][1]["version"], "6");
        assert!(old["interfaces"][0].get("mtu").is_none());
        assert!(old["interfaces"][0].get("sandbox").is_none());
        let v1 = r.to_json(Version::V1_0_0);
        assert!(v1["ips"][0].get("version").is_none());
        assert!(v1["interfaces"][1].get("mtu").is_none());
        let v11 = r.to_json(Version::V1_1_0);
        assert_eq!(v11["interfaces"][1]["mtu"], 1500);
        assert_eq!(
            v11["routes"][0],
            json!({"dst": "0.0.0.0/0", "gw": "169.254.1.1"})
        );
    }

    #[test]
    fn round_trip_through_every_version() {
        for v in crate::version::SUPPORTED {
            let mut want = sample();
            if !v.has_1_1_fields() {
                for i in &mut want.interfaces {
                    i.mtu = None;
                }
            }
            assert_eq!(
                CniResult::from_json(&sample().to_json(v)).unwrap(),
                want,
                "{v}"
            );
        }
        let e = CniResult::from_json(&json!({"ips": [{"address": "nope"}]})).unwrap_err();
        assert_eq!(e.code, Code::Decoding);
    }
}
