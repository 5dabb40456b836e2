//! SIGINT and SIGTERM: recorded in a flag the reader and the executor poll,
//! so evq stops reading, processes and writes what it has read, and exits.
//! A second signal ends evq at once (for an output that never drains).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize};

/// Installs the handlers; the flag holds the number of the signal received (0: none).
pub fn install() -> Arc<AtomicUsize> {
    let flag = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration fails only for forbidden signals, which these are not.
        signal_hook::flag::register_conditional_shutdown(
            sig,
            crate::report::status::signalled(sig as usize),
            Arc::clone(&seen),
        )
        .expect("install signal handler");
        signal_hook::flag::register(sig, Arc::clone(&seen)).expect("install signal handler");
        signal_hook::flag::register_usize(sig, Arc::clone(&flag), sig as usize)
            .expect("install signal handler");
    }
    flag
}
