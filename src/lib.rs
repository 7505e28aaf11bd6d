//! Altishift: move compute instances, their disks and configuration between
//! clouds. Layers follow the data: providers (`cloud`) → `inventory` → `plan`
//! → approval → `engine` → events → console (`tui`) or CLI (`cli`).

pub mod block;
pub mod child;
pub mod cli;
pub mod cloud;
pub mod config;
pub mod engine;
pub mod fsutil;
pub mod guest;
pub mod inventory;
pub mod plan;
pub mod secret;
pub mod text;
pub mod tui;
pub mod units;
