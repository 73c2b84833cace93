//! `sart-cni`: the CNI plugin the container runtime runs. A thin shim: it reads the CNI_*
//! environment and the network configuration, checks them as the CNI spec (0.3.0 to 1.1.0) asks,
//! hands the work to the node agent, and prints the answer in the configuration's version. Every
//! failure is the spec's error JSON on stdout with a non-zero exit.
//!
//! - [`env`]: the CNI_* parameters per command.
//! - [`conf`]: the network configuration (sart's netconf plus what the runtime adds).
//! - [`result`]: the ADD result, written per version.
//! - [`error`]: codes and the error JSON.

pub mod conf;
pub mod env;
pub mod error;
pub mod grpc;
pub mod result;
pub mod version;

use serde_json::json;

use conf::{Attachment, NetConf};
use env::{Command, Env};
use error::{CniError, Code};
use result::CniResult;
use version::{SUPPORTED, Version};

/// What the node agent does for each command. The real one is reached over gRPC; tests use
/// their own.
pub trait Agent {
    fn add(&self, env: &Env, conf: &NetConf) -> Result<CniResult, CniError>;
    fn del(&self, env: &Env, conf: &NetConf) -> Result<(), CniError>;
    fn check(&self, env: &Env, conf: &NetConf, prev: &CniResult) -> Result<(), CniError>;
    fn gc(&self, conf: &NetConf, valid: &[Attachment]) -> Result<(), CniError>;
    fn status(&self, conf: &NetConf) -> Result<(), CniError>;
}

/// What one invocation prints on stdout, and whether it succeeded (the exit status).
#[derive(Debug, PartialEq)]
pub struct Outcome {
    pub stdout: String,
    pub ok: bool,
}

/// One invocation: `get` reads the environment, `stdin` holds the configuration.
pub fn run(get: impl Fn(&str) -> Option<String>, stdin: &[u8], agent: &dyn Agent) -> Outcome {
    // Errors are written in the configuration's version, even one we refuse.
    let reply_version =
        conf::raw_version(stdin).unwrap_or_else(|| Version::NEWEST.as_str().to_owned());
    match dispatch(get, stdin, agent) {
        Ok(stdout) => Outcome { stdout, ok: true },
        Err(e) => Outcome {
            stdout: e.to_json(&reply_version).to_string(),
            ok: false,
        },
    }
}

