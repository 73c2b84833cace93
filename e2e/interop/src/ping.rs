//! `ping` running inside a namespace until stopped, to count what an event (a restart, a cut
//! link) costs the data path.

use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::netns::Netns;
use crate::process::signal;

/// One `ping -i INTERVAL -q TO` in a namespace.
pub struct Pinger(Child);

impl Pinger {
    pub fn start(ns: &Netns, to: IpAddr, interval: Duration) -> Result<Pinger> {
        let interval = format!("{:.3}", interval.as_secs_f64());
        let argv = ns.wrap(&["ping", "-i", &interval, "-W", "1", "-q", &to.to_string()]);
        let child = Command::new(&argv[0])
            .args(&argv[1..])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|source| Error::Spawn {
                cmd: format!("ping {to}"),
                source,
            })?;
        Ok(Pinger(child))
    }

    /// Stops it (SIGINT makes ping print its summary) and returns (sent, lost).
    pub fn finish(self) -> Result<(u64, u64)> {
        signal(self.0.id(), rustix::process::Signal::INT)?;
        let out = self.0.wait_with_output().map_err(|source| Error::Spawn {
            cmd: "ping".into(),
            source,
        })?;
        let text = String::from_utf8_lossy(&out.stdout);
        summary(&text).ok_or_else(|| Error::Parse {
            daemon: "ping".into(),
            what: "its summary".into(),
            reason: format!("{text:?}"),
        })
    }
}

/// (sent, lost) from "N packets transmitted, M received, ...".
fn summary(text: &str) -> Option<(u64, u64)> {
    let line = text.lines().find(|l| l.contains("packets transmitted"))?;
    let num = |word: &str| -> Option<u64> {
        let i = line.find(word)?;
        line[..i].trim_end().rsplit([' ', ',']).next()?.parse().ok()
    };
    let (sent, got) = (num(" packets transmitted")?, num(" received")?);
    Some((sent, sent.saturating_sub(got)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_the_summary() {
        let text = "PING 198.18.1.1 (198.18.1.1) 56(84) bytes of data.\n\n--- 198.18.1.1 ping statistics ---\n292 packets transmitted, 164 received, 43.8356% packet loss, time 5012ms\n";
        assert_eq!(super::summary(text), Some((292, 128)));
        assert_eq!(super::summary("nothing"), None);
    }
}
