//! Conformance of evq's strict JSON validation against the parsing files of
//! JSONTestSuite, which live outside the project in ../shared/conformance
//! (see its README.md for how they map to NDJSON). The files are read in
//! place and never copied into the project; when the folder is absent every
//! test here says so on stderr and passes.
//!
//! Each test runs evq over all files of one kind at once (few processes, so
//! the suite stays fast), once with no stage (validation only) and once with
//! `-f true` (every event is also parsed into a jq value), and maps the
//! results back to the files so that a failure names them.

use crate::common;

use base64::Engine as _;
use serde_json::Value;
use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

const SKIP: &str = "skipped: ../shared/conformance not found";

/// A run that takes longer is a hang: evq is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);

/// The stage settings every run is repeated with: validation alone, and a
/// stage that needs the parsed value (but leaves the event unchanged, so it is
/// still written byte for byte).
const MODES: [&[&str]; 2] = [&[], &["-f", "true"]];

/// `y_` files whose line breaks are insignificant whitespace: the README says
/// to replace them by spaces to get one NDJSON record.
const Y_JOINED: [&str; 2] = [
    "y_array_with_1_and_newline.json",
    "y_object_with_newlines.json",
];

/// `n_` files whose body holds line breaks: every line is a record, and at
/// least one of them must fail (some lines, such as `4`, are valid alone).
const N_MULTI_LINE: [&str; 3] = [
    "n_array_newlines_unclosed.json",
    "n_array_unclosed_with_new_lines.json",
    "n_string_unescaped_newline.json",
];

/// `n_` files that hold no record at all as NDJSON: empty, a lone space (a
/// blank line), or a lone UTF-8 byte order mark (which evq drops at the start
/// of a file). An NDJSON file without a non-blank line has no event, so there
/// is nothing to reject; the tests check that evq reads no event and writes
/// nothing for them.
const N_BLANK: [&str; 3] = [
    "n_single_space.json",
    "n_structure_UTF8_BOM_no_data.json",
    "n_structure_no_data.json",
];

/// Files written to be hard on a parser (deep nesting).
const ADVERSARIAL: [&str; 2] = [
    "n_structure_100000_opening_arrays.json",
    "i_structure_500_nested_arrays.json",
];

/// The test_parsing folder, or `None` (after saying so) when
/// ../shared/conformance is not there.
fn suite() -> Option<PathBuf> {
    let conformance = common::root().join("../shared/conformance");
    if !conformance.is_dir() {
        eprintln!("{SKIP}");
        return None;
    }
    let dir = conformance.join("JSONTestSuite/test_parsing");
    assert!(
        dir.is_dir(),
        "../shared/conformance exists but holds no JSONTestSuite/test_parsing folder"
    );
    Some(dir)
}

/// One file of the suite.
struct Case {
    name: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Case {
    /// The path as given to evq, which is also the `source` of its dead-letter records.
    fn arg(&self) -> String {
        self.path.to_string_lossy().into_owned()
    }
}

/// The `.json` files of `dir` whose name starts with `prefix`, sorted by name.
fn cases(dir: &Path, prefix: &str) -> Vec<Case> {
    let mut cases: Vec<Case> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter_map(|path| {
            let name = path.file_name()?.to_str()?.to_string();
            (name.starts_with(prefix) && name.ends_with(".json")).then(|| Case {
                bytes: common::read(&path),
                name,
                path,
            })
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        !cases.is_empty(),
        "no {prefix}*.json file in {}",
        dir.display()
    );
    cases
}

/// The records of a file as NDJSON, with their 1-based line numbers, as evq
/// documents its reading: a UTF-8 byte order mark at the start of the file is
/// dropped, lines end at LF, a CR before the LF is dropped, blank lines
/// (spaces, tabs) are no record, and a missing final newline is fine.
fn records(bytes: &[u8]) -> Vec<(u64, &[u8])> {
    let body = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let body = body.strip_suffix(b"\n").unwrap_or(body);
    if body.is_empty() {
        return Vec::new();
    }
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| (i as u64 + 1, line.strip_suffix(b"\r").unwrap_or(line)))
        .filter(|(_, line)| !line.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')))
        .collect()
}

/// Bytes for a failure message.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() > 80 {
        format!(
            "{:?}... ({} bytes)",
            text.chars().take(80).collect::<String>(),
            bytes.len()
        )
    } else {
        format!("{text:?}")
    }
}

