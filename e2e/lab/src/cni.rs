//! A conflist run as libcni runs it: for ADD each plugin in order, its configuration being the
//! plugin's entry plus the list's `cniVersion` and `name` and the previous plugin's result as
//! `prevResult`; DEL in reverse order with the final result. Each plugin is a process with the
//! CNI_* environment and its configuration on stdin.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CniError {
    #[error("conflist {path}: {why}")]
    Conflist { path: PathBuf, why: String },
    #[error("running {plugin}: {source}")]
    Spawn {
        plugin: String,
        source: std::io::Error,
    },
    #[error("{plugin} {command} failed: {output}")]
    Plugin {
        plugin: String,
        command: String,
        output: String,
    },
}

/// One pod's attachment, as a runtime names it.
#[derive(Clone, Debug)]
pub struct Sandbox {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub pod_uid: String,
}

#[derive(Clone, Debug)]
pub struct Conflist {
    version: Value,
    name: Value,
    plugins: Vec<Value>,
    bin_dirs: Vec<PathBuf>,
}

impl Conflist {
    pub fn load(path: &Path, bin_dirs: Vec<PathBuf>) -> Result<Conflist, CniError> {
        let bad = |why: String| CniError::Conflist {
            path: path.to_owned(),
            why,
        };
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let v: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let plugins = v["plugins"]
            .as_array()
            .filter(|p| !p.is_empty())
            .cloned()
            .ok_or_else(|| bad("no plugins".into()))?;
        Ok(Conflist {
            version: v["cniVersion"].clone(),
            name: v["name"].clone(),
            plugins,
            bin_dirs,
        })
    }

    fn binary(&self, plugin: &Value) -> Option<PathBuf> {
        let kind = plugin["type"].as_str()?;
        self.bin_dirs
            .iter()
            .map(|d| d.join(kind))
            .find(|p| p.exists())
    }

    fn run(
        &self,
        plugin: &Value,
        command: &str,
        sb: &Sandbox,
        prev: Option<&Value>,
    ) -> Result<Value, CniError> {
        let kind = plugin["type"].as_str().unwrap_or("?").to_owned();
        let bin = self.binary(plugin).ok_or_else(|| CniError::Spawn {
            plugin: kind.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "not in the CNI path"),
        })?;
        let mut conf = plugin.clone();
        conf["cniVersion"] = self.version.clone();
        conf["name"] = self.name.clone();
        if let Some(p) = prev {
            conf["prevResult"] = p.clone();
        }
        let path = self
            .bin_dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(":");
        let spawn = |source| CniError::Spawn {
            plugin: kind.clone(),
            source,
        };
        let mut child = Command::new(&bin)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", &sb.container_id)
            .env("CNI_NETNS", &sb.netns)
            .env("CNI_IFNAME", &sb.ifname)
            .env(
                "CNI_ARGS",
                format!(
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
                    sb.pod_namespace, sb.pod_name, sb.container_id, sb.pod_uid
                ),
            )
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn)?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(conf.to_string().as_bytes())
                .map_err(spawn)?;
        }
        let out = child.wait_with_output().map_err(spawn)?;
        if !out.status.success() {
            return Err(CniError::Plugin {
                plugin: kind,
                command: command.into(),
                output: format!(
                    "{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ),
            });
        }
        Ok(serde_json::from_slice(&out.stdout).unwrap_or(Value::Null))
    }

    /// ADD through every plugin; the last result.
    pub fn add(&self, sb: &Sandbox) -> Result<Value, CniError> {
        let mut prev: Option<Value> = None;
        for p in &self.plugins {
            let r = self.run(p, "ADD", sb, prev.as_ref())?;
            prev = Some(r);
        }
        Ok(prev.unwrap_or(Value::Null))
    }

    /// DEL through every plugin in reverse; every plugin is asked even if one fails (the first
    /// failure is returned).
    pub fn del(&self, sb: &Sandbox, result: Option<&Value>) -> Result<(), CniError> {
        let mut first = None;
        for p in self.plugins.iter().rev() {
            if let Err(e) = self.run(p, "DEL", sb, result) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

/// The pod's addresses in a CNI result (without prefix lengths).
pub fn result_ips(r: &Value) -> Vec<String> {
    r["ips"]
        .as_array()
        .map(|ips| {
            ips.iter()
                .filter_map(|i| i["address"].as_str())
                .filter_map(|a| a.split('/').next())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    #[test]
    fn addresses_of_a_result() {
        let r = json!({"ips": [{"address": "198.18.64.3/32"}, {"address": "fd00::3/128"}]});
        assert_eq!(result_ips(&r), ["198.18.64.3", "fd00::3"]);
        assert!(result_ips(&json!({})).is_empty());
    }
}
