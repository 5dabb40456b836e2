//! evq: a command-line stream processor for NDJSON events.
//!
//! The binary (`src/main.rs`) is a thin shell over this library; the library
//! exists so that the pieces can be tested and fuzzed on their own (see
//! `fuzz/`). How a run flows: `cli` (flag definitions) → `plan` (validated
//! run plan) → `input` (reader thread, batches of lines) → `worker` (each
//! line through the `stage`s, parsed by `json`, projected as `fields` says)
//! → `exec` (order, outputs, accounts) → `output`, `stats`, `progress`.
//!
//! The JSON scanner builds jaq values, and can build only the fields an
//! expression reads:
//!
//! ```
//! use evq::{fields, json};
//!
//! let line = br#"{"level":"error","data":{"amount":250,"path":"/api"},"msg":"x"}"#;
//! let read = fields::read_by(".data.amount > 100").expect("reads fixed paths only");
//! assert_eq!(json::project(line, &read).unwrap().to_string(), r#"{"data":{"amount":250}}"#);
//! assert_eq!(fields::read_by("keys"), None); // needs the whole event
//! assert!(json::validate(br#"{"a":1,}"#).is_err());
//! ```
#![forbid(unsafe_code)]

// jaq-json's writing macros (used by `output::write_json`) name `alloc`.
extern crate alloc;

pub mod builtins;
pub mod checkpoint;
pub mod cli;
pub mod direct;
pub mod exec;
pub mod fields;
pub mod input;
pub mod jq;
pub mod json;
pub mod output;
pub mod plan;
pub mod progress;
pub mod signal;
pub mod stage;
pub mod stats;
pub mod status;
pub mod worker;