fn describe(mode: &[&str]) -> String {
    if mode.is_empty() {
        "with no stage".into()
    } else {
        format!("with {}", mode.join(" "))
    }
}

/// Runs evq in the project root with `args`, killing it after `TIMEOUT`.
fn run_bounded(args: &[OsString], what: &str) -> Output {
    let child = common::evq()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn evq");
    let (status, stdout, stderr) = common::output_within(child, TIMEOUT);
    let Some(status) = status else {
        panic!("evq did not finish within {TIMEOUT:?} on {what}");
    };
    Output {
        status,
        stdout,
        stderr,
    }
}

/// Why a run did not end normally (a signal, a panic, a stack overflow), if it did not.
fn abnormal(out: &Output) -> Option<String> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail: String = stderr
        .lines()
        .filter(|l| !l.starts_with('{'))
        .take(5)
        .collect::<Vec<_>>()
        .join(" | ");
    if out.status.code().is_none() {
        Some(format!("killed by a signal ({}): {tail}", out.status))
    } else if stderr.contains("panicked") || stderr.contains("overflowed its stack") {
        Some(format!("crashed ({}): {tail}", out.status))
    } else if !matches!(out.status.code(), Some(0 | 3)) {
        Some(format!("unexpected {}: {tail}", out.status))
    } else {
        None
    }
}

/// Fails unless the run over `inputs` (name, file given to evq) ended
/// normally; when it did not, runs evq on each input alone to name the
/// culprits.
fn assert_ended_normally(out: &Output, inputs: &[(String, PathBuf)], mode: &[&str], kind: &str) {
    let Some(problem) = abnormal(out) else { return };
    let culprits: Vec<String> = inputs
        .iter()
        .filter_map(|(name, path)| {
            let mut args: Vec<OsString> = mode.iter().map(OsString::from).collect();
            args.extend(["-q".into(), path.into()]);
            let alone = run_bounded(&args, name);
            abnormal(&alone).map(|p| format!("{name}: {p}"))
        })
        .collect();
    panic!(
        "evq {} over the {kind} files ended abnormally: {problem}\nrun alone, these files make it fail:\n{}",
        describe(mode),
        culprits.join("\n")
    );
}

/// Dead-letter records by (source, line).
fn dead_letters(path: &Path) -> HashMap<(String, u64), Value> {
    if !path.exists() {
        return HashMap::new();
    }
    let text = String::from_utf8(common::read(path)).expect("dead-letter file is UTF-8");
    text.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("dead-letter line is not JSON ({e}): {line}"));
            let source = v["source"]
                .as_str()
                .expect("dead-letter source")
                .to_string();
            let number = v["line"].as_u64().expect("dead-letter line");
            ((source, number), v)
        })
        .collect()
}

/// The raw bytes a dead-letter record keeps (`raw`, or `raw_base64` for non-UTF-8 lines).
fn dead_raw(record: &Value) -> Vec<u8> {
    if let Some(raw) = record["raw"].as_str() {
        raw.as_bytes().to_vec()
    } else {
        let b64 = record["raw_base64"].as_str().unwrap_or_else(|| {
            panic!("dead-letter record has neither raw nor raw_base64: {record}")
        });
        base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap_or_else(|e| panic!("raw_base64 is not base64 ({e}): {record}"))
    }
}

fn count(stats: &Value, field: &str) -> u64 {
    stats[field]
        .as_u64()
        .unwrap_or_else(|| panic!("stats have no {field}: {stats}"))
}

/// Splits evq's output into lines (each written line ends with a newline).
fn output_lines(stdout: &[u8]) -> Vec<&[u8]> {
    let body = stdout.strip_suffix(b"\n").unwrap_or(stdout);
    if body.is_empty() {
        Vec::new()
    } else {
        body.split(|&b| b == b'\n').collect()
    }
}

