//! Differential test of "read only what a stage needs": every chain here runs
//! twice over the same input, once building only the fields the stages read
//! and once parsing every event whole (`--full-parse`), and the two runs must
//! agree on output bytes, failure reports, dead letter, stats and exit status.
//! A second generator stays within what direct evaluation takes (paths,
//! literals, comparisons, `and`/`or`/`not`, `test`, objects, `.k = v`) and
//! compares it with full parses the same way, on lines made to catch it out.
//! (The rest of the suite also passes with EVQ_FULL_PARSE=1.)

use crate::common::{self, Rng};

use std::fmt::Write as _;

/// Lines meant to trip a projection up: missing and repeated keys, escaped
/// keys, non-objects where objects are expected, odd numbers, bad lines.
const LINES: &[&str] = &[
    r#"{"a":1,"b":{"c":2,"d":[1,2,3]},"s":"x","n":null}"#,
    r#"{"a":"str","b":{"c":"2"},"s":"y"}"#,
    r#"{"a":[1,2],"b":[{"c":1}],"s":"a\"b"}"#,
    r#"{"b":{"c":{"c":{"c":3}}},"a":1.50,"a":2.50}"#,
    r#"{"\u0061":10,"b":{"\u0063":"esc"},"s":"caf\u00e9"}"#,
    r#"{"a":{"b":1},"b":null,"s":""}"#,
    r#"{"a":100000000000000000000001,"b":{"c":-0.0e10},"s":"\ud83d\ude00"}"#,
    r#"{"b":{"d":{"x":1}},"s":"/api/orders","a":true}"#,
    r#"{}"#,
    r#"[1,{"a":2}]"#,
    r#""just a string""#,
    r#"42"#,
    r#"null"#,
    r#"{"a":1,"b":{"c":2},"junk":[1,,2]}"#,
    r#"{"a":1,"b":{"c":2}} trailing"#,
    r#"{"a":1,"b":{"c":"\x"}}"#,
    r#"{"a":1,"s":"\ud800"}"#,
    r#"{"a":1,"b":{"c":2},"s":"ok","z":{"deep":[[[[{"q":1}]]]]}}"#,
];

/// Parts that read fixed paths, parts that need more, and ways to combine them.
const PATHS: &[&str] = &[
    ".a",
    ".b.c",
    ".b",
    ".s",
    ".[\"a\"]",
    ".b.c?",
    ".b.d[0]",
    ".z.deep",
    ".n",
    ".missing.x",
    ".",
];
const UNARY: &[&str] = &[
    "{}",
    "{} > 1",
    "{} == \"x\"",
    "{} + 1",
    "({} | length)",
    "({} | tostring)",
    "({} | test(\"a\"))",
    "({} | keys)",
    "({} | type)",
    "[{}]",
    "\"<\\({})>\"",
    "{} // \"dflt\"",
    "({} as $v | $v)",
    "({} | .c)",
    "({} | .[0])",
    "({} | to_entries)",
    "({} | has(\"c\"))",
    "({}[])",
    "select({})",
    "({} | not)",
];
const BINARY: &[&str] = &[
    "{} and {}",
    "{} or {}",
    "{x: {}, y: {}}",
    "[{}, {}]",
    "if {} then {} else {} end",
    "{}, {}",
    "{} == {}",
];

fn expr(rng: &mut Rng) -> String {
    let leaf = |rng: &mut Rng| rng.pick(UNARY).replace("{}", rng.pick(PATHS));
    match rng.next() % 3 {
        0 => leaf(rng),
        _ => {
            let mut e = rng.pick(BINARY).to_string();
            while e.contains("{}") {
                let part = leaf(rng);
                e = e.replacen("{}", &format!("({part})"), 1);
            }
            e
        }
    }
}

