//! The agent's record of each attachment, on disk (`--cni-state-dir`, default
//! `/var/lib/sart/cni`): one JSON file per attachment, written (atomically: a temporary file,
//! then a rename) before the kernel is touched, and removed only after DEL undid everything. An
//! agent that restarts, or dies half-way through an ADD, finds every address it handed out and
//! every veth it may have made.
//!
//! No fsync: the records must outlive the agent's process, which the page cache gives, not the
//! node's kernel. A node that crashes loses its pods' namespaces with it: a record the crash tore
//! is reported and its addresses are free again (no pod holds them), and intact records of those
//! pods go with the leak GC (their namespace is gone).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::pod_ipam::{Attachment, Record};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredAddress {
    pub ip: IpAddr,
    pub block: String,
}

/// One attachment as the agent keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stored {
    pub container_id: String,
    pub ifname: String,
    /// The CNI network name (GC is per network).
    pub network: String,
    pub netns: String,
    pub pod_namespace: String,
    pub pod_name: String,
    pub host_ifname: String,
    pub addresses: Vec<StoredAddress>,
    /// The pod's uid when the addresses were given (a pod of the same name made later is
    /// another pod).
    #[serde(default)]
    pub pod_uid: String,
    /// When the addresses were given, in seconds since the Unix epoch.
    #[serde(default)]
    pub created: u64,
}

impl Stored {
    pub(crate) fn attachment(&self) -> Attachment {
        Attachment {
            container_id: self.container_id.clone(),
            ifname: self.ifname.clone(),
        }
    }

    pub(crate) fn record(&self) -> Record {
        Record {
            addresses: self
                .addresses
                .iter()
                .map(|a| (a.ip, a.block.clone()))
                .collect(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Decode {
        path: PathBuf,
        source: serde_json::Error,
    },
}

#[derive(Clone, Debug)]
pub(crate) struct Store {
    dir: PathBuf,
}

impl Store {
    /// Creates the directory (root only) if needed.
    pub(crate) fn open(dir: &Path) -> Result<Store, StoreError> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|source| StoreError::Io {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Store {
            dir: dir.to_owned(),
        })
    }

    /// Keyed by the host interface name: a hash of the attachment, and a valid file name
    /// whatever the container id holds.
    fn path(&self, host_ifname: &str) -> PathBuf {
        self.dir.join(format!("{host_ifname}.json"))
    }

    pub(crate) fn save(&self, s: &Stored) -> Result<(), StoreError> {
        let path = self.path(&s.host_ifname);
        let tmp = path.with_extension("json.tmp");
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        let body = serde_json::to_vec_pretty(s).map_err(|source| StoreError::Decode {
            path: path.clone(),
            source,
        })?;
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            f.write_all(&body).map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)
    }

    pub(crate) fn remove(&self, host_ifname: &str) -> Result<(), StoreError> {
        let path = self.path(host_ifname);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }

    /// The host interface names of every record file, readable or not.
    pub(crate) fn names(&self) -> std::collections::BTreeSet<String> {
        std::fs::read_dir(&self.dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        let p = e.path();
                        (p.extension().and_then(|x| x.to_str()) == Some("json"))
                            .then(|| p.file_stem()?.to_str().map(str::to_owned))
                            .flatten()
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Every record; a file that cannot be read is reported, not dropped (it stays on disk).
    pub(crate) fn load(&self) -> Result<(Vec<Stored>, Vec<StoreError>), StoreError> {
        let rd = std::fs::read_dir(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        for entry in rd.flatten() {
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                // A temporary file of a write that never finished: its record was never used.
                if path.to_string_lossy().ends_with(".json.tmp") {
                    let _ = std::fs::remove_file(&path);
                }
                continue;
            }
            match std::fs::read(&path) {
                Ok(body) => match serde_json::from_slice::<Stored>(&body) {
                    Ok(s) => ok.push(s),
                    Err(source) => bad.push(StoreError::Decode { path, source }),
                },
                Err(source) => bad.push(StoreError::Io { path, source }),
            }
        }
        ok.sort_by(|a, b| a.host_ifname.cmp(&b.host_ifname));
        Ok((ok, bad))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn stored(id: &str) -> Stored {
        Stored {
            container_id: id.into(),
            ifname: "eth0".into(),
            network: "sart-network".into(),
            netns: "/run/netns/p".into(),
            pod_namespace: "default".into(),
            pod_name: "p".into(),
            host_ifname: super::super::podnet::host_ifname(id, "eth0"),
            addresses: vec![StoredAddress {
                ip: "198.18.64.1".parse().unwrap(),
                block: "pods-0".into(),
            }],
            pod_uid: "u1".into(),
            created: 1,
        }
    }

    #[test]
    fn save_load_remove() {
        let dir = std::env::temp_dir().join(format!("sart-store-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let st = Store::open(&dir).unwrap();
        st.save(&stored("a")).unwrap();
        st.save(&stored("b")).unwrap();
        // Saving again replaces; a torn temporary file and a broken record do not stop a load.
        st.save(&stored("a")).unwrap();
        std::fs::write(dir.join("x.json.tmp"), b"{").unwrap();
        std::fs::write(dir.join("broken.json"), b"{").unwrap();
        let (ok, bad) = st.load().unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(bad.len(), 1);
        assert!(!dir.join("x.json.tmp").exists());
        assert_eq!(
            ok.iter().find(|s| s.container_id == "a"),
            Some(&stored("a"))
        );
        assert_eq!(st.names().len(), 3);
        st.remove(&stored("a").host_ifname).unwrap();
        st.remove(&stored("a").host_ifname).unwrap();
        assert_eq!(st.load().unwrap().0, vec![stored("b")]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
