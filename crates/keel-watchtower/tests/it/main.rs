//! The tower's storage, intake and API without a chain: a table stands in for the vaults'
//! status, each test has its own SQLite file.

mod api;
mod fixture;
mod intake;
mod store;
