#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
// Pure: no I/O, so no printing either.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod gossip;
pub mod graph;
pub mod pathfind;
pub mod retry;
pub mod scorer;

pub use gossip::{Deployment, Gossip, GossipError, SignedAnnouncement, SignedUpdate};
pub use graph::{Asset, Channel, DirectionPolicy, Graph, GraphError};
pub use pathfind::{find_route, Route, RouteError, RouteHop, RouteParams};
pub use retry::{Failure, Outcome, PaymentError, PaymentSession};
pub use scorer::{Bounds, Scorer};
