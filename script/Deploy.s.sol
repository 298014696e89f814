// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.37;

import {Script} from "forge-std/Script.sol";
import {ChannelFactory} from "../contracts/src/ChannelFactory.sol";

/// @notice Deploys Keel (factory, vault implementation, secret registry) and records the addresses
/// in deployments/<chainId>.json, which the Rust side reads.
/// @dev Keys never live in the repo: pass `--private-key $KEY`, `--account <keystore name>`, or
/// `--ledger` to `forge script ... --broadcast`; see script/deploy.sh. Optional environment:
/// KEEL_MIN_CHALLENGE_PERIOD and KEEL_MAX_CHALLENGE_PERIOD (seconds; default 1 hour and 30 days).
contract Deploy is Script {
    function run() external returns (ChannelFactory factory) {
        uint32 minPeriod = uint32(vm.envOr("KEEL_MIN_CHALLENGE_PERIOD", uint256(1 hours)));
        uint32 maxPeriod = uint32(vm.envOr("KEEL_MAX_CHALLENGE_PERIOD", uint256(30 days)));

        vm.startBroadcast();
        factory = new ChannelFactory(minPeriod, maxPeriod);
        vm.stopBroadcast();

        string memory key = "deployment";
        vm.serializeUint(key, "chainId", block.chainid);
        vm.serializeUint(key, "deployedAtBlock", block.number);
        vm.serializeAddress(key, "secretRegistry", address(factory.secretRegistry()));
        vm.serializeAddress(key, "vaultImplementation", address(factory.vaultImplementation()));
        vm.serializeUint(key, "minChallengePeriod", minPeriod);
        vm.serializeUint(key, "maxChallengePeriod", maxPeriod);
        string memory json = vm.serializeAddress(key, "channelFactory", address(factory));
        vm.writeJson(
            json, string.concat(vm.projectRoot(), "/deployments/", vm.toString(block.chainid), ".json")
        );
    }
}