/// The one NDJSON line a `y_` file stands for. Every `y_` file can be
/// represented so; the checks here keep that claim honest: the file's own
/// final newline only ends its line, the README's two files have their inner
/// breaks replaced by spaces (insignificant whitespace), no other file holds a
/// break, and none starts with a byte order mark or ends with a CR (both
/// would be dropped by evq, so the output could not equal the input).
fn y_line(case: &Case) -> Vec<u8> {
    let body = case.bytes.strip_suffix(b"\n").unwrap_or(&case.bytes);
    let line: Vec<u8> = if Y_JOINED.contains(&case.name.as_str()) {
        assert!(
            body.contains(&b'\n'),
            "{}: the README says it holds a line break; it does not",
            case.name
        );
        body.iter()
            .map(|&b| if b == b'\n' { b' ' } else { b })
            .collect()
    } else {
        assert!(
            !body.contains(&b'\n'),
            "{}: holds a line break that the README does not list",
            case.name
        );
        body.to_vec()
    };
    assert!(
        !line.starts_with(b"\xEF\xBB\xBF"),
        "{}: starts with a byte order mark",
        case.name
    );
    assert!(!line.ends_with(b"\r"), "{}: ends with a CR", case.name);
    assert!(
        !line.iter().all(|b| matches!(b, b' ' | b'\t')),
        "{}: is blank as NDJSON",
        case.name
    );
    line
}

#[test]
fn y_files_are_accepted_and_written_unchanged() {
    let Some(dir) = suite() else { return };
    let cases = cases(&dir, "y_");
    let lines: Vec<Vec<u8>> = cases.iter().map(y_line).collect();
    let tmp = common::tempdir();
    let input = tmp.path().join("y.ndjson");
    let mut bytes = Vec::new();
    for line in &lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    std::fs::write(&input, &bytes).expect("write y.ndjson");

    for (m, mode) in MODES.iter().enumerate() {
        let dead = tmp.path().join(format!("dead-{m}.ndjson"));
        let mut args: Vec<OsString> = mode.iter().map(OsString::from).collect();
        args.extend([
            "-q".into(),
            "--stats=json".into(),
            "--dead-letter".into(),
            dead.clone().into(),
            input.clone().into(),
        ]);
        let out = run_bounded(&args, "the y_ files");
        if abnormal(&out).is_some() {
            // Name the culprits: one temporary file per record.
            let singles: Vec<(String, PathBuf)> = cases
                .iter()
                .zip(&lines)
                .map(|(case, line)| {
                    let path = tmp.path().join(&case.name);
                    std::fs::write(&path, line).expect("write a y_ record");
                    (case.name.clone(), path)
                })
                .collect();
            assert_ended_normally(&out, &singles, mode, "y_");
        }
        let how = describe(mode);
        let source = input.to_string_lossy().into_owned();
        let dead = dead_letters(&dead);
        let mut failures = Vec::new();
        let mut expected = Vec::new();
        for (i, (case, line)) in cases.iter().zip(&lines).enumerate() {
            match dead.get(&(source.clone(), i as u64 + 1)) {
                Some(record) => {
                    failures.push(format!("{}: rejected: {}", case.name, record["error"]))
                }
                None => expected.push((case, line)),
            }
        }
        let got = output_lines(&out.stdout);
        for ((case, want), got) in expected.iter().zip(&got) {
            if got != &want.as_slice() {
                failures.push(format!(
                    "{}: written as {} instead of {}",
                    case.name,
                    show(got),
                    show(want)
                ));
            }
        }
        if got.len() != expected.len() {
            failures.push(format!(
                "stdout has {} lines for {} accepted records",
                got.len(),
                expected.len()
            ));
        }
        let stats = common::stats_json(&out);
        let n = cases.len() as u64;
        for (field, want) in [
            ("events_ingested", n),
            ("events_emitted", n),
            ("events_failed", 0),
            ("parse_failed", 0),
        ] {
            if count(&stats, field) != want {
                failures.push(format!(
                    "stats {field} is {}, expected {want}",
                    count(&stats, field)
                ));
            }
        }
        if common::status(&out) != 0 {
            failures.push(format!("exit status {}, expected 0", common::status(&out)));
        }
        assert!(
            failures.is_empty(),
            "evq {how} mishandles y_ files (which must be accepted and written unchanged):\n{}",
            failures.join("\n")
        );
    }
}

