#![doc = include_str!("../README.md")]
// Libraries do not print; the binary owns stdout.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod circulation;
pub mod demand;
pub mod error;
pub mod lp;
pub mod network;
pub mod plot;
pub mod report;
pub mod rng;
pub mod routing;
pub mod sim;
pub mod workload;

pub use error::{Error, Result};
pub use network::{Generate, Network};
pub use report::{table, Report};
pub use sim::{run, SimConfig, Strategy};
pub use workload::{Kind, Payment, Workload};
