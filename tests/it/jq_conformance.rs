//! Conformance of evq's expression language with jq's: the cases of jq's own
//! `jq.test` (the language tests) and `man.test` (the manual's examples),
//! which live outside the project in ../shared/conformance/jq (see the
//! README.md there). The files are read in place, never copied; when the
//! folder is absent each test says so on stderr and passes. The environment
//! variable `EVQ_CONFORMANCE_DIR` names another conformance folder (a git
//! worktree elsewhere, for instance).
//!
//! A case is a program line, an input line and one line per expected output,
//! cases separated by blank lines, `#` lines comments. Each plain case runs
//! as `evq -j 1 --map=PROGRAM` with the input line as the one NDJSON event on
//! standard input (evq has no `-n`: jq's `null` input is the event `null`),
//! one process per case, a few at a time. Outputs are compared as JSON values
//! the way jq's test runner does (`jv_equal`): numbers by value (`1.0` equals
//! `1`; both sides as f64, so digits beyond f64's precision do not count),
//! objects whatever their key order, the same number of outputs in the same
//! order. A line that is not JSON to serde_json (`nan`, a number out of f64's
//! range) is compared as text.
//!
//! `%%FAIL` cases (a program that must not compile, and jq's message) are
//! counted apart and not run. Cases that need what evq cannot have are counted
//! as not run: jq's test modules (`import`, `include`, `modulemeta`,
//! `get_search_list`), `$__prog_args`, `input`/`inputs` (the next input of
//! jq's test runner), and `have_decnum` (jq built with decNumber or not).
//!
//! Each test asserts that at least `FLOOR` cases agree; run with
//! `--nocapture` to see every case that does not, with what evq gave.

use crate::common;

use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;
use std::time::Duration;

/// Agreeing cases of jq.test (531 plain cases) at least: 424 agree; one
/// less for jq.test:1895 (24455 dates through strptime and mktime), which
/// in a debug build on a busy machine can run past `TIMEOUT`.
const FLOOR_JQ_TEST: usize = 423;
/// Agreeing cases of man.test (231 plain cases) at least.
const FLOOR_MAN_TEST: usize = 219;

/// A case that runs longer is stopped and counted as disagreeing.
const TIMEOUT: Duration = Duration::from_secs(20);

/// Names a case's program must not use to be run (see the module comment).
const NOT_RUN: &[&str] = &[
    "import",
    "include",
    "modulemeta",
    "get_search_list",
    "$__prog_args",
    "input",
    "inputs",
    "have_decnum",
];

/// The folder holding jq.test and man.test, or `None` (after saying so).
fn folder() -> Option<PathBuf> {
    let conformance = match std::env::var_os("EVQ_CONFORMANCE_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => common::root().join("../shared/conformance"),
    };
    if !conformance.is_dir() {
        eprintln!("skipped: ../shared/conformance not found");
        return None;
    }
    let dir = conformance.join("jq");
    assert!(
        dir.is_dir(),
        "{} exists but holds no jq folder",
        conformance.display()
    );
    Some(dir)
}

/// One plain case: where it starts in its file, program, input, outputs.
struct Case {
    line: usize,
    program: String,
    input: String,
    expected: Vec<String>,
}

/// The plain cases of a test file, and how many `%%FAIL` cases it has.
/// As jq's runner reads them: blank and `#` lines between cases are skipped;
/// a case's expected outputs end at a blank line, a `#` line or the end.
fn parse(text: &str) -> (Vec<Case>, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let skip = |l: &str| l.trim().is_empty() || l.starts_with('#');
    let (mut cases, mut fails) = (Vec::new(), 0);
    let mut i = 0;
    while i < lines.len() {
        if skip(lines[i]) {
            i += 1;
            continue;
        }
        if lines[i].starts_with("%%FAIL") {
            fails += 1;
            while i < lines.len() && !lines[i].trim().is_empty() {
                i += 1;
            }
            continue;
        }
        let line = i + 1;
        let program = lines[i].to_string();
        let input = lines.get(i + 1).copied().unwrap_or("").to_string();
        i += 2;
        let mut expected = Vec::new();
        while i < lines.len() && !skip(lines[i]) {
            expected.push(lines[i].to_string());
            i += 1;
        }
        cases.push(Case {
            line,
            program,
            input,
            expected,
        });
    }
    (cases, fails)
}

