//! The tower's storage, intake and API without a chain: a table stands in for the vaults'
//! status, each test has its own database (the store suite runs over SQLite and PostgreSQL).

mod api;
mod backend;
mod fixture;
mod intake;
mod store;