#[test]
fn n_files_are_rejected() {
    let Some(dir) = suite() else { return };
    let cases = cases(&dir, "n_");
    let tmp = common::tempdir();
    for (m, mode) in MODES.iter().enumerate() {
        let dead_path = tmp.path().join(format!("dead-{m}.ndjson"));
        let mut args: Vec<OsString> = mode.iter().map(OsString::from).collect();
        args.extend([
            "-q".into(),
            "--stats=json".into(),
            "--dead-letter".into(),
            dead_path.clone().into(),
        ]);
        args.extend(cases.iter().map(|c| OsString::from(&c.path)));
        let out = run_bounded(&args, "the n_ files");
        let inputs: Vec<(String, PathBuf)> = cases
            .iter()
            .map(|c| (c.name.clone(), c.path.clone()))
            .collect();
        assert_ended_normally(&out, &inputs, mode, "n_");
        let how = describe(mode);
        let stats = common::stats_json(&out);
        let per_input = stats["inputs"].as_array().expect("stats inputs");
        assert_eq!(
            per_input.len(),
            cases.len(),
            "stats list one input per file"
        );
        let dead = dead_letters(&dead_path);

        let mut failures = Vec::new();
        let mut blank = Vec::new();
        let mut multi = Vec::new();
        let mut expected_stdout = Vec::new();
        for (case, input) in cases.iter().zip(per_input) {
            let source = case.arg();
            assert_eq!(
                input["path"].as_str(),
                Some(source.as_str()),
                "stats inputs are in command-line order"
            );
            let records = records(&case.bytes);
            let read = input["lines"].as_u64().expect("input lines");
            let failed = input["failed"].as_u64().expect("input failed");
            if read != records.len() as u64 {
                failures.push(format!(
                    "{}: evq read {read} events, the file has {} records",
                    case.name,
                    records.len()
                ));
            }
            for &(number, raw) in &records {
                match dead.get(&(source.clone(), number)) {
                    Some(record) => {
                        if dead_raw(record) != raw {
                            failures.push(format!(
                                "{}:{number}: dead letter keeps {} instead of {}",
                                case.name,
                                show(&dead_raw(record)),
                                show(raw)
                            ));
                        }
                        if !record["stage"].is_null() {
                            failures.push(format!(
                                "{}:{number}: dead letter stage is {}, expected null",
                                case.name, record["stage"]
                            ));
                        }
                    }
                    None if records.len() == 1 => failures.push(format!(
                        "{}: accepted {} (must be rejected)",
                        case.name,
                        show(raw)
                    )),
                    // One line of a multi-line file that is valid on its own.
                    None => {
                        expected_stdout.extend_from_slice(raw);
                        expected_stdout.push(b'\n');
                    }
                }
            }
            match records.len() {
                0 => blank.push(case.name.as_str()),
                1 => {}
                n => {
                    multi.push(case.name.as_str());
                    if failed == 0 {
                        failures.push(format!("{}: none of its {n} lines was rejected", case.name));
                    }
                }
            }
        }
        assert_eq!(blank, N_BLANK, "the n_ files that hold no NDJSON record");
        assert_eq!(
            multi, N_MULTI_LINE,
            "the n_ files that hold several NDJSON records"
        );
        if out.stdout != expected_stdout {
            failures.push(format!(
                "stdout is {} but only the lines valid on their own of the multi-line files, {}, may appear",
                show(&out.stdout),
                show(&expected_stdout)
            ));
        }
        let failed = count(&stats, "events_failed");
        if failed != dead.len() as u64 || count(&stats, "parse_failed") != failed {
            failures.push(format!(
                "stats events_failed {failed}, parse_failed {}, but {} dead-letter records",
                count(&stats, "parse_failed"),
                dead.len()
            ));
        }
        if count(&stats, "events_ingested") != count(&stats, "events_emitted") + failed {
            failures.push(format!("stats do not add up: {stats}"));
        }
        if common::status(&out) != 3 {
            failures.push(format!("exit status {}, expected 3", common::status(&out)));
        }
        assert!(
            failures.is_empty(),
            "evq {how} mishandles n_ files (which must be rejected):\n{}",
            failures.join("\n")
        );
    }
}

