//! `ipam`: address arithmetic and allocators for sart, as pure logic: no I/O, no async runtime,
//! no Kubernetes client.
//!
//! - [`pool`]: an AddressPool's CIDR cut into equally sized blocks (`blockSize`), IPv4 and IPv6.
//! - [`blocks`]: which block indexes of a pod pool are handed to nodes (the controller).
//! - [`addresses`]: which addresses of one block are handed to pods (the node agent), or of one
//!   range in general.
//! - [`lb`]: LoadBalancer addresses for Services, including MetalLB-style IP sharing (the
//!   controller).
//!
//! The callers own the cluster state: they rebuild these allocators from the cluster after a
//! restart (`mark`, `allocate`, [`lb::Allocator::restore`]) and write the results back. Every
//! iteration order is a `BTreeMap`/`BTreeSet` order, so the same calls give the same answers.

pub mod addresses;
pub mod blocks;
pub mod family;
pub mod lb;
pub mod pool;
mod slots;

pub use addresses::{AddressAllocator, AddressError, Usable};
pub use blocks::{BlockAllocator, BlockError};
pub use family::IpFamily;
pub use lb::{Allocator, FamilyPolicy, Holder, L4Protocol, LbError, LbPool, LbRequest, ServiceKey};
pub use pool::{Pool, PoolError};
