//! The deployments file written by `script/Deploy.s.sol`: `deployments/<chainId>.json`.

use std::{path::Path, str::FromStr};

use alloy::primitives::Address;
use serde::Deserialize;

/// Where Keel's contracts live on one chain.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deployment {
    /// The chain the addresses belong to.
    pub chain_id: u64,
    /// The block the factory was deployed in; event scans start here.
    pub deployed_at_block: u64,
    /// The factory that opens channels.
    pub channel_factory: Address,
    /// The code every vault clone delegates to; needed to predict vault addresses.
    pub vault_implementation: Address,
    /// The registry of revealed hash-lock secrets.
    pub secret_registry: Address,
    /// Shortest challenge period the factory accepts, in seconds.
    pub min_challenge_period: u32,
    /// Longest challenge period the factory accepts, in seconds.
    pub max_challenge_period: u32,
}

/// Why a deployments file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DeploymentError {
    /// The file could not be read.
    #[error("cannot read deployments file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a valid deployment record.
    #[error(transparent)]
    Parse(#[from] serde_json::Error),
    /// The file is for another chain than the one asked for.
    #[error("deployments file is for chain {found}, expected {expected}")]
    WrongChain {
        /// The chain asked for.
        expected: u64,
        /// The chain the file names.
        found: u64,
    },
}

impl FromStr for Deployment {
    type Err = DeploymentError;

    fn from_str(json: &str) -> Result<Self, Self::Err> {
        Ok(serde_json::from_str(json)?)
    }
}

impl Deployment {
    /// Reads `<dir>/<chain_id>.json` and checks that it is for `chain_id`.
    pub fn load(dir: &Path, chain_id: u64) -> Result<Self, DeploymentError> {
        let path = dir.join(format!("{chain_id}.json"));
        let json = std::fs::read_to_string(&path).map_err(|source| DeploymentError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let deployment: Self = json.parse()?;
        if deployment.chain_id != chain_id {
            return Err(DeploymentError::WrongChain {
                expected: chain_id,
                found: deployment.chain_id,
            });
        }
        Ok(deployment)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"chainId":31337,"deployedAtBlock":1,
      "channelFactory":"0x5FbDB2315678afecb367f032d93F642f64180aa3",
      "vaultImplementation":"0xa16E02E87b7454126E5E10d957A927A7F5B5d2be",
      "secretRegistry":"0xB7A5bd0345EF1Cc5E66bf61BdeC17D2461fBd968",
      "minChallengePeriod":3600,"maxChallengePeriod":2592000}"#;

    #[test]
    fn parses_the_file_deploy_script_writes() {
        let d: Deployment = GOOD.parse().unwrap();
        assert_eq!(d.min_challenge_period, 3600);
        assert_eq!(
            d.channel_factory,
            "0x5FbDB2315678afecb367f032d93F642f64180aa3"
                .parse::<Address>()
                .unwrap()
        );
    }

    #[test]
    fn rejects_missing_and_unknown_fields() {
        assert!(matches!(
            "{}".parse::<Deployment>(),
            Err(DeploymentError::Parse(_))
        ));
        let extra = GOOD.replace("\"chainId\"", "\"surprise\":1,\"chainId\"");
        assert!(matches!(
            extra.parse::<Deployment>(),
            Err(DeploymentError::Parse(_))
        ));
    }

    #[test]
    fn load_checks_the_chain_id() {
        let dir = std::env::temp_dir().join(format!("keel-deployments-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("5.json"), GOOD).unwrap();
        let err = Deployment::load(&dir, 5).unwrap_err();
        assert!(matches!(
            err,
            DeploymentError::WrongChain {
                expected: 5,
                found: 31337
            }
        ));
        assert!(matches!(
            Deployment::load(&dir, 6),
            Err(DeploymentError::Read { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
