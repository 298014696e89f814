#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]

mod deployment;

pub use deployment::{Deployment, DeploymentError};

// Each contract gets its own module, so the structs they share in Solidity (ChannelParams, …)
// do not collide; `keel-core` converts its own types into these.
alloy::sol!(
    /// The singleton that opens channels (see contracts/src/ChannelFactory.sol).
    // Generated from the ABI, which carries the NatSpec; event constructors mirror their fields.
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[sol(rpc)]
    #[derive(Debug)]
    ChannelFactory,
    "artifacts/ChannelFactory.json"
);

alloy::sol!(
    /// One channel's 2-of-2 vault and adjudicator (see contracts/src/ChannelVault.sol).
    // Generated from the ABI, which carries the NatSpec; event constructors mirror their fields.
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[sol(rpc)]
    #[derive(Debug)]
    ChannelVault,
    "artifacts/ChannelVault.json"
);

alloy::sol!(
    /// Records when hash-lock secrets were revealed (see contracts/src/SecretRegistry.sol).
    // Generated from the ABI, which carries the NatSpec; event constructors mirror their fields.
    #[allow(missing_docs, clippy::too_many_arguments)]
    #[sol(rpc)]
    #[derive(Debug)]
    SecretRegistry,
    "artifacts/SecretRegistry.json"
);
