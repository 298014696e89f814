#![doc = include_str!("../README.md")]
// Pure: the policy does no I/O, and printing would be the first step towards it.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod budget;
pub mod error;
pub mod graph;
pub mod liquidity;
pub mod plan;
pub mod types;

pub use budget::{BudgetLedger, ReservationId};
pub use error::{Error, Result};
pub use graph::{success_probability, Edge, Graph, Known, Route, Routes};
pub use liquidity::Liquidity;
pub use plan::{plan, Action, ActionKind, Config, Decision, Inputs, Plan, Reason};
pub use types::{
    mul_ppm, share_ppm, Amount, ChainId, Channel, ChannelId, ChannelPolicy, Fee, GasTable, NodeId,
    PPM,
};
