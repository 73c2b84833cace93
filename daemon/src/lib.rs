//! What every sart daemon serves with: a gRPC API on a unix socket or TCP, unix sockets with
//! the right owner and mode, the HTTP router for health probes and metrics, and reading the
//! kernel's routing tables; and the logging flags and setup of every sartd binary.

#![warn(unreachable_pub)]

pub mod api_listener;
pub mod health;
pub mod log;
pub mod routes;
pub mod unix_socket;
