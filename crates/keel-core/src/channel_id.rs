//! Channel identity: the channel id and the address of the channel's vault.
//!
//! Both are derived, never stored, so any party (a watchtower included) can check that a
//! message names the right channel and the right vault from the parameters alone.

use crate::types::ChannelParams;
use alloy::{
    primitives::{hex, keccak256, Address, B256, U256},
    sol_types::SolValue,
};

/// `keccak256(abi.encode(chainId, factory, participantA, participantB, token, challengePeriod, salt))`.
///
/// Standard (not packed) ABI encoding, seven 32-byte words; the chain id and factory are
/// included so an id can never collide across chains or factory deployments.
pub fn channel_id(chain_id: u64, factory: Address, params: &ChannelParams) -> B256 {
    let encoded = (
        U256::from(chain_id),
        factory,
        params.participant_a,
        params.participant_b,
        params.token,
        params.challenge_period,
        params.salt,
    )
        .abi_encode();
    keccak256(encoded)
}

/// Creation code of an OpenZeppelin 5 `Clones` clone with immutable args.
///
/// Layout: `0x61 ‖ uint16(args.len + 0x2d) ‖ 3d81600a3d39f3363d3d373d3d3d363d73 ‖
/// implementation ‖ 5af43d82803e903d91602b57fd5bf3 ‖ args`. The leading `PUSH2` is the
/// runtime length (45-byte proxy plus args), which is why the args length is part of it.
///
/// # Panics
///
/// If `args` is longer than `0x5fd3` bytes, where OpenZeppelin reverts too.
pub fn clone_init_code(implementation: Address, args: &[u8]) -> Vec<u8> {
    const PREFIX: [u8; 17] = hex!("3d81600a3d39f3363d3d373d3d3d363d73");
    const SUFFIX: [u8; 15] = hex!("5af43d82803e903d91602b57fd5bf3");
    // OZ reverts above 0x5fd3 bytes of args; Keel only ever passes 20, so this is a bug guard.
    assert!(args.len() <= 0x5fd3, "clone args too long");
    let runtime_len = (args.len() + 0x2d) as u16;

    let mut code = Vec::with_capacity(3 + PREFIX.len() + 20 + SUFFIX.len() + args.len());
    code.push(0x61);
    code.extend_from_slice(&runtime_len.to_be_bytes());
    code.extend_from_slice(&PREFIX);
    code.extend_from_slice(implementation.as_slice());
    code.extend_from_slice(&SUFFIX);
    code.extend_from_slice(args);
    code
}

/// Address of the channel's vault: the factory deploys a clone of `implementation` with
/// `CREATE2`, salt = channel id, immutable args = `abi.encodePacked(token)` (20 bytes).
pub fn vault_address(
    factory: Address,
    implementation: Address,
    channel_id: B256,
    token: Address,
) -> Address {
    factory.create2_from_code(
        channel_id,
        clone_init_code(implementation, token.as_slice()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy::primitives::address;

    #[test]
    fn clone_code_layout() {
        let implementation = address!("00000000000000000000000000000000000000aa");
        let code = clone_init_code(implementation, &[0x11; 20]);
        assert_eq!(code.len(), 55 + 20);
        // PUSH2 0x0041: 45-byte proxy + 20 bytes of args.
        assert_eq!(&code[..3], &[0x61, 0x00, 0x41]);
        assert_eq!(&code[20..40], implementation.as_slice());
        assert_eq!(&code[55..], &[0x11; 20]);
    }

    #[test]
    fn id_changes_with_every_input() {
        let p = ChannelParams {
            participant_a: Address::repeat_byte(1),
            participant_b: Address::repeat_byte(2),
            token: Address::ZERO,
            challenge_period: 60,
            salt: B256::ZERO,
        };
        let f = Address::repeat_byte(9);
        let base = channel_id(1, f, &p);
        assert_ne!(base, channel_id(2, f, &p));
        assert_ne!(base, channel_id(1, Address::repeat_byte(8), &p));
        assert_ne!(
            base,
            channel_id(
                1,
                f,
                &ChannelParams {
                    challenge_period: 61,
                    ..p
                }
            )
        );
        assert_ne!(base, channel_id(1, f, &ChannelParams { token: f, ..p }));
    }
}
