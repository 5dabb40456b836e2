//! "No allocation per event on the filter path": a worker runs a filter chain
//! (direct evaluation) over batches of 100 and of 10,000 lines, and the
//! allocations counted while it does must not grow with the number of lines.
//! A map chain is checked the same way: its output goes to the batch's
//! output buffer, which grows by doubling, not per event.

use evq::internals::Formatter;
use evq::internals::Worker;
use evq::internals::direct;
use evq::internals::{Batch, Line, Pool};
use evq::internals::{FilterStage, MapStage, Stage};
use evq::internals::{Globals, Program};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator, counting allocations.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn batch(lines: usize) -> Batch {
    let mut data = Vec::new();
    let mut spans = Vec::new();
    for i in 0..lines {
        let start = data.len();
        data.extend_from_slice(
            format!(
                r#"{{"ts":"2024-03-01T12:00:{:02}Z","level":"{}","data":{{"amount":{}.5,"path":"/api/v1/{i}"}},"tags":["a","b"]}}"#,
                i % 60,
                if i % 3 == 0 { "error" } else { "info" },
                i % 200
            )
            .as_bytes(),
        );
        spans.push(Line {
            start,
            end: data.len(),
            number: i as u64 + 1,
        });
        data.push(b'\n');
    }
    Batch {
        source: 0,
        data,
        lines: spans,
        bytes: 0,
        end: Default::default(),
    }
}

/// Allocations made by `worker.process` on `batch`, and its events settled directly.
fn allocations(worker: &mut Worker, batch: &Batch) -> (u64, u64) {
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let processed = worker.process(batch);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    (after - before, processed.events_direct)
}

fn worker(stages: &[(bool, &str)]) -> Worker {
    let globals = Globals::new(Vec::new());
    let built: Vec<Box<dyn Stage>> = stages
        .iter()
        .enumerate()
        .map(|(i, (is_map, expr))| {
            let program = Program::compile(expr, "test", &globals).expect("compiles");
            let (name, expr) = (format!("stage#{}", i + 1), expr.to_string());
            if *is_map {
                Box::new(MapStage {
                    name,
                    expr,
                    program,
                }) as Box<dyn Stage>
            } else {
                Box::new(FilterStage {
                    name,
                    expr,
                    program,
                })
            }
        })
        .collect();
    let chain = direct::compile(stages, &[]).expect("a direct chain");
    Worker::new(
        built,
        Formatter::default(),
        false,
        None,
        Some(chain),
        Arc::new(Pool::default()),
    )
}

fn check(stages: &[(bool, &str)]) {
    let mut worker = worker(stages);
    let (small, large) = (batch(100), batch(10_000));
    // Warm up: buffers reach their sizes.
    worker.process(&large);
    let (few, direct_few) = allocations(&mut worker, &small);
    let (many, direct_many) = allocations(&mut worker, &large);
    assert_eq!((direct_few, direct_many), (100, 10_000), "{stages:?}");
    assert!(
        many <= few + 40,
        "{stages:?}: {few} allocations for 100 lines, {many} for 10,000"
    );
}

/// One test, so no other test thread allocates while this one counts.
#[test]
fn direct_chains_allocate_nothing_per_event() {
    check(&[(false, ".data.amount > 100")]);
    check(&[
        (
            false,
            r#".level == "error" and (.data.path | test("^/api"))"#,
        ),
        (false, ".data.amount >= 10"),
    ]);
    check(&[
        (false, ".data.amount > 100"),
        (true, "{ts, level, path: .data.path}"),
    ]);
    check(&[(true, ".high = (.data.amount > 100)")]);
}
