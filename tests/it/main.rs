//! The integration tests, one test binary (`cargo test --test it`): each
//! module below is one concern, tested on the built evq binary (exact bytes,
//! stderr and exit statuses; `common` holds the helpers they share). A new
//! concern gets one file here and one `mod` line below; one test runs with
//! `cargo test --test it MODULE::NAME`, a whole module with `MODULE::`.
//!
//! The tests share one process and run on several threads, so none of them
//! changes the process's environment or current directory: each sets them
//! on the evq it spawns (`common::evq()` runs in the project root).
//!
//! `tests/allocation.rs` stays a binary of its own: it counts allocations
//! with a global allocator, and other tests' threads would add to the count.

mod common;

mod accounting;
mod checkpoint;
mod completions;
mod compressed;
mod conformance;
mod debug;
mod events;
mod follow;
mod join;
mod join_state;
mod jq_conformance;
mod jq_input;
mod jq_output;
mod kafka;
mod keyed_state;
mod lookup;
mod man;
mod modules;
mod pattern;
mod pattern_state;
mod progress;
mod projection;
mod readme;
mod surprises;
mod threads;
mod windows;