/// Lines meant to trip direct evaluation up: white space, repeated keys,
/// escapes jaq writes otherwise, `-0`, DEL, big and odd numbers, strings
/// and arrays where objects are expected, non-object lines, bad lines.
const DIRECT_LINES: &[&str] = &[
    r#"{"a":150,"b":{"c":2.5,"d":"x"},"s":"/api/x","t":"error"}"#,
    r#"{"a":-0,"b":{"c":-0.0,"d":"a\"b\\c\n"},"s":"ab\"c","t":"x\/y"}"#,
    r#"{ "a" : 1 , "b" : { "c" : 3 } , "s" : "sp" }"#,
    // Early, so that runs under `--on-error abort` stop at a bad line.
    r#"{"a":1} junk"#,
    r#"{"a":1,"a":200,"b":{"c":1,"c":null},"s":"/api"}"#,
    r#"{"b":{"c":1},"a":2,"b":{"d":"only d"}}"#,
    r#"{"a":100000000000000000000,"b":{"c":1e999},"s":"caf\u00e9"}"#,
    r#"{"a":"150","b":"str","s":150,"t":true}"#,
    r#"{"a":true,"b":[1,2],"s":null,"t":false}"#,
    r#"{"a":null,"b":null,"s":{"x":1}}"#,
    "{\"s\":\"del \u{7f} here\",\"a\":1}",
    r#"{"s":"esc \u007f","a":1,"new":"old"}"#,
    r#"{"b":{"c":{"x":[1,{"y":2}]},"d":[]},"a":[1,{"x":2}],"new":{"k":1}}"#,
    r#"{"a":9007199254740993,"b":{"c":9007199254740992.0},"s":"API/x"}"#,
    r#"{"a":-5,"b":{"c":-5.0},"s":"ÄPI é","t":"Error"}"#,
    r#"{"a":1.0,"b":{"c":1,"d":"/api"},"s":"/apix","t":"error","new":null}"#,
    r#"{"\u0061":7,"b":{"\u0063":8},"s":"/api/\u00e9"}"#,
    r#"{"a":1e2,"b":{"c":0.1},"s":"","t":"","x":[{"a":1},{"a":1}]}"#,
    r#"{}"#,
    r#"[]"#,
    r#"42"#,
    r#"null"#,
    r#""/api/s""#,
    r#"{"a":1,"b":{"c":"\ud800"}}"#,
    r#"{"a":NaN}"#,
    r#"{"a":01}"#,
];

const DIRECT_PATHS: &[&str] = &[
    ".a",
    ".b.c",
    ".b.d",
    ".b",
    ".s",
    ".t",
    ".[\"a\"]",
    ".b.c?",
    ".missing.x",
    ".\"s\"",
    ".new",
];
const DIRECT_LITERALS: &[&str] = &[
    "100",
    "1.5",
    "-5",
    "0",
    "\"x\"",
    "\"/api/x\"",
    "null",
    "true",
    "false",
    "2.50",
    "9007199254740992",
    "\"\"",
    "\"ÄPI é\"",
    "$lvl",
    "$n",
    "$f",
    "$s",
    "$o",
    "$big",
];
/// The variables every direct case is run with.
const DIRECT_VARS: &[&str] = &[
    "--arg",
    "lvl",
    "error",
    "--argjson",
    "n",
    "100",
    "--argjson",
    "f",
    "1.50",
    "--argjson",
    "s",
    "\"/api/x\"",
    "--argjson",
    "o",
    "{\"a\":1}",
    "--argjson",
    "big",
    "100000000000000000000",
];
const DIRECT_OPS: &[&str] = &["==", "!=", "<", "<=", ">", ">="];
const DIRECT_TESTS: &[&str] = &[
    "test(\"^/api\")",
    "test(\"api\"; \"i\")",
    "test(\"a p i\"; \"xi\")",
    "test(\"^$\")",
    "test(\"É\"; \"i\")",
    "startswith(\"/api\")",
    "endswith(\"x\")",
    "contains(\"api\")",
    "contains(\"\")",
    "contains(100)",
    "contains($lvl)",
    "has(\"c\")",
    "has(\"d\")",
    ".c",
    ".c | not",
    "not",
    ". == \"x\"",
    ".c > 1 and . != null",
    "(.c | . == 1) or has(\"d\")",
    "true",
];

fn direct_cond(rng: &mut Rng, depth: u32) -> String {
    let p = |rng: &mut Rng| rng.pick(DIRECT_PATHS).to_string();
    let l = |rng: &mut Rng| rng.pick(DIRECT_LITERALS).to_string();
    match rng.next() % if depth > 1 { 4 } else { 7 } {
        0 => format!("{} {} {}", p(rng), rng.pick(DIRECT_OPS), l(rng)),
        1 => format!("{} {} {}", l(rng), rng.pick(DIRECT_OPS), p(rng)),
        2 => format!("{} {} {}", p(rng), rng.pick(DIRECT_OPS), p(rng)),
        3 if rng.next().is_multiple_of(5) => rng.pick(&["has(\"a\")", "has(\"new\")"]).to_string(),
        3 => format!("({} | {})", p(rng), rng.pick(DIRECT_TESTS)),
        4 => format!(
            "({}) and ({})",
            direct_cond(rng, depth + 1),
            direct_cond(rng, depth + 1)
        ),
        5 => format!(
            "({}) or ({})",
            direct_cond(rng, depth + 1),
            direct_cond(rng, depth + 1)
        ),
        _ => format!("({} | not)", direct_cond(rng, depth + 1)),
    }
}

