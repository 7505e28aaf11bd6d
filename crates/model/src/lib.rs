//! The ground floor: what every other layer speaks — units and blocks, the
//! configuration, the cloud-neutral inventory, and the plan with its approval.
//! It knows no provider, no engine and no console (the compiler sees to it:
//! this crate depends on none of them).

pub mod block;
pub mod child;
pub mod config;
pub mod fsutil;
pub mod inventory;
pub mod plan;
pub mod secret;
pub mod text;
pub mod units;
