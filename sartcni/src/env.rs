//! The CNI_* environment of one invocation, checked per command as the spec's "Parameters"
//! section asks (1.0.0 and 1.1.0 tables; 0.4.0's name rules).

use std::collections::BTreeMap;

use crate::error::{CniError, Code};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Gc,
    Status,
    Version,
}

impl Command {
    fn parse(s: &str) -> Option<Command> {
        Some(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "GC" => Command::Gc,
            "STATUS" => Command::Status,
            "VERSION" => Command::Version,
            _ => return None,
        })
    }
}

/// One invocation's parameters. What a command needs is there (else [`parse`] refused it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Env {
    pub command: Command,
    pub container_id: Option<String>,
    pub netns: Option<String>,
    pub ifname: Option<String>,
    /// `CNI_ARGS` (`K=V;K=V`): the runtime's K8S_POD_NAMESPACE, K8S_POD_NAME, ...
    pub args: BTreeMap<String, String>,
}

fn missing(names: &[&str]) -> CniError {
    CniError::new(
        Code::InvalidEnvironment,
        format!(
            "required environment variables missing: {}",
            names.join(", ")
        ),
    )
}

/// Reads the environment through `get` (the process environment, or a test's map).
pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Env, CniError> {
    let val = |k: &str| get(k).filter(|v| !v.is_empty());
    let command = match val("CNI_COMMAND") {
        None => return Err(missing(&["CNI_COMMAND"])),
        Some(c) => Command::parse(&c).ok_or_else(|| {
            CniError::new(
                Code::InvalidEnvironment,
                format!("CNI_COMMAND {c:?} is not a CNI command"),
            )
        })?,
    };
    let required: &[&str] = match command {
        Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
        // DEL may come without a netns: the pod's sandbox can be gone already.
        Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
        Command::Gc | Command::Status | Command::Version => &[],
    };
    let absent: Vec<&str> = required
        .iter()
        .copied()
        .filter(|k| val(k).is_none())
        .collect();
    if !absent.is_empty() {
        return Err(missing(&absent));
    }
    let container_id = val("CNI_CONTAINERID");
    if let Some(id) = &container_id {
        check_container_id(id)?;
    }
    let ifname = val("CNI_IFNAME");
    if let Some(n) = &ifname {
        check_ifname(n)?;
    }
    let args = val("CNI_ARGS").map(|a| parse_args(&a)).transpose()?;
    Ok(Env {
        command,
        container_id,
        netns: val("CNI_NETNS"),
        ifname,
        args: args.unwrap_or_default(),
    })
}

/// An alphanumeric first character, then alphanumerics, `_`, `.` and `-` (spec 0.4.0 on).
fn check_container_id(id: &str) -> Result<(), CniError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if first_ok && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_CONTAINERID {id:?} is not a valid container id"),
        ))
    }
}

/// A Linux interface name: 1 to 15 bytes, not `.` or `..`, no `/`, `:` or white space.
fn check_ifname(n: &str) -> Result<(), CniError> {
    let ok = !n.is_empty()
        && n.len() < 16
        && n != "."
        && n != ".."
        && !n.chars().any(|c| c == '/' || c == ':' || c.is_whitespace());
    if ok {
        Ok(())
    } else {
        Err(CniError::new(
            Code::InvalidEnvironment,
            format!("CNI_IFNAME {n:?} is not a valid interface name"),
        ))
    }
}

fn parse_args(a: &str) -> Result<BTreeMap<String, String>, CniError> {
    a.split(';')
        .filter(|kv| !kv.is_empty())
        .map(|kv| match kv.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
            _ => Err(CniError::new(
                Code::InvalidEnvironment,
                format!("CNI_ARGS: {kv:?} is not KEY=VALUE"),
            )),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<Env, CniError> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_its_parameters() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "abc")]).unwrap_err();
        assert_eq!(e.code, Code::InvalidEnvironment);
        assert!(e.msg.contains("CNI_NETNS, CNI_IFNAME"), "{}", e.msg);
        let ok = env(&[
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "abc-1.x_y"),
            ("CNI_NETNS", "/run/netns/p"),
            ("CNI_IFNAME", "eth0"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0",
            ),
        ])
        .unwrap();
        assert_eq!(ok.command, Command::Add);
        assert_eq!(ok.args["K8S_POD_NAME"], "web-0");
    }

    #[test]
    fn del_without_netns_and_gc_without_anything() {
        let d = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "abc"),
            ("CNI_IFNAME", "eth0"),
        ])
        .unwrap();
        assert_eq!(d.netns, None);
        assert_eq!(env(&[("CNI_COMMAND", "GC")]).unwrap().command, Command::Gc);
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
    }

    #[test]
    fn bad_names_and_commands() {
        for (id, ifname) in [
            ("-abc", "eth0"),
            ("abc", "a/b"),
            ("abc", "0123456789abcdef"),
            ("abc", ".."),
        ] {
            let e = env(&[
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", id),
                ("CNI_NETNS", "/run/netns/p"),
                ("CNI_IFNAME", ifname),
            ])
            .unwrap_err();
            assert_eq!(e.code, Code::InvalidEnvironment, "{id} {ifname}");
        }
        assert!(
            env(&[("CNI_COMMAND", "UP")])
                .unwrap_err()
                .msg
                .contains("UP")
        );
        assert!(env(&[]).unwrap_err().msg.contains("CNI_COMMAND"));
    }
}