fn direct_value(rng: &mut Rng) -> String {
    match rng.next() % 4 {
        0 => rng.pick(DIRECT_PATHS).to_string(),
        1 => rng.pick(DIRECT_LITERALS).to_string(),
        2 => format!("({})", direct_cond(rng, 1)),
        _ => format!(
            "({} // {})",
            rng.pick(DIRECT_PATHS),
            rng.pick(DIRECT_LITERALS)
        ),
    }
}

fn direct_map(rng: &mut Rng) -> String {
    match rng.next() % 6 {
        0 => "{a, s, t}".to_string(),
        1 => format!(
            "{{x: {}, \"y z\": {}, b}}",
            direct_value(rng),
            direct_value(rng)
        ),
        2 => format!(".new = {}", direct_value(rng)),
        3 => format!(".a = {}", direct_value(rng)),
        4 => direct_value(rng),
        5 if rng.next().is_multiple_of(2) => format!("{} | {{c, x: .d}}", rng.pick(DIRECT_PATHS)),
        _ => format!("{{s: {}}}", direct_value(rng)),
    }
}

#[test]
fn direct_evaluation_and_full_parses_agree_on_generated_chains() {
    let (_dir, path) = input_file(DIRECT_LINES);
    let mut rng = Rng(11);
    let (mut direct_events, mut events) = (0, 0);
    for case in 0..150 {
        let mut args: Vec<String> = DIRECT_VARS.iter().map(|s| s.to_string()).collect();
        // `--filter=EXPR`: an expression may start with `-`.
        for _ in 0..rng.next() % 3 {
            let cond = direct_cond(&mut rng, 0);
            args.push(if rng.next().is_multiple_of(4) {
                format!("--filter=select({cond})")
            } else {
                format!("--filter={cond}")
            });
        }
        if args.len() == DIRECT_VARS.len() || !rng.next().is_multiple_of(3) {
            args.push(format!("--map={}", direct_map(&mut rng)));
        }
        if rng.next().is_multiple_of(5) {
            args.push("-r".to_string());
        }
        if rng.next().is_multiple_of(4) {
            args.extend(["--on-error", "abort"].map(String::from));
        }
        assert_same_as_full_parse(case, &args, &path, "direct");
        let (direct, ingested) = events_direct(&args, &path);
        direct_events += direct;
        events += ingested;
    }
    // The comparison means something only if many events took the shortcut.
    assert!(
        direct_events * 4 >= events,
        "only {direct_events} of {events} events were evaluated directly"
    );
}

/// The stats of running evq (shortcuts on) with `args` on `path`.
fn stats_of(args: &[String], path: &std::path::Path) -> serde_json::Value {
    let out = common::evq()
        .env_remove("EVQ_FULL_PARSE")
        .arg("--stats=json")
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    common::stats_json(&out)
}

/// How many events evq settled by direct evaluation for this chain, of how many.
fn events_direct(args: &[String], path: &std::path::Path) -> (u64, u64) {
    let stats = stats_of(args, path);
    let count = |key: &str| stats[key].as_u64().unwrap();
    (count("events_direct"), count("events_ingested"))
}

/// `lines` written to a file in a new temporary folder (kept while the first
/// value lives).
fn input_file(lines: &[&str]) -> (tempfile::TempDir, std::path::PathBuf) {
    let mut input = String::new();
    for line in lines {
        writeln!(input, "{line}").unwrap();
    }
    let dir = common::tempdir();
    let path = dir.path().join("in.ndjson");
    std::fs::write(&path, &input).unwrap();
    (dir, path)
}

