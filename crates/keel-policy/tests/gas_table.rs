//! The gas the policy charges for on-chain actions is what `docs/gas.md` measured on real
//! transactions; this fails when the contracts change and the report is regenerated but the
//! table here is not.

use keel_policy::GasTable;

fn measured(operation: &str) -> u64 {
    let report = include_str!("../../../docs/gas.md");
    let section = report
        .split("## Every measured operation")
        .nth(1)
        .expect("docs/gas.md lists every measured operation");
    let line = section
        .lines()
        .find(|line| line.starts_with(&format!("| {operation} |")))
        .unwrap_or_else(|| panic!("docs/gas.md has no row for {operation}"));
    let figure = line.split('|').nth(2).expect("a gasUsed column");
    figure.trim().replace(',', "").parse().expect("a number")
}

#[test]
fn eth_figures_are_the_measured_ones() {
    assert_eq!(
        GasTable::ETH.deposit,
        measured("top-up, a later deposit (ETH)")
    );
    assert_eq!(
        GasTable::ETH.withdraw,
        measured("withdraw while open (ETH)")
    );
    assert_eq!(
        GasTable::ETH.withdraw_into,
        measured("move into another channel (ETH, withdrawInto)")
    );
}

#[test]
fn erc20_figures_are_the_measured_ones() {
    assert_eq!(
        GasTable::ERC20.deposit,
        measured("top-up, a later deposit (ERC-20)")
    );
    assert_eq!(
        GasTable::ERC20.withdraw,
        measured("withdraw while open (ERC-20)")
    );
    assert_eq!(
        GasTable::ERC20.withdraw_into,
        measured("move into another channel (ERC-20, withdrawInto)")
    );
}
