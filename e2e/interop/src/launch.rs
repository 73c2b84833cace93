//! Starting a daemon by its kind: the one place that knows every implementation, kept apart
//! from the `Daemon` trait they all implement.

use crate::daemon::{Daemon, DaemonKind};
use crate::error::Result;
use crate::model::BgpConfig;
use crate::netns::Netns;

impl DaemonKind {
    /// Writes the config for `config` and starts this implementation in `netns`.
    pub fn start(self, netns: &Netns, name: &str, config: BgpConfig) -> Result<Box<dyn Daemon>> {
        Ok(match self {
            DaemonKind::Frr => Box::new(crate::frr::Frr::start(netns, name, config)?),
            DaemonKind::Bird => Box::new(crate::bird::Bird::start(netns, name, config)?),
            DaemonKind::Gobgp => Box::new(crate::gobgp::Gobgp::start(netns, name, config)?),
            DaemonKind::Exabgp => Box::new(crate::exabgp::Exabgp::start(netns, name, config)?),
            DaemonKind::Sartd => Box::new(crate::sartd::Sartd::start(netns, name, config)?),
        })
    }
}
