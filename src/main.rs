//! evq: a command-line stream processor for NDJSON events.
//! main parses the command line, builds the plan, runs it and exits with its status.
#![forbid(unsafe_code)]

use evq::{cli, exec, plan, signal};
use std::io::Write;

// Events allocate many small values from several threads; mimalloc is much
// faster at that than the system allocator (see benches/run.py).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let started = std::time::Instant::now();
    let args = cli::parse();
    if let Some(kind) = args.generate {
        let mut out = Vec::new();
        if cli::completions(kind, &mut out).is_none() {
            out = cli::man_page().expect("render man page");
        }
        let _ = std::io::stdout().write_all(&out);
        return;
    }
    let stop = signal::install();
    let code = match plan::Plan::new(args) {
        Ok(plan) => exec::run(plan, stop, started),
        Err(fatal) => {
            eprintln!("{}", fatal.message);
            fatal.status
        }
    };
    std::process::exit(code);
}
