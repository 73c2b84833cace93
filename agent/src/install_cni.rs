//! `sartd install-cni`: puts `sart-cni` into the node's CNI binary directory and sart's conflist
//! into its configuration directory (the agent DaemonSet's init container runs it). Both are
//! written to a temporary file and renamed into place, so a runtime never reads half a file, and
//! running it again changes nothing. Another configuration of `sart-cni` in the directory (an
//! earlier sart's `10-netconf.conflist`, which sorts first and points where no agent listens) is
//! renamed aside, so the runtime uses ours.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a CNI configuration list: {why}")]
    BadConflist { path: PathBuf, why: String },
}

#[derive(Clone, Debug)]
pub struct Install {
    /// The `sart-cni` binary to install.
    pub binary: PathBuf,
    /// The conflist to install: its file name in the configuration directory, and its text.
    pub conflist_name: String,
    pub conflist: Vec<u8>,
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
}

/// What [`install`] did.
#[derive(Debug, PartialEq, Eq)]
pub struct Installed {
    pub written: Vec<PathBuf>,
    /// Other configurations of sart-cni, renamed aside (from, to).
    pub set_aside: Vec<(PathBuf, PathBuf)>,
}

/// The suffix a replaced configuration gets: runtimes read only `.conf`, `.conflist`, `.json`.
pub(crate) const SET_ASIDE: &str = ".sart-replaced";

/// The conflist of `path`, under its own file name.
pub fn read_conflist(path: &Path) -> Result<(String, Vec<u8>), InstallError> {
    let body = std::fs::read(path).map_err(io(path))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("10-sart.conflist")
        .to_owned();
    Ok((name, body))
}

/// sart's own installer took its conflist from the environment, with `sart-cni` dialing the
/// agent over TCP. Ours listens on a unix socket only: the endpoint is pointed there, the
/// rest (other plugins such as portmap) kept.
pub fn from_sart_netconf(text: &str, socket: &str) -> Result<Vec<u8>, InstallError> {
    let bad = |why: String| InstallError::BadConflist {
        path: "$CNI_NETCONF".into(),
        why,
    };
    let mut v: serde_json::Value = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    let plugins = v["plugins"]
        .as_array_mut()
        .ok_or_else(|| bad("no plugins".into()))?;
    for p in plugins.iter_mut().filter(|p| p["type"] == "sart-cni") {
        let unix = p["endpoint"]
            .as_str()
            .is_some_and(|e| e.starts_with("unix:///"));
        if !unix {
            p["endpoint"] = socket.into();
        }
    }
    serde_json::to_vec_pretty(&v).map_err(|e| bad(e.to_string()))
}

fn is_sart_conf(path: &Path) -> bool {
    let cni_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e, "conf" | "conflist" | "json"));
    if !cni_ext {
        return false;
    }
    let Ok(body) = std::fs::read(path) else {
        return false;
    };
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return false;
    };
    v["type"] == "sart-cni" || chains_sart_cni(&v)
}

/// Whether a conflist has a plugin of type sart-cni.
fn chains_sart_cni(v: &serde_json::Value) -> bool {
    v["plugins"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["type"] == "sart-cni"))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> InstallError + '_ {
    move |source| InstallError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `body` to `dst` through a temporary file in the same directory.
fn put(dst: &Path, body: &[u8], mode: u32) -> Result<(), InstallError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let tmp = dst.with_file_name(format!(
        ".{}.sart-tmp",
        dst.file_name().and_then(|n| n.to_str()).unwrap_or("file")
    ));
    {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp))?;
        f.write_all(body).map_err(io(&tmp))?;
        f.set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
    }
    std::fs::rename(&tmp, dst).map_err(io(dst))
}