/// Runs `args` on `path` with the shortcuts (`label`) and with full parses,
/// and checks that both give the same output, reports, stats, dead letter
/// and exit status.
fn assert_same_as_full_parse(case: u32, args: &[String], path: &std::path::Path, label: &str) {
    let full = run(args, path, true);
    let ours = run(args, path, false);
    assert_eq!(ours.0, full.0, "case {case} {args:?}: exit status");
    assert!(
        ours.1 == full.1,
        "case {case} {args:?}: stdout\n--- {label}\n{}--- full\n{}",
        String::from_utf8_lossy(&ours.1),
        String::from_utf8_lossy(&full.1)
    );
    assert_eq!(ours.2, full.2, "case {case} {args:?}: failure reports");
    assert_eq!(ours.3, full.3, "case {case} {args:?}: stats");
    assert!(ours.4 == full.4, "case {case} {args:?}: dead letter");
}

fn run(
    args: &[String],
    input_path: &std::path::Path,
    full_parse: bool,
) -> (i32, Vec<u8>, String, serde_json::Value, Vec<u8>) {
    let dir = common::tempdir();
    let dl = dir.path().join("dl.ndjson");
    let mut cmd = common::evq();
    // This test decides itself which runs parse in full.
    cmd.env_remove("EVQ_FULL_PARSE");
    cmd.args(["--stats=json", "--threads", "1", "--dead-letter"])
        .arg(&dl)
        .args(args)
        .arg(input_path);
    if full_parse {
        cmd.arg("--full-parse");
    }
    let out = cmd.output().expect("run evq");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut lines: Vec<&str> = stderr.lines().collect();
    let stats_line = lines.pop().unwrap_or_else(|| panic!("no stats: {stderr}"));
    let reports = lines.join("\n");
    let mut stats: serde_json::Value =
        serde_json::from_str(stats_line).unwrap_or_else(|e| panic!("stats ({e}): {stderr}"));
    for key in [
        "time",
        "elapsed_ms",
        "events_per_sec",
        "fields_read",
        "events_direct",
    ] {
        stats.as_object_mut().unwrap().remove(key);
    }
    for stage in stats["stages"].as_array_mut().unwrap() {
        stage.as_object_mut().unwrap().remove("processing_time_ms");
    }
    let reports = reports.replace(input_path.to_str().unwrap(), "IN");
    let dead = std::fs::read(&dl).unwrap_or_default();
    let dead = String::from_utf8(dead)
        .unwrap()
        .replace(input_path.to_str().unwrap(), "IN")
        .into_bytes();
    (common::status(&out), out.stdout, reports, stats, dead)
}

#[test]
fn projected_and_full_parses_agree_on_generated_chains() {
    let (_dir, path) = input_file(LINES);
    let mut rng = Rng(7);
    let mut projected_chains = 0;
    for case in 0..120 {
        // One to three stages; a map anywhere, filters around it.
        let stages = 1 + rng.next() % 3;
        let mut args = Vec::new();
        for _ in 0..stages {
            args.push(
                if rng.next().is_multiple_of(2) {
                    "-f"
                } else {
                    "-m"
                }
                .to_string(),
            );
            args.push(expr(&mut rng));
        }
        assert_same_as_full_parse(case, &args, &path, "projected");
        if projected_fields(&args, &path) {
            projected_chains += 1;
        }
    }
    // The comparison means something only if many chains were projected.
    assert!(
        projected_chains >= 30,
        "only {projected_chains} of 120 chains read fixed fields"
    );
}

/// Whether evq read only some fields for this chain (stats say which).
fn projected_fields(args: &[String], path: &std::path::Path) -> bool {
    stats_of(args, path)["fields_read"].is_array()
}

/// `fields_read` from the stats of running evq with `args` on no input.
fn fields_read(args: &[&str]) -> serde_json::Value {
    let out = common::evq()
        .env_remove("EVQ_FULL_PARSE")
        .arg("--stats=json")
        .args(args)
        .output()
        .unwrap();
    common::stats_json(&out)["fields_read"].clone()
}

#[test]
fn stats_say_which_fields_are_read() {
    use serde_json::{Value, json};
    assert_eq!(
        fields_read(&[
            "-f",
            ".data.amount > 100",
            "-m",
            "{ts, level}",
            "-f",
            "keys"
        ]),
        json!([".data.amount", ".ts", ".level"])
    );
    assert_eq!(
        fields_read(&["-f", ".[\"a b\"].c"]),
        json!([".[\"a b\"].c"])
    );
    assert_eq!(fields_read(&["-m", ".a = 1"]), Value::Null);
    assert_eq!(fields_read(&["--full-parse", "-f", ".a"]), Value::Null);
    assert_eq!(fields_read(&[]), json!([]));
}
