//! The crate's one error type.

/// What can go wrong building a network or running a simulation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read or written; holds its path.
    #[error("{0}: {1}")]
    Io(String, #[source] std::io::Error),
    /// A topology file did not parse; says where.
    #[error("parse error: {0}")]
    Parse(String),
    /// The topology parameters or files describe no usable network.
    #[error("topology: {0}")]
    Topology(String),
    /// The policy refused its inputs.
    #[error("policy: {0}")]
    Policy(#[from] keel_policy::Error),
    /// The linear program could not be solved.
    #[error("linear program: {0}")]
    Lp(String),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;
