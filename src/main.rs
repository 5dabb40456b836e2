//! evq: a command-line stream processor for NDJSON events. The binary is a
//! thin shell over the library (`src/lib.rs`): it runs the command line and
//! exits with its status.
#![forbid(unsafe_code)]

// Events allocate many small values from several threads; mimalloc is much
// faster at that than the system allocator (see benches/run.py).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    std::process::exit(evq::main());
}
