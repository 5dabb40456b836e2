//! Feeds arbitrary lines and expressions through evq's two ways of reading an
//! event, a full parse and a projection of the fields the expression reads,
//! and checks they agree: same validity, same outputs, same errors.
//!
//! Run with `cargo +nightly fuzz run projection` from the project root (needs
//! cargo-fuzz). The input is split at the first newline: expression, then line.
#![no_main]

use evq::internals::{Globals, Program, fields};
use evq::json;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|&b| b == b'\n') else { return };
    let (expr, line) = (&data[..split], &data[split + 1..]);
    let Ok(expr) = std::str::from_utf8(expr) else { return };
    if expr.contains("now") {
        return; // the clock differs between two runs
    }

    let full = json::parse(line);
    // Validity never depends on how a line is read.
    assert_eq!(json::validate(line).is_ok(), full.is_ok());
    let Some(read) = fields::read_by(expr) else { return };
    let projected = json::project(line, &read);
    assert_eq!(projected.as_ref().err(), full.as_ref().err());
    let (Ok(full), Ok(projected)) = (full, projected) else { return };

    let globals = Globals::new(Vec::new());
    let Ok(program) = Program::compile(expr, "fuzz", &globals) else { return };
    let run = |v| {
        let mut out = Vec::new();
        // Bound the work: some expressions never end.
        let result = program.run(v, |x| {
            out.push(x.to_string());
            out.len() < 100
        });
        (out, result)
    };
    assert_eq!(run(full), run(projected), "expression {expr:?} on line {:?}", String::from_utf8_lossy(line));
});
