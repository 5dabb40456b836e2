//! evq: a command-line stream processor for NDJSON events.
//!
//! The binary (`src/main.rs`) only calls [`main`]; everything is here, in
//! folders by role. How a run flows:
//!
//! ```text
//! cli ─▶ plan ─▶ runtime ─┬─ reader thread:  source ──▶ batches of lines
//!                         ├─ worker threads: stage (jq, json) ──▶ output bytes
//!                         └─ this thread:    results in order ──▶ sink, report
//! ```
//!
//! - `cli`: every flag, defined once; help, man page and completions.
//! - `plan`: the validated run plan built from the flags; every usage error
//!   is found there, before any input is read.
//! - `runtime`: the reader, the workers, the ordering collector, keyed state
//!   (its owner, watermark, timers and checkpoint), signals.
//! - `source`: inputs (files, standard input; following, decompression,
//!   batching, buffer pools, checkpoint positions).
//! - `sink`: event output (stdout, `-o`) and its formats, the dead letter.
//! - `stage`: what runs on each event: filter, map, and the stateful window.
//! - `jq`: jaq programs, builtins, compile-error reports, which fields an
//!   expression reads, direct evaluation without jaq, the `--lookup` tables
//!   as `$NAME` sees them (their files are read by `plan`).
//! - `json`: the scanner (validate, parse, locate, project) and the writer.
//! - `report`: stats, progress bar and standard error, exit statuses.
//!
//! Imports run one way: `runtime` → `plan` → `cli` → `stage` → `jq` →
//! `json`, with `source` and `sink` used by `runtime` and `plan` and using
//! only `json`; `report` imports nothing of evq's, so every layer may write
//! to it.
//! A new source goes in `source/`, a new sink in `sink/`, a new stage in
//! `stage/` with one line in `plan` that builds it.
//!
//! The JSON scanner builds jaq values, and can build only the fields an
//! expression reads:
//!
//! ```
//! use evq::internals::fields;
//! use evq::json;
//!
//! let line = br#"{"level":"error","data":{"amount":250,"path":"/api"},"msg":"x"}"#;
//! let read = fields::read_by(".data.amount > 100").expect("reads fixed paths only");
//! assert_eq!(json::project(line, &read).unwrap().to_string(), r#"{"data":{"amount":250}}"#);
//! assert_eq!(fields::read_by("keys"), None); // needs the whole event
//! assert!(json::validate(br#"{"a":1,}"#).is_err());
//! ```
#![forbid(unsafe_code)]

// jaq-json's writing macros (used by `json::write_json`) name `alloc`.
extern crate alloc;

mod cli;
mod jq;
#[doc(hidden)]
pub mod json;
#[doc(hidden)]
pub mod kafka;
mod plan;
mod report;
mod runtime;
mod sink;
mod source;
mod stage;

pub use cli::command;

/// Runs evq on the process's command line and returns its exit status:
/// parse (`cli`), validate (`plan`), run (`runtime`). `--generate` writes
/// the man page or a shell completion instead (exit 4 if it cannot).
pub fn main() -> i32 {
    let started = std::time::Instant::now();
    let args = cli::parse();
    if let Some(kind) = args.generate {
        return match cli::generate(kind, &mut std::io::stdout()) {
            Ok(()) => report::status::OK,
            Err(e) => {
                eprintln!("evq: {e:#}");
                report::status::IO
            }
        };
    }
    let stop = runtime::signal::install();
    match plan::Plan::new(args) {
        Ok(plan) => runtime::run(plan, stop, started),
        Err(error) => {
            eprintln!("{error}");
            error.status()
        }
    }
}

/// The pieces the integration tests and the fuzz targets drive on their
/// own (the allocation test, the projection and direct-evaluation fuzz
/// targets). Not an interface: evq is a command.
#[doc(hidden)]
pub mod internals {
    pub use crate::jq::{Globals, Program, direct, fields, truthy};
    pub use crate::runtime::worker::Worker;
    pub use crate::sink::Formatter;
    pub use crate::source::{Batch, Line, Pool};
    pub use crate::stage::{FilterStage, MapStage, Stage};
}
