//! Feeds arbitrary lines and expressions through direct evaluation and
//! through jaq on a full parse, and checks that whenever direct evaluation
//! answers, its answer is jaq's: the same filter decision, the same map
//! output bytes (also with `-r`), the same validity of the line.
//!
//! Run with `cargo +nightly fuzz run direct` from the project root (needs
//! cargo-fuzz). The input's first byte picks filter or map and `-r`; the rest
//! is split at the first newline: expression, then line.
#![no_main]

use evq::internals::direct::{self, Line, Stage};
use evq::internals::Formatter;
use evq::internals::{Globals, Program, truthy};
use evq::json;
use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

thread_local! {
    /// Compiled programs by expression: compiling jaq's standard library for
    /// every input would take most of the time, and mutations often keep the
    /// expression and change the line.
    static PROGRAMS: RefCell<HashMap<String, Option<Rc<Program>>>> = RefCell::default();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else { return };
    let Some(split) = data.iter().position(|&b| b == b'\n') else { return };
    let (expr, raw) = (&data[..split], &data[split + 1..]);
    let Ok(expr) = std::str::from_utf8(expr) else { return };
    let (is_map, raw_output) = (mode & 1 == 1, mode & 2 == 2);

    // Only expressions jaq compiles reach direct evaluation.
    let program = PROGRAMS.with_borrow_mut(|programs| {
        if programs.len() > 10_000 {
            programs.clear();
        }
        programs
            .entry(expr.to_string())
            .or_insert_with(|| {
                let globals = Globals::new(Vec::new());
                Program::compile(expr, "fuzz", &globals).ok().map(Rc::new)
            })
            .clone()
    });
    let Some(program) = program else { return };
    let Some(chain) = direct::compile(&[(is_map, expr)], &[]) else { return };
    let mut slots = vec![None; chain.slots];
    let located = json::locate(raw, &chain.locate, &mut slots, chain.check_keys);
    let full = json::parse(raw);
    assert_eq!(located.as_ref().err(), full.as_ref().err(), "validity of {raw:?}");
    let (Ok(located), Ok(value)) = (located, full) else { return };
    let line = Line {
        raw,
        slots: &slots,
        located,
        tables: &[],
    };

    // jaq's answer, as the filter and map stages take it.
    let mut outputs = Vec::new();
    let result = program.run(value, |v| {
        outputs.push(v);
        outputs.len() < 2
    });
    match &chain.stages[0] {
        Stage::Filter(e) => {
            let Ok(keep) = line.keeps(e) else { return };
            let first_truthy = outputs.iter().position(truthy);
            match first_truthy {
                Some(_) => assert!(keep, "{expr:?} on {raw:?}: jaq keeps"),
                None => {
                    assert!(result.is_ok(), "{expr:?} on {raw:?}: jaq fails");
                    assert!(!keep, "{expr:?} on {raw:?}: jaq drops");
                }
            }
        }
        Stage::Map(e) => {
            let mut ours = Vec::new();
            let Ok(()) = line.write(e, raw_output, &mut ours) else { return };
            assert!(result.is_ok(), "{expr:?} on {raw:?}: jaq fails");
            assert_eq!(outputs.len(), 1, "{expr:?} on {raw:?}: one output");
            let mut theirs = Vec::new();
            Formatter {
                raw_output,
                ..Default::default()
            }
            .value(&mut theirs, &outputs[0]);
            assert_eq!(
                String::from_utf8_lossy(&ours),
                String::from_utf8_lossy(&theirs),
                "{expr:?} on {raw:?}"
            );
        }
    }
});
