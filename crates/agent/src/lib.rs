//! The altishift agent: a small reader that the console copies to an SSH
//! source host. It reads the device there, so zero blocks never cross the
//! network and every block arrives with its SHA-256, computed where the bytes
//! were read.
//!
//! This library holds the wire protocol ([`protocol`]), written once for both
//! ends, and the agent's own commands ([`serve`]). It depends on std, `sha2`
//! and `libc` (for `SEEK_DATA`) only: the binary must stay small.
//!
//! Commands (stdout is the protocol, stderr carries errors for a person):
//! - `altishift-agent probe` prints `altishift-agent 1 <os> <arch>`.
//! - `altishift-agent map DEVICE` prints one JSON line:
//!   `{"size":N,"ranges":[[a,b],…]}`, the block ranges that may hold data
//!   (`SEEK_DATA`/`SEEK_HOLE` on files, the whole device otherwise).
//! - `altishift-agent stream DEVICE [--digests]` reads block ranges from
//!   stdin (`a b` per line, end exclusive) and writes [`protocol::MAGIC`] and
//!   then one frame per block: data (or, with `--digests`, only its digest)
//!   for a non-zero block, a zero marker otherwise, and an end frame.

pub mod protocol;
pub mod serve;

pub use protocol::{BLOCK_SIZE, Digest, Frame, FrameError, MAGIC, PROTOCOL};
