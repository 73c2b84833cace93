//! Interop test harness: real BGP daemons (FRR, BIRD 2, GoBGP, ExaBGP) and `sartd bgp` in
//! network namespaces, configured from one typed description and queried into one typed state.
//!
//! ```no_run
//! use std::time::Duration;
//! use interop::{BgpConfig, Daemon, Family, Link, Neighbor, Netns, Route, frr::Frr, bird::Bird};
//!
//! # fn demo() -> Result<(), interop::Error> {
//! let (a, b) = (Netns::new("frr")?, Netns::new("bird")?);
//! let link = Link::veth(&a, &b, 1)?; // 198.18.1.1/24 + fd00:1::1/64 on a, .2 / ::2 on b
//! let v4 = [Family::Ipv4Unicast];
//! let frr = Frr::start(&a, "frr", BgpConfig::new(65001, link.a.ipv4())
//!     .neighbor(Neighbor::new(link.b.ipv4().into(), 65002, &v4))
//!     .route(Route::new("198.18.100.0/24".parse().unwrap()).community(65001, 1)))?;
//! let bird = Bird::start(&b, "bird", BgpConfig::new(65002, link.b.ipv4())
//!     .neighbor(Neighbor::new(link.a.ipv4().into(), 65001, &v4)))?;
//! interop::wait_session(&frr, link.b.ipv4().into(), true, Duration::from_secs(20))?;
//! let path = interop::wait_route(&bird, "198.18.100.0/24".parse().unwrap(),
//!     Duration::from_secs(10), |_| true)?;
//! assert_eq!(path.as_path, vec![65001]);
//! # Ok(()) }
//! ```
//!
//! Everything is torn down on drop, also while a test panics: daemons are stopped by PID
//! (SIGTERM, then SIGKILL) and print the tail of their logs if the thread is panicking; a
//! namespace is deleted when its last handle goes. If the test process is killed outright, a
//! reaper process per namespace deletes it. Needs root.

pub mod bird;
pub mod daemon;
pub mod error;
pub mod exabgp;
pub mod frr;
pub mod gobgp;
pub mod hand_peer;
mod launch;
pub mod model;
pub mod netns;
pub mod ping;
pub mod process;
pub mod sartd;
pub mod wait;

pub use daemon::{Daemon, DaemonKind, dump_logs};
pub use error::{Error, Result};
pub use model::{
    AddPath, Attributes, BfdAuth, BgpConfig, Community, Family, GracefulRestart, LargeCommunity,
    Neighbor, Origin, Path, Rib, Route, Session, SessionState,
};
pub use netns::{Link, LinkEnd, Netns};
pub use wait::{Pending, holds_for, wait_route, wait_route_gone, wait_session, wait_until};

/// True when running as root (the harness needs it; tests skip or fail clearly otherwise).
pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
