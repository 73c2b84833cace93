//! The sart daemons as a library: `sartd`'s subcommands and the `crdgen` tool are thin binaries
//! on top of it, and integration tests drive the same code.

pub mod api_listener;
pub mod bgp;
pub mod fib;
pub mod health;
pub mod install_cni;
pub mod kubernetes;
pub mod unix_socket;
