//! The headless commands: every console mode has a twin for scripts.

pub mod apply;
pub mod bench;
pub mod common;
pub mod demo;
pub mod detach;
pub mod guest;
pub mod inventory;
pub mod lab;
pub mod plan;
pub mod plan_checks;
pub mod prompt;
pub mod report;
pub mod runs;
