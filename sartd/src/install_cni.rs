//! `sartd install-cni`: puts `sart-cni` into the node's CNI binary directory and sart's conflist
//! into its configuration directory (the agent DaemonSet's init container runs it). Both are
//! written to a temporary file and renamed into place, so a runtime never reads half a file, and
//! running it again changes nothing.

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
    /// The conflist to install.
    pub conflist: PathBuf,
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
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

/// Installs both files; what was written.
pub fn install(i: &Install) -> Result<Vec<PathBuf>, InstallError> {
    let conf = std::fs::read(&i.conflist).map_err(io(&i.conflist))?;
    // A broken conflist would take every pod on the node down: refuse it here.
    let v: serde_json::Value =
        serde_json::from_slice(&conf).map_err(|e| InstallError::BadConflist {
            path: i.conflist.clone(),
            why: e.to_string(),
        })?;
    let has_sart = v["plugins"]
        .as_array()
        .is_some_and(|p| p.iter().any(|p| p["type"] == "sart-cni"));
    if v["cniVersion"].as_str().is_none() || !has_sart {
        return Err(InstallError::BadConflist {
            path: i.conflist.clone(),
            why: "it needs a cniVersion and a plugin of type sart-cni".into(),
        });
    }
    let bin = std::fs::read(&i.binary).map_err(io(&i.binary))?;
    for d in [&i.bin_dir, &i.conf_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let bin_dst = i.bin_dir.join("sart-cni");
    let name = i
        .conflist
        .file_name()
        .map_or_else(|| "10-sart.conflist".into(), |n| n.to_owned());
    let conf_dst = i.conf_dir.join(name);
    put(&bin_dst, &bin, 0o755)?;
    put(&conf_dst, &conf, 0o644)?;
    Ok(vec![bin_dst, conf_dst])
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
        let i = Install {
            binary: bin,
            conflist: conf.clone(),
            bin_dir: dir.join("bin"),
            conf_dir: dir.join("net.d"),
        };
        let written = install(&i).unwrap();
        assert_eq!(
            written,
            [dir.join("bin/sart-cni"), dir.join("net.d/10-sart.conflist")]
        );
        // Again: the same files, no temporary ones left.
        install(&i).unwrap();
        assert_eq!(std::fs::read_dir(dir.join("bin")).unwrap().count(), 1);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join("bin/sart-cni"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o755);
        std::fs::write(
            &conf,
            br#"{"cniVersion":"1.0.0","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert!(matches!(install(&i), Err(InstallError::BadConflist { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