fn dispatch(
    get: impl Fn(&str) -> Option<String>,
    stdin: &[u8],
    agent: &dyn Agent,
) -> Result<String, CniError> {
    let env = env::parse(get)?;
    if env.command == Command::Version {
        // The reply's version is the one asked in, when we speak it (spec "Version").
        let asked = conf::version(stdin).unwrap_or(Version::NEWEST);
        let all: Vec<&str> = SUPPORTED.iter().map(|v| v.as_str()).collect();
        return Ok(json!({"cniVersion": asked.as_str(), "supportedVersions": all}).to_string());
    }
    let conf = conf::parse(stdin)?;
    let v = conf.version;
    let too_old = |what: &str, since: &str| {
        CniError::new(
            Code::IncompatibleVersion,
            format!("{what} is not part of CNI {v}; it needs {since} or newer"),
        )
    };
    match env.command {
        Command::Add => Ok(agent.add(&env, &conf)?.to_json(v).to_string()),
        Command::Del => agent.del(&env, &conf).map(|()| String::new()),
        Command::Check => {
            if !v.has_check() {
                return Err(too_old("CHECK", "0.4.0"));
            }
            let prev = conf
                .prev_result
                .as_ref()
                .ok_or_else(|| CniError::new(Code::InvalidConfig, "CHECK needs prevResult"))?;
            let prev = CniResult::from_json(prev)?;
            agent.check(&env, &conf, &prev).map(|()| String::new())
        }
        Command::Gc => {
            if !v.has_gc_and_status() {
                return Err(too_old("GC", "1.1.0"));
            }
            // Without the list nothing is known to be stale: collect nothing.
            match &conf.valid_attachments {
                Some(valid) => agent.gc(&conf, valid).map(|()| String::new()),
                None => Ok(String::new()),
            }
        }
        Command::Status => {
            if !v.has_gc_and_status() {
                return Err(too_old("STATUS", "1.1.0"));
            }
            agent.status(&conf).map(|()| String::new())
        }
        Command::Version => Ok(String::new()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    /// Records what it was asked; answers ADD with one address.
    #[derive(Default)]
    struct Fake(RefCell<Vec<String>>);

    impl Agent for Fake {
        fn add(&self, env: &Env, _: &NetConf) -> Result<CniResult, CniError> {
            self.0
                .borrow_mut()
                .push(format!("add {:?}", env.container_id));
            Ok(CniResult {
                ips: vec![result::IpConfig {
                    address: "100.64.0.9/32".parse().unwrap(),
                    gateway: None,
                    interface: None,
                }],
                ..CniResult::default()
            })
        }
        fn del(&self, _: &Env, _: &NetConf) -> Result<(), CniError> {
            self.0.borrow_mut().push("del".into());
            Ok(())
        }
        fn check(&self, _: &Env, _: &NetConf, prev: &CniResult) -> Result<(), CniError> {
            self.0
                .borrow_mut()
                .push(format!("check {}", prev.ips.len()));
            Ok(())
        }
        fn gc(&self, _: &NetConf, valid: &[Attachment]) -> Result<(), CniError> {
            self.0.borrow_mut().push(format!("gc {}", valid.len()));
            Ok(())
        }
        fn status(&self, _: &NetConf) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn invoke(cmd: &str, conf: serde_json::Value, agent: &dyn Agent) -> Outcome {
        let env: BTreeMap<&str, &str> = [
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
        ]
        .into();
        run(
            |k| env.get(k).map(|v| v.to_string()),
            conf.to_string().as_bytes(),
            agent,
        )
    }

    fn conf(v: &str) -> serde_json::Value {
        json!({"cniVersion": v, "name": "sart-network", "type": "sart-cni"})
    }

    #[test]
    fn add_in_every_version() {
        for v in SUPPORTED {
            let out = invoke("ADD", conf(v.as_str()), &Fake::default());
            assert!(out.ok);
            let r: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
            assert_eq!(r["cniVersion"], v.as_str());
            assert_eq!(r["ips"][0].get("version").is_some(), v.ips_have_version());
        }
    }

    #[test]
    fn commands_gated_by_version() {
        let f = Fake::default();
        let out = invoke("CHECK", conf("0.3.1"), &f);
        assert!(!out.ok);
        let e: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            (e["code"].as_u64(), e["cniVersion"].as_str()),
            (Some(1), Some("0.3.1"))
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&invoke("GC", conf("1.0.0"), &f).stdout)
                .unwrap()["code"],
            1
        );
        // CHECK reads prevResult; GC without a list collects nothing.
        let mut c = conf("0.4.0");
        c["prevResult"] =
            json!({"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "100.64.0.9/32"}]});
        assert!(invoke("CHECK", c, &f).ok);
        assert!(invoke("GC", conf("1.1.0"), &f).ok);
        let mut c = conf("1.1.0");
        c["cni.dev/valid-attachments"] = json!([{"containerID": "c1", "ifname": "eth0"}]);
        assert!(invoke("GC", c, &f).ok);
        assert_eq!(*f.0.borrow(), ["check 1", "gc 1"]);
    }

    #[test]
    fn version_and_refusals() {
        let out = invoke("VERSION", json!({"cniVersion": "0.4.0"}), &Fake::default());
        let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(v["cniVersion"], "0.4.0");
        assert_eq!(v["supportedVersions"].as_array().unwrap().len(), 5);
        // An unsupported version is refused in that version.
        let out = invoke("ADD", conf("0.2.0"), &Fake::default());
        let e: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        assert_eq!(
            (e["code"].as_u64(), e["cniVersion"].as_str()),
            (Some(1), Some("0.2.0"))
        );
    }
}