/// Installs both files and sets other sart-cni configurations aside.
pub fn install(i: &Install) -> Result<Installed, InstallError> {
    let conf = &i.conflist;
    let here = i.conf_dir.join(&i.conflist_name);
    // A broken conflist would take every pod on the node down: refuse it here.
    let v: serde_json::Value =
        serde_json::from_slice(conf).map_err(|e| InstallError::BadConflist {
            path: here.clone(),
            why: e.to_string(),
        })?;
    if v["cniVersion"].as_str().is_none() || !chains_sart_cni(&v) {
        return Err(InstallError::BadConflist {
            path: here,
            why: "it needs a cniVersion and a plugin of type sart-cni".into(),
        });
    }
    let bin = std::fs::read(&i.binary).map_err(io(&i.binary))?;
    for d in [&i.bin_dir, &i.conf_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let bin_dst = i.bin_dir.join("sart-cni");
    put(&bin_dst, &bin, 0o755)?;
    put(&here, conf, 0o644)?;
    let mut set_aside = Vec::new();
    let entries = std::fs::read_dir(&i.conf_dir).map_err(io(&i.conf_dir))?;
    for e in entries {
        let path = e.map_err(io(&i.conf_dir))?.path();
        if path != here && is_sart_conf(&path) {
            let mut to = path.clone().into_os_string();
            to.push(SET_ASIDE);
            let to = PathBuf::from(to);
            std::fs::rename(&path, &to).map_err(io(&path))?;
            set_aside.push((path, to));
        }
    }
    Ok(Installed {
        written: vec![bin_dst, here],
        set_aside,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn installs_both_and_refuses_a_bad_conflist() {
        let dir = std::env::temp_dir().join(format!("sart-install-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let (bin, conf) = (dir.join("sart-cni-src"), dir.join("10-sart.conflist"));
        std::fs::write(&bin, b"\x7fELF").unwrap();
        std::fs::write(
            &conf,
            br#"{"cniVersion":"1.0.0","name":"sart-network","plugins":[{"type":"sart-cni"}]}"#,
        )
        .unwrap();
        let (conflist_name, conflist) = read_conflist(&conf).unwrap();
        let mut i = Install {
            binary: bin,
            conflist_name,
            conflist,
            bin_dir: dir.join("bin"),
            conf_dir: dir.join("net.d"),
        };
        let done = install(&i).unwrap();
        assert_eq!(
            done.written,
            [dir.join("bin/sart-cni"), dir.join("net.d/10-sart.conflist")]
        );
        assert!(done.set_aside.is_empty());
        // Again: the same files, no temporary ones left.
        install(&i).unwrap();
        assert_eq!(std::fs::read_dir(dir.join("bin")).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("bin/sart-cni"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        i.conflist = br#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#.to_vec();
        assert!(matches!(install(&i), Err(InstallError::BadConflist { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn sarts_conflist_is_set_aside_and_its_netconf_pointed_at_our_socket() {
        let dir = std::env::temp_dir().join(format!("sart-takeover-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let net_d = dir.join("net.d");
        std::fs::create_dir_all(&net_d).unwrap();
        let bin = dir.join("sart-cni-src");
        std::fs::write(&bin, b"\x7fELF").unwrap();
        let sarts = r#"{"cniVersion":"1.0.0","name":"sart-network","plugins":[
            {"type":"sart-cni","endpoint":"http://localhost:6000","timeout":60},
            {"type":"portmap","capabilities":{"portMappings":true}}]}"#;
        std::fs::write(net_d.join("10-netconf.conflist"), sarts).unwrap();
        let other = br#"{"cniVersion":"1.0.0","name":"x","plugins":[{"type":"bridge"}]}"#;
        std::fs::write(net_d.join("05-other.conflist"), other).unwrap();
        std::fs::write(net_d.join("notes.txt"), b"sart-cni").unwrap();
        let conflist = from_sart_netconf(sarts, "unix:///run/sart/cni.sock").unwrap();
        let v: serde_json::Value = serde_json::from_slice(&conflist).unwrap();
        assert_eq!(v["plugins"][0]["endpoint"], "unix:///run/sart/cni.sock");
        assert_eq!(v["plugins"][1]["type"], "portmap");
        let i = Install {
            binary: bin,
            conflist_name: "10-sart.conflist".into(),
            conflist,
            bin_dir: dir.join("bin"),
            conf_dir: net_d.clone(),
        };
        let done = install(&i).unwrap();
        assert_eq!(
            done.set_aside,
            [(
                net_d.join("10-netconf.conflist"),
                net_d.join("10-netconf.conflist.sart-replaced")
            )]
        );
        let mut left: Vec<_> = std::fs::read_dir(&net_d)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(
            left,
            [
                "05-other.conflist",
                "10-netconf.conflist.sart-replaced",
                "10-sart.conflist",
                "notes.txt"
            ]
        );
        // Again: nothing more to set aside.
        assert!(install(&i).unwrap().set_aside.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