/// Whether `program` uses `name` as a whole word (`input`, not
/// `input_filename`) outside string literals (not in `"the input"`).
fn uses(program: &str, name: &str) -> bool {
    let (mut code, mut in_string, mut escaped) = (String::new(), false, false);
    for c in program.chars() {
        match (in_string, escaped, c) {
            (true, true, _) => escaped = false,
            (true, false, '\\') => escaped = true,
            (_, false, '"') => in_string = !in_string,
            (true, ..) => {}
            (false, ..) => code.push(c),
        }
    }
    let program = code.as_str();
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    program.match_indices(name).any(|(at, _)| {
        let before = program[..at].chars().next_back();
        let after = program[at + name.len()..].chars().next();
        !before.is_some_and(|c| is_ident(c) || c == '$' && !name.starts_with('$'))
            // `{import: 1}` is an object key, not the keyword.
            && !after.is_some_and(|c| is_ident(c) || c == ':')
    })
}

/// jq's equality of two values: numbers by value, objects in any key order.
fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| equal(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| equal(v, w)))
        }
        _ => a == b,
    }
}

fn same_output(expected: &str, got: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<Value>(s.trim());
    match (parse(expected), parse(got)) {
        (Ok(a), Ok(b)) => equal(&a, &b),
        _ => expected.trim() == got.trim(),
    }
}

/// What evq gave for a case: its output lines and its standard error.
struct Got {
    lines: Vec<String>,
    stderr: String,
}

fn run(case: &Case) -> Got {
    let mut child = common::evq()
        .args(["-j", "1", &format!("--map={}", case.program)])
        .env("PAGER", "less")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evq");
    let mut stdin = child.stdin.take().unwrap();
    let input = format!("{}\n", case.input);
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let (status, stdout, stderr) = common::output_within(child, TIMEOUT);
    let timed_out = status.is_none();
    let _ = writer.join();
    let mut stderr = String::from_utf8_lossy(&stderr).into_owned();
    if timed_out {
        stderr.push_str(&format!("(stopped after {TIMEOUT:?})"));
    }
    Got {
        lines: String::from_utf8_lossy(&stdout)
            .lines()
            .map(str::to_string)
            .collect(),
        stderr,
    }
}

fn agrees(case: &Case, got: &Got) -> bool {
    case.expected.len() == got.lines.len()
        && case
            .expected
            .iter()
            .zip(&got.lines)
            .all(|(e, g)| same_output(e, g))
}

/// Runs the plain cases of `file` and asserts that at least `floor` agree;
/// prints the ones that do not.
fn check(file: &str, floor: usize) {
    let Some(dir) = folder() else { return };
    let path = dir.join(file);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let (cases, fails) = parse(&text);
    let (skipped, cases): (Vec<&Case>, Vec<&Case>) = cases
        .iter()
        .partition(|c| NOT_RUN.iter().any(|name| uses(&c.program, name)));
    let next = Mutex::new(0usize);
    let results: Mutex<Vec<(usize, Got)>> = Mutex::default();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 3));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                loop {
                    let i = {
                        let mut next = next.lock().unwrap();
                        *next += 1;
                        *next - 1
                    };
                    let Some(case) = cases.get(i) else { break };
                    let got = run(case);
                    results.lock().unwrap().push((i, got));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    let mut agreed = 0;
    let mut report = String::new();
    for (i, got) in &results {
        let case = cases[*i];
        if agrees(case, got) {
            agreed += 1;
            continue;
        }
        report.push_str(&format!(
            "--- {file}:{}\nprogram:  {}\ninput:    {}\nexpected: {}\ngot:      {}\n",
            case.line,
            case.program,
            case.input,
            case.expected.join(" | "),
            got.lines.join(" | "),
        ));
        let stderr = got.stderr.trim();
        if !stderr.is_empty() {
            let first: Vec<&str> = stderr.lines().take(3).collect();
            report.push_str(&format!("stderr:   {}\n", first.join("\n          ")));
        }
    }
    let total = cases.len() + skipped.len();
    println!("{report}");
    println!(
        "{file}: {agreed}/{total} plain cases agree ({} not run: modules, \
         $__prog_args, input/inputs, have_decnum; {fails} %%FAIL cases not counted)",
        skipped.len()
    );
    for case in &skipped {
        println!("  not run: {file}:{}: {}", case.line, case.program);
    }
    assert!(
        agreed >= floor,
        "{file}: {agreed}/{total} cases agree with jq, fewer than the floor {floor} \
         (run with --nocapture to see them)"
    );
}

