//! Altishift: move compute instances, their disks and configuration between
//! clouds. Layers follow the data, one crate per floor: providers
//! (`altishift-cloud`) → `inventory` → `plan` → approval (`altishift-model`) →
//! `altishift-engine` → events → console (`tui`) or CLI (`cli`), this crate.
//! The floors below are re-exported under their old names so that the console,
//! the CLI and the tests say `altishift::plan`, `altishift::cloud`…

pub use altishift_cloud as cloud;
pub use altishift_engine as engine;
pub use altishift_guest as guest;
pub use altishift_model::{block, child, config, fsutil, inventory, plan, secret, text, units};

pub mod cli;
pub mod preparation;
pub mod rehearsal;
pub mod tui;
