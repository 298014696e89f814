#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

pub mod bench;
mod devnet;
pub mod http;
pub mod tower;

pub use devnet::{
    anvil_path, balance_data, succeeded, to_abi, to_vault_abi, Channel, Devnet, Participant,
    MAX_PERIOD, MIN_PERIOD, SPAWN_TIMEOUT_MS,
};