#[test]
fn jq_test_cases_agree_with_jq() {
    check("jq.test", FLOOR_JQ_TEST);
}

#[test]
fn man_test_cases_agree_with_jq() {
    check("man.test", FLOOR_MAN_TEST);
}

#[test]
fn cases_are_parsed_as_jq_reads_them() {
    let text = "# comment\n\n.a\n{\"a\":1}\n1\n\n%%FAIL\n}\njq: error\n\n.[]\n[1,2]\n1\n2\n# next\n.\nnull\nnull\n";
    let (cases, fails) = parse(text);
    assert_eq!(fails, 1);
    let got: Vec<(usize, &str, &str, Vec<String>)> = cases
        .iter()
        .map(|c| (c.line, &*c.program, &*c.input, c.expected.clone()))
        .collect();
    assert_eq!(
        got,
        [
            (3, ".a", "{\"a\":1}", vec!["1".to_string()]),
            (11, ".[]", "[1,2]", vec!["1".to_string(), "2".to_string()]),
            (16, ".", "null", vec!["null".to_string()]),
        ]
    );
    assert!(uses("try input catch .", "input"));
    assert!(!uses("input_filename", "input"));
    assert!(!uses("{import:14,include:15}", "import"));
    assert!(!uses("$__loc__", "input"));
    assert!(uses("[$__prog_args]", "$__prog_args"));
    assert!(!uses(r#""the input \"input\" was \(.)""#, "input"));
    assert!(same_output("1.0", "1"));
    assert!(same_output("{\"a\":1,\"b\":2}", "{\"b\":2,\"a\":1.0}"));
    assert!(!same_output("[1,2]", "[2,1]"));
}

/// Builtins that read the whole event give what a full parse gives (the
/// projection of `fields.rs` must not cut the event short for them).
#[test]
fn whole_event_builtins_agree_with_a_full_parse() {
    let input = b"{\"a\":{\"b\":1,\"c\":[1,2]},\"d\":\"x\"}\n{\"a\":{\"b\":2},\"d\":null}\n";
    for args in [
        &["-m", "pick(.a.b)"][..],
        &["-f", "getpath([\"a\",\"b\"]) == 1"],
        &["-m", "[leaf_paths]"],
        &["-m", "[tostream]"],
        &["-m", "del(.a.c)"],
        &["-m", "setpath([\"a\",\"e\"]; 3)"],
        &["-m", "[paths] | length"],
    ] {
        let projected = common::run(args, input);
        let mut full = common::evq();
        full.args(args).env("EVQ_FULL_PARSE", "1");
        let full = common::feed(full, input);
        assert_eq!(
            common::status(&projected),
            0,
            "{args:?}: {}",
            common::stderr(&projected)
        );
        assert_eq!(
            common::stdout(&projected),
            common::stdout(&full),
            "{args:?}"
        );
    }
    let out = common::run(&["-m", "pick(.a.b)"], input);
    assert_eq!(
        common::stdout(&out),
        "{\"a\":{\"b\":1}}\n{\"a\":{\"b\":2}}\n"
    );
}

/// `input_filename` is the event's file (null on standard input) and
/// `input_line_number` its line.
#[test]
fn input_filename_and_line_number_name_the_event() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    std::fs::write(&path, "{\"a\":1}\n\n{\"a\":2}\n").unwrap();
    let file = path.to_str().unwrap();
    let out = common::run(
        &["-m", "[input_filename, input_line_number, .a]", file],
        b"",
    );
    assert_eq!(
        common::stdout(&out),
        format!("[{file:?},1,1]\n[{file:?},3,2]\n")
    );
    let out = common::run(&["-m", "[input_filename, input_line_number]"], b"{}\n{}\n");
    assert_eq!(common::stdout(&out), "[null,1]\n[null,2]\n");
}