#[test]
fn i_files_end_normally_and_are_accounted_for() {
    let Some(dir) = suite() else { return };
    let cases = cases(&dir, "i_");
    let tmp = common::tempdir();
    for (m, mode) in MODES.iter().enumerate() {
        let dead_path = tmp.path().join(format!("dead-{m}.ndjson"));
        let mut args: Vec<OsString> = mode.iter().map(OsString::from).collect();
        args.extend([
            "-q".into(),
            "--stats=json".into(),
            "--dead-letter".into(),
            dead_path.clone().into(),
        ]);
        args.extend(cases.iter().map(|c| OsString::from(&c.path)));
        let out = run_bounded(&args, "the i_ files");
        let inputs: Vec<(String, PathBuf)> = cases
            .iter()
            .map(|c| (c.name.clone(), c.path.clone()))
            .collect();
        assert_ended_normally(&out, &inputs, mode, "i_");
        let how = describe(mode);
        let stats = common::stats_json(&out);
        let per_input = stats["inputs"].as_array().expect("stats inputs");
        assert_eq!(
            per_input.len(),
            cases.len(),
            "stats list one input per file"
        );
        let dead = dead_letters(&dead_path);

        let mut failures = Vec::new();
        let (mut accepted, mut rejected) = (Vec::new(), Vec::new());
        let mut expected_stdout = Vec::new();
        for (case, input) in cases.iter().zip(per_input) {
            let source = case.arg();
            assert_eq!(
                input["path"].as_str(),
                Some(source.as_str()),
                "stats inputs are in command-line order"
            );
            let records = records(&case.bytes);
            assert_eq!(
                records.len(),
                1,
                "{}: an i_ file is one NDJSON record",
                case.name
            );
            let (number, raw) = records[0];
            let read = input["lines"].as_u64().expect("input lines");
            let failed = input["failed"].as_u64().expect("input failed");
            let dead_letter = dead.get(&(source, number));
            if read != 1 || failed != dead_letter.is_some() as u64 {
                failures.push(format!(
                    "{}: stats say {read} events, {failed} failed; dead letter {}",
                    case.name,
                    if dead_letter.is_some() {
                        "has it"
                    } else {
                        "has nothing"
                    }
                ));
            }
            match dead_letter {
                Some(record) => {
                    rejected.push(case.name.as_str());
                    if dead_raw(record) != raw {
                        failures.push(format!(
                            "{}: dead letter keeps {} instead of {}",
                            case.name,
                            show(&dead_raw(record)),
                            show(raw)
                        ));
                    }
                }
                None => {
                    accepted.push(case.name.as_str());
                    expected_stdout.extend_from_slice(raw);
                    expected_stdout.push(b'\n');
                }
            }
        }
        if out.stdout != expected_stdout {
            failures.push(format!(
                "stdout is {} but the accepted records are {}",
                show(&out.stdout),
                show(&expected_stdout)
            ));
        }
        let (ingested, emitted, failed) = (
            count(&stats, "events_ingested"),
            count(&stats, "events_emitted"),
            count(&stats, "events_failed"),
        );
        if ingested != cases.len() as u64
            || emitted + failed != ingested
            || failed != rejected.len() as u64
        {
            failures.push(format!(
                "stats: {ingested} ingested, {emitted} emitted, {failed} failed, for {} files of which {} were dead-lettered",
                cases.len(),
                rejected.len()
            ));
        }
        let want_status = if failed > 0 { 3 } else { 0 };
        if common::status(&out) != want_status {
            failures.push(format!(
                "exit status {}, expected {want_status}",
                common::status(&out)
            ));
        }
        eprintln!(
            "i_ files {how}: {} accepted, {} rejected: {}",
            accepted.len(),
            rejected.len(),
            rejected.join(" ")
        );
        assert!(
            failures.is_empty(),
            "evq {how} does not account for i_ files:\n{}",
            failures.join("\n")
        );
    }
}

#[test]
fn adversarial_files_finish_quickly() {
    let Some(dir) = suite() else { return };
    for name in ADVERSARIAL {
        let path = dir.join(name);
        for mode in MODES {
            let mut args: Vec<OsString> = mode.iter().map(OsString::from).collect();
            args.extend(["-q".into(), "--stats=json".into(), path.clone().into()]);
            let started = Instant::now();
            let out = run_bounded(&args, name);
            let took = started.elapsed();
            assert_ended_normally(&out, &[(name.to_string(), path.clone())], mode, name);
            assert!(
                took < Duration::from_secs(10),
                "evq {} took {took:?} on {name}",
                describe(mode)
            );
            let stats = common::stats_json(&out);
            assert_eq!(count(&stats, "events_ingested"), 1, "{name}: {stats}");
            assert_eq!(
                count(&stats, "events_emitted") + count(&stats, "events_failed"),
                1,
                "{name}: {stats}"
            );
            if name.starts_with("n_") {
                assert_eq!(
                    count(&stats, "events_failed"),
                    1,
                    "{name} must be rejected {}",
                    describe(mode)
                );
                assert!(out.stdout.is_empty(), "{name}: written to stdout");
                assert_eq!(common::status(&out), 3, "{name}");
            }
        }
    }
}
