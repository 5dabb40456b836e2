//! Keyed state of the window and group-by stages (issue 12): direct
//! evaluation of the key, time and aggregate expressions agrees byte for
//! byte with full parses; open state survives `kill -9` through
//! `--checkpoint` (the runs together emit what one clean run emits); a
//! checkpoint of another chain is refused; `--stats=json` shows the keys and
//! bytes held; and results equal tests/window_reference.py for every
//! `--threads`.

use crate::common::{self, Rng};

use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

/// 2026-11-02T08:00:00Z in milliseconds since the epoch.
const BASE_MS: i64 = 1_793_606_400_000;

/// (year, month, day) of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// `ms` as RFC 3339 at `offset` minutes east of UTC, with `digits` (0, 1, 3
/// or 9) digits of fraction (the instant floored to what they can say).
fn rfc3339(ms: i64, offset: i64, digits: u32) -> String {
    let local = ms + offset * 60_000;
    let (secs, sub) = (local.div_euclid(1000), local.rem_euclid(1000));
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    let mut text = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    );
    match digits {
        0 => {}
        1 => write!(text, ".{}", sub / 100).unwrap(),
        3 => write!(text, ".{sub:03}").unwrap(),
        _ => write!(text, ".{sub:03}456789").unwrap(),
    }
    if offset == 0 {
        text.push('Z');
    } else {
        let a = offset.abs();
        let sign = if offset < 0 { '-' } else { '+' };
        write!(text, "{sign}{:02}:{:02}", a / 60, a % 60).unwrap();
    }
    text
}

#[test]
fn rfc3339_helper_is_right() {
    assert_eq!(rfc3339(BASE_MS, 0, 0), "2026-11-02T08:00:00Z");
    assert_eq!(rfc3339(BASE_MS + 1250, 0, 3), "2026-11-02T08:00:01.250Z");
    assert_eq!(
        rfc3339(BASE_MS + 1250, 120, 1),
        "2026-11-02T10:00:01.2+02:00"
    );
    assert_eq!(rfc3339(BASE_MS, -330, 0), "2026-11-02T02:30:00-05:30");
    assert_eq!(rfc3339(0, 0, 9), "1970-01-01T00:00:00.000456789Z");
}

/// Runs evq in `dir` with `args`.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    common::evq()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run evq")
}

/// Arguments written as one string, split at white space (none of them holds any).
fn words(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

/// The stage called `name` in `--stats=json` stats.
fn stage<'a>(stats: &'a Value, name: &str) -> &'a Value {
    stats["stages"]
        .as_array()
        .unwrap_or_else(|| panic!("no stages in {stats}"))
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no stage {name} in {stats}"))
}

// ---------------------------------------------------------------------------
// 1. Direct evaluation against full parses

/// Keys (JSON texts) that equal each other in jq although written otherwise
/// (escapes, 1 and 1.0, -0 and 0, object key order, repeated keys), and
/// others that do not.
const KEYS: &[&str] = &[
    r#""a""#,
    r#""\u0061""#,
    r#""A""#,
    r#""caf\u00e9""#,
    "\"café\"",
    r#""a\"b""#,
    r#""tab\t""#,
    r#""""#,
    r#""\ud83d\ude00""#,
    "\"😀\"",
    "\"del \u{7f}\"",
    "1",
    "1.0",
    "1e0",
    "10E-1",
    "-0",
    "0",
    "-0.0",
    "2.50",
    "100000000000000000000001",
    "100000000000000000000000",
    "9007199254740993",
    "9007199254740992",
    "1e400",
    "-1e400",
    "null",
    "true",
    "false",
    r#"[1,"a"]"#,
    r#"[ 1 , "a" ]"#,
    r#"[1.0,"\u0061"]"#,
    "[]",
    "{}",
    r#"{"x":1,"y":2}"#,
    r#"{"y":2,"x":1}"#,
    r#"{"x":1,"x":3}"#,
    r#"{"x":3}"#,
    r#"{"x":[1,{"z":null}]}"#,
];

/// Values for the aggregates: odd numbers, and things that are no numbers.
const VALUES: &[&str] = &[
    "2.5",
    "0.1",
    "-7",
    "-0",
    "-0.0",
    "1e2",
    "1E-2",
    "2.50",
    "100000000000000000000001",
    "9007199254740993",
    "12345678901234567890",
    "1e400",
    "-1e400",
    "null",
    r#""5""#,
    r#""x""#,
    "true",
    "[1]",
    r#"{"a":1}"#,
];

const NAMES: &[&str] = &[
    r#""ann""#,
    r#""\u0061nn""#,
    r#""bob""#,
    r#""Bob""#,
    "null",
    "7",
];

/// Lines that are not objects, not JSON, or hold times and keys out of the
/// ordinary; spread over the generated ones.
const ODD_LINES: &[&str] = &[
    "[1,2]",
    "42",
    r#""just a string""#,
    "null",
    "true",
    r#"{"k":"a","t":1793606400,"v":1"#,
    r#"{"k":"a","t":1793606400,"v":1} trailing"#,
    "{\"k\":'a'}",
    r#"{"v":01,"k":"a","t":1793606400}"#,
    r#"{"v":NaN,"k":"a","t":1793606400}"#,
    "",
    r#"{"k":"\ud800","t":1793606401,"v":1}"#,
    r#"{"k":"a","t":1793606400.5e0,"v":1}"#,
    r#"{"k":"a","t":-1,"v":1}"#,
    r#"{"k":"a","t":0,"v":1}"#,
    r#"{"k":"a","t":1e400,"v":1}"#,
    r#"{"k":"a","t":-0,"v":1}"#,
    r#"{"k":"a","t":"1793606400","v":1}"#,
    r#"{"k":"a","t":"2026-11-02T25:00:00Z","v":1}"#,
    r#"{"k":"a","t":"2026-11-02T08:00:00","v":1}"#,
    r#"{"k":"a","t":"2026-11-02 08:00:00Z","v":1}"#,
    r#"{"k":"a","t":"2026-11-02t08:00:00z","v":1}"#,
    r#"{"k":"a","t":true,"v":1}"#,
    r#"{"k":"a","t":[1793606400],"v":1}"#,
    r#"{"k":"a","t":{"s":1}}"#,
    r#"{"k":"a","t":null}"#,
    r#"{"k":"a"}"#,
    "{}",
    r#"{"k":{"x":1},"u":"str","tags":"no array","t":1793606460,"v":3}"#,
    r#"{ "k" : "b" , "t" : 1793606461 , "v" : 4 }"#,
];

/// A time `ms` written one of many ways (`None`: no time field), some unusable.
fn time_text(rng: &mut Rng, ms: i64) -> Option<String> {
    let (secs, sub) = (ms.div_euclid(1000), ms.rem_euclid(1000));
    let quoted = |s: String| format!("\"{s}\"");
    Some(match rng.below(42) {
        0..=5 => secs.to_string(),
        6..=9 => format!("{secs}.{sub:03}"),
        10..=13 => ms.to_string(),
        14 => (ms * 1000).to_string(),
        15 => (ms * 1_000_000).to_string(),
        16 => format!("{ms}e-3"),
        17 => format!("{secs}.{sub:03}e0"),
        18 => format!("{}.{:09}E9", secs / 1_000_000_000, secs % 1_000_000_000),
        19..=23 => quoted(rfc3339(ms, 0, 0)),
        24..=25 => quoted(rfc3339(ms, 0, 3)),
        26 => quoted(rfc3339(ms, 0, 9)),
        27..=28 => quoted(rfc3339(ms, 120, 3)),
        29..=30 => quoted(rfc3339(ms, -330, 0)),
        31 => quoted(rfc3339(ms, 0, 1)),
        32 => quoted(rfc3339(ms, 0, 0).replace('Z', "+00:00")),
        33 => quoted(rfc3339(ms, 0, 0).replace('Z', "-00:00")),
        34 | 35 => return None,
        36 => "null".into(),
        37 => r#""soon""#.into(),
        38 => quoted(secs.to_string()),
        39 => "false".into(),
        40 => format!("[{secs}]"),
        _ => format!("{{\"s\":{secs}}}"),
    })
}

fn value_text(rng: &mut Rng) -> String {
    if rng.below(5) < 3 {
        rng.below(100).to_string()
    } else {
        rng.pick(VALUES).to_string()
    }
}

/// One generated event: fields in random order and spacing, sometimes an
/// escaped field name, a repeated field (the last one counts), a field missing.
fn event_line(rng: &mut Rng, ms: i64) -> String {
    let mut fields: Vec<String> = Vec::new();
    let name = |rng: &mut Rng, plain: &str, escaped: &str| {
        if rng.below(12) == 0 {
            escaped.to_string()
        } else {
            format!("\"{plain}\"")
        }
    };
    if rng.below(15) != 0 {
        let key = if rng.below(10) < 6 {
            rng.pick(&[r#""a""#, r#""b""#, r#""c""#, r#""d""#])
        } else {
            rng.pick(KEYS)
        };
        fields.push(format!("{}:{key}", name(rng, "k", r#""\u006b""#)));
    }
    if let Some(t) = time_text(rng, ms) {
        fields.push(format!("\"t\":{t}"));
    }
    if rng.below(12) != 0 {
        let v = value_text(rng);
        fields.push(format!("{}:{v}", name(rng, "v", r#""\u0076""#)));
    }
    match rng.below(10) {
        0 => fields.push("\"u\":null".into()),
        1 => fields.push(r#""u":"str""#.into()),
        2 => {}
        _ => {
            let (n, s) = (rng.pick(NAMES), value_text(rng));
            fields.push(if rng.below(2) == 0 {
                format!(r#""u":{{"name":{n},"score":{s}}}"#)
            } else {
                format!(r#""u":{{"score":{s},"name":{n}}}"#)
            });
        }
    }
    match rng.below(6) {
        0 => fields.push(r#""tags":[]"#.into()),
        1 => {}
        2 => fields.push(r#""tags":["\u0078","y"]"#.into()),
        _ => fields.push(format!(r#""tags":["{}","z"]"#, rng.pick(&["x", "y"]))),
    }
    if rng.below(8) == 0 {
        // .meta.t // .t takes this time first.
        if let Some(t) = time_text(rng, ms - 1500) {
            fields.push(format!(r#""meta":{{"t":{t}}}"#));
        }
    }
    // Shuffle, then maybe a decoy before the field it repeats.
    for i in (1..fields.len()).rev() {
        fields.swap(i, rng.below(i as u64 + 1) as usize);
    }
    match rng.below(12) {
        0 => fields.insert(0, r#""v":"decoy""#.into()),
        1 => fields.insert(0, r#""k":["decoy"]"#.into()),
        2 => fields.insert(0, r#""t":"decoy""#.into()),
        _ => {}
    }
    if rng.below(10) == 0 {
        format!("{{ {} }}", fields.join(" , ").replace("\":", "\" : "))
    } else {
        format!("{{{}}}", fields.join(","))
    }
}

/// The differential input: generated events over about half an hour, times
/// mostly increasing with some up to 40 s back, and the odd lines in between.
fn differential_input() -> String {
    let mut rng = Rng(12);
    let mut text = String::new();
    let mut cursor = BASE_MS;
    for i in 0..480 {
        if i % 16 == 7 {
            writeln!(text, "{}", ODD_LINES[(i / 16) % ODD_LINES.len()]).unwrap();
        }
        if i == 440 {
            // A jump into the future: what comes after is late.
            writeln!(text, r#"{{"k":"a","t":"2030-01-01T00:00:00Z","v":1}}"#).unwrap();
        }
        cursor += rng.below(6000) as i64;
        let back = if rng.below(5) == 0 {
            rng.below(40_000) as i64
        } else {
            0
        };
        writeln!(text, "{}", event_line(&mut rng, cursor - back)).unwrap();
    }
    text
}

/// Window chains: several key, time and aggregate expressions, stages before
/// and after, lateness with out-of-order events, -r.
#[rustfmt::skip]
const WINDOW_CHAINS: &[&[&str]] = &[
    &["--window", "tumbling:1m", "--time", ".t", "--key", ".k",
      "--agg", "n=count", "--agg", "s=sum(.v)"],
    &["--window", "tumbling:30s", "--time", ".t", "--lateness", "20s", "--key", ".k",
      "--agg", "n=count", "--agg", "s=sum(.v)", "--agg", "a=avg(.v)",
      "--agg", "lo=min(.v)", "--agg", "hi=max(.v)"],
    &["--window", "sliding:1m/20s", "--time", ".t", "--lateness", "10s",
      "--key", ".k", "--key", ".u.name",
      "--agg", "f=first(.v)", "--agg", "l=last(.v)", "--agg", "d=count_distinct(.v)"],
    &["--window", "session:45s", "--time", ".t", "--lateness", "30s", "--key", ".k",
      "--agg", "n=count", "--agg", "c=collect(.v; 3)", "--agg", "us=collect(.u; 2)"],
    &["--window", "tumbling:2m", "--time", ".t", "--lateness", "1m", "--key", ".u.name",
      "--agg", "p50=p50(.v)", "--agg", "p99=p99(.v)", "--agg", "q=percentile(.v; 0.25)",
      "--agg", "n=count"],
    &["-f", ".v != null",
      "--window", "tumbling:1m", "--time", ".t", "--lateness", "15s", "--key", ".k",
      "--agg", "s=sum(.v)", "--agg", "n=count",
      "-m", "{key, n, s}"],
    &["--window", "tumbling:1m", "--time", ".meta.t // .t", "--lateness", "20s",
      "--key", ".k // \"none\"", "--agg", "n=count", "--agg", "s=sum(.u.score // 0)"],
    &["--window", "tumbling:1m", "--time", ".t", "--lateness", "20s", "--key", ".k | tostring",
      "--agg", "n=count", "-m", ".key", "-r"],
    &["--window", "tumbling:1m", "--time", ".t", "--lateness", "20s", "--key", ".k",
      "--agg", "n=count", "-f", ".n > 1", "-c"],
    &["--window", "sliding:2m/1m", "--time", ".t", "--lateness", "30s",
      "--agg", "n=count", "--agg", "s=sum(.v)", "--agg", "m=max(.k)"],
    &["--window", "tumbling:1m", "--time", ".t", "--lateness", "20s",
      "--key", ".tags[0]", "--key", ".v > 10",
      "--agg", "n=count", "--agg", "mx=max(.t)", "--agg", "mn=min(.u)"],
    &["--window", "tumbling:1m", "--time", ".t", "--lateness", "20s", "--key", ".k",
      "--agg", "n=count", "--agg", "s=sum(.v * 2)", "--on-error", "abort"],
    &["-m", "{k: .k, t: .t, v: (.v // 0)}",
      "--window", "tumbling:30s", "--time", ".t", "--lateness", "20s", "--key", ".k",
      "--agg", "s=sum(.v)", "--agg", "first=first(.)"],
    &["--window", "tumbling:1m", "--time", ".t", "--key", ".k", "--key", ".u",
      "--agg", "last=last(.u)", "--agg", "d=count_distinct(.k)", "--on-error", "ignore"],
];

/// Group-by chains (`--agg` without `--window`: results at the end).
#[rustfmt::skip]
const GROUP_CHAINS: &[&[&str]] = &[
    &["--key", ".k", "--agg", "n=count", "--agg", "s=sum(.v)", "--agg", "d=count_distinct(.v)"],
    &["--agg", "n=count", "--agg", "s=sum(.v)", "--agg", "f=first(.v)", "--agg", "l=last(.v)"],
    &["--key", ".k", "--key", ".u.name", "--agg", "n=count", "--agg", "a=avg(.v)",
      "--agg", "p90=p90(.v)", "--agg", "c=collect(.k; 4)"],
    &["-f", ".k != null", "--key", ".k", "--agg", "n=count", "-m", "{key, n}", "-f", ".n >= 2"],
    &["--key", ".u.score", "--agg", "n=count", "--agg", "mx=max(.v)", "--agg", "mn=min(.v)",
      "-r"],
    &["--key", ".k", "--agg", "n=count", "--agg", "s=sum(.v)", "--on-error", "abort"],
    &["--key", ".k | type", "--agg", "n=count", "-m", ".key", "-r"],
    &["--key", ".tags", "--agg", "lo=min(.k)", "--agg", "hi=max(.k)",
      "--agg", "p=percentile(.u.score; 0.5)"],
    &["--key", "(.t | type)", "--key", ".meta.t", "--agg", "f=first(.t)", "--agg", "l=last(.k)",
      "--agg", "c=collect(.t; 5)"],
];

/// What one run shows: exit status, stdout, failure reports, stats (timings
/// and what concerns direct evaluation taken out), dead letter.
#[derive(PartialEq)]
struct Outcome {
    status: i32,
    stdout: Vec<u8>,
    reports: String,
    stats: Value,
    dead_letter: Vec<u8>,
}

/// Stats without what may differ between runs that agree: timings, and what
/// says how much was evaluated directly or which fields were read.
fn masked(mut stats: Value) -> Value {
    let drop = |k: &String| {
        matches!(
            k.as_str(),
            "time" | "elapsed_ms" | "events_per_sec" | "processing_time_ms" | "fields_read"
        ) || k.contains("direct")
    };
    stats.as_object_mut().unwrap().retain(|k, _| !drop(k));
    for stage in stats["stages"].as_array_mut().unwrap() {
        stage.as_object_mut().unwrap().retain(|k, _| !drop(k));
    }
    stats
}

/// Runs `args` on `input` with --stats=json and a dead letter; with full
/// parses (EVQ_FULL_PARSE=1) or not, with `--threads N` or the default.
fn outcome(args: &[&str], input: &Path, full_parse: bool, threads: Option<&str>) -> Outcome {
    let dir = common::tempdir();
    let dl = dir.path().join("dl.ndjson");
    let mut cmd = common::evq();
    cmd.env_remove("EVQ_FULL_PARSE");
    if full_parse {
        cmd.env("EVQ_FULL_PARSE", "1");
    }
    cmd.args(["--stats=json", "--dead-letter"]).arg(&dl);
    if let Some(n) = threads {
        cmd.args(["--threads", n]);
    }
    let out = cmd.args(args).arg(input).output().expect("run evq");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let mut lines: Vec<&str> = stderr.lines().collect();
    let stats_line = lines.pop().unwrap_or_else(|| panic!("no stats: {stderr}"));
    let stats =
        serde_json::from_str(stats_line).unwrap_or_else(|e| panic!("stats ({e}): {stderr}"));
    Outcome {
        status: common::status(&out),
        stdout: out.stdout,
        reports: lines.join("\n"),
        stats: masked(stats),
        dead_letter: std::fs::read(&dl).unwrap_or_default(),
    }
}

/// Asserts two outcomes are the same, saying where not.
fn assert_same(what: &str, expected: &Outcome, actual: &Outcome) {
    assert_eq!(actual.status, expected.status, "{what}: exit status");
    assert!(
        actual.stdout == expected.stdout,
        "{what}: stdout\n--- this run\n{}--- expected\n{}",
        String::from_utf8_lossy(&actual.stdout),
        String::from_utf8_lossy(&expected.stdout)
    );
    assert_eq!(actual.reports, expected.reports, "{what}: failure reports");
    assert_eq!(actual.stats, expected.stats, "{what}: stats");
    assert!(
        actual.dead_letter == expected.dead_letter,
        "{what}: dead letter\n--- this run\n{}--- expected\n{}",
        String::from_utf8_lossy(&actual.dead_letter),
        String::from_utf8_lossy(&expected.dead_letter)
    );
}

/// Each chain with full parses, with the shortcuts, and with the shortcuts
/// on 1 and 3 threads: all four the same. Returns, over the chains, how
/// many produced results, how many had failed events and late events.
fn differential(chains: &[&[&str]], kind: &str) -> (usize, usize, usize) {
    let dir = common::tempdir();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, differential_input()).unwrap();
    let (mut with_results, mut with_failed, mut with_late) = (0, 0, 0);
    for args in chains {
        let full = outcome(args, &input, true, None);
        let what = format!("evq {}", args.join(" "));
        assert_same(
            &format!("{what} (direct, against full parses)"),
            &full,
            &outcome(args, &input, false, None),
        );
        for n in ["1", "3"] {
            assert_same(
                &format!("{what} --threads {n} (direct, against full parses)"),
                &full,
                &outcome(args, &input, false, Some(n)),
            );
        }
        let s = stage(&full.stats, &stage_name(args, kind));
        with_results += usize::from(!full.stdout.is_empty());
        with_failed += usize::from(s["events_failed"].as_u64().unwrap_or(0) > 0);
        with_late += usize::from(s["events_late"].as_u64().unwrap_or(0) > 0);
    }
    (with_results, with_failed, with_late)
}

/// The name of the window (`window#N`, where --window is written) or
/// group-by stage (`aggregate#N`, at the first --agg) of `args`.
fn stage_name(args: &[&str], kind: &str) -> String {
    let at = if kind == "window" {
        "--window"
    } else {
        "--agg"
    };
    let (mut n, mut i) = (1, 0);
    while args[i] != at {
        n += usize::from(matches!(args[i], "-f" | "-m"));
        i += if matches!(args[i], "-r" | "-c") { 1 } else { 2 };
    }
    format!("{kind}#{n}")
}

#[test]
fn stage_name_helper_is_right() {
    assert_eq!(stage_name(WINDOW_CHAINS[0], "window"), "window#1");
    assert_eq!(stage_name(WINDOW_CHAINS[5], "window"), "window#2");
    assert_eq!(stage_name(GROUP_CHAINS[3], "aggregate"), "aggregate#2");
    assert_eq!(stage_name(GROUP_CHAINS[0], "aggregate"), "aggregate#1");
}

#[test]
fn window_direct_matches_full_parse() {
    let (results, failed, late) = differential(WINDOW_CHAINS, "window");
    // The comparison means something only if the chains found results,
    // failed events and late ones.
    let n = WINDOW_CHAINS.len();
    assert!(results >= n - 1, "{results} of {n} chains had results");
    assert!(failed >= n / 2, "{failed} of {n} chains had failures");
    assert!(late >= n / 2, "{late} of {n} chains had late events");
}

#[test]
fn group_by_direct_matches_full_parse() {
    let (results, failed, _) = differential(GROUP_CHAINS, "aggregate");
    let n = GROUP_CHAINS.len();
    assert!(results >= n - 1, "{results} of {n} chains had results");
    assert!(failed >= n / 2, "{failed} of {n} chains had failures");
}

// ---------------------------------------------------------------------------
// 2. State survives kill -9

/// `n` events over `keys` keys, 2 ms apart, one in five up to 4 s back
/// (within a lateness of 5 s), values integers or quarter fractions (whose
/// sums are exact in any order).
fn crash_input(n: u64, keys: u64, seed: u64) -> String {
    let mut rng = Rng(seed);
    let mut text = String::with_capacity(n as usize * 45);
    for i in 0..n {
        let back = if rng.below(5) == 0 {
            rng.below(4000)
        } else {
            0
        };
        let t = BASE_MS + (i * 2) as i64 - back as i64;
        let v = rng.below(1000);
        let v = match rng.below(10) {
            0 => format!("{v}.25"),
            1 => format!("{v}.5"),
            _ => v.to_string(),
        };
        writeln!(text, r#"{{"t":{t},"k":"k{:04}","v":{v}}}"#, rng.below(keys)).unwrap();
    }
    text
}

/// What identifies a result: what comes before its first aggregate
/// `first` (its window and key; the rest are its values). A JSON parse
/// would do, but takes seconds over a few hundred thousand lines in a debug
/// build; these lines hold no text like `,"first":` before that field.
fn result_id<'a>(line: &'a str, first: &str) -> &'a str {
    let at = line
        .find(&format!(",\"{first}\":"))
        .or_else(|| line.find(&format!("{{\"{first}\":")))
        .unwrap_or_else(|| panic!("no {first} in the result {line}"));
    &line[..at]
}

/// Runs `args` over a few hundred thousand events with --checkpoint, killed
/// with SIGKILL at seeded random moments and rerun until a run completes;
/// the union of all runs' results must be one clean run's results.
fn survives_kill_9(args: &[&str], events: u64, keys: u64, seed: u64) {
    let dir = common::tempdir();
    // First, on a few events: the chain takes --checkpoint at all.
    let small = dir.path().join("small.ndjson");
    std::fs::write(&small, crash_input(200, 20, seed)).unwrap();
    let probe = run_in(
        dir.path(),
        &[&["--checkpoint", "probe.json"], args, &["small.ndjson"]].concat(),
    );
    assert_eq!(
        common::status(&probe),
        0,
        "{args:?} with --checkpoint: {}",
        common::stderr(&probe)
    );

    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, crash_input(events, keys, seed)).unwrap();
    let started = Instant::now();
    let clean = run_in(dir.path(), &[args, &["in.ndjson"]].concat());
    let clean_time = started.elapsed();
    assert_eq!(common::status(&clean), 0, "{}", common::stderr(&clean));
    let clean_lines: Vec<String> = common::stdout(&clean).lines().map(String::from).collect();
    assert!(!clean_lines.is_empty());
    let clean_set: HashSet<&str> = clean_lines.iter().map(String::as_str).collect();
    // One line per result (window and key) in a clean run: so a line of a
    // crashed run that is one of these is the result's one right value.
    let first = args[args.iter().position(|a| *a == "--agg").unwrap() + 1]
        .split('=')
        .next()
        .unwrap();
    let by_id: HashMap<&str, &str> = clean_lines
        .iter()
        .map(|l| (result_id(l, first), l.as_str()))
        .collect();
    assert_eq!(
        by_id.len(),
        clean_lines.len(),
        "a clean run repeats a result"
    );

    // Delays from 20 ms up to a part of a clean run's time: each of the
    // first six runs does at most about a fifth of the work before it is killed.
    let args_in = [args, &["in.ndjson"]].concat();
    let crashes = common::kill_9_until_done(
        dir.path(),
        &args_in,
        clean_time,
        seed ^ 0x5eed,
        20,
        |run, line| {
            if !clean_set.contains(line) {
                match by_id.get(result_id(line, first)) {
                    Some(right) => panic!(
                        "run {run} emitted another value for a result:\n  clean run: {right}\n  run {run}:     {line}"
                    ),
                    None => panic!("run {run} emitted a result no clean run does: {line}"),
                }
            }
        },
    );
    let (union, last_stats, runs, kills) = (
        crashes.union,
        crashes.last_stats,
        crashes.runs,
        crashes.kills,
    );
    let read = last_stats["events_ingested"].as_u64().unwrap();
    assert!(
        read < events,
        "the run that completed read {read} of {events} events: it did not resume"
    );
    let missing: Vec<&String> = clean_lines.iter().filter(|l| !union.contains(*l)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} results lost over {runs} runs ({kills} killed), e.g. {}",
        missing.len(),
        clean_lines.len(),
        missing[0]
    );
    assert_eq!(union.len(), clean_lines.len());
}

#[test]
fn window_state_survives_kill_9() {
    survives_kill_9(
        &words(
            "--window tumbling:10s --time .t --lateness 5s --key .k --agg n=count --agg s=sum(.v) --agg m=max(.v) --agg p=p50(.v)",
        ),
        300_000,
        5000,
        0x12_0001,
    );
}

#[test]
fn group_by_state_survives_kill_9() {
    survives_kill_9(
        &words(
            "--key .k --agg n=count --agg s=sum(.v) --agg m=max(.v) --agg lo=min(.t) --agg p=p99(.v)",
        ),
        300_000,
        5000,
        0x12_0002,
    );
}

// ---------------------------------------------------------------------------
// 3. A checkpoint belongs to its chain

/// `args` with checkpoint `cp`, on in.ndjson.
fn with<'a>(cp: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    [&["--checkpoint", cp], args, &["in.ndjson"]].concat()
}

/// Asserts `out` is the refusal of checkpoint `name` written for another chain.
fn assert_refused(out: &Output, name: &str, what: &str) {
    let stderr = common::stderr(out);
    assert_eq!(common::status(out), 2, "{what}: {stderr}");
    assert!(
        stderr.contains("was written for another chain") && stderr.contains(name),
        "{what}: {stderr}"
    );
    assert_eq!(common::stdout(out), "", "{what}: nothing is emitted");
}

#[test]
fn checkpoint_of_another_chain_is_refused() {
    let dir = common::tempdir();
    std::fs::copy(
        common::root().join("fixtures/windows/requests.ndjson"),
        dir.path().join("in.ndjson"),
    )
    .unwrap();
    let chain = words("--window tumbling:1m --time .ts --key .service --agg n=count");
    let clean = run_in(dir.path(), &[&chain[..], &["in.ndjson"]].concat());
    let first = run_in(dir.path(), &with("cp.json", &chain));
    assert_eq!(common::status(&first), 0, "{}", common::stderr(&first));
    assert_eq!(common::stdout(&first), common::stdout(&clean));
    // The same chain again: accepted, and nothing new to read.
    let again = run_in(dir.path(), &with("cp.json", &chain));
    assert_eq!(common::status(&again), 0, "{}", common::stderr(&again));
    assert_eq!(common::stdout(&again), "");
    let saved = common::read(&dir.path().join("cp.json"));

    let other_agg = [&chain[..], &["--agg", "s=sum(.latency_ms)"]].concat();
    let mut other_window = chain.to_vec();
    other_window[1] = "tumbling:5m";
    let mut other_key = chain.to_vec();
    other_key[5] = ".path";
    let other_lateness = [&chain[..], &["--lateness", "10s"]].concat();
    let group_by = vec!["--key", ".service", "--agg", "n=count"];
    for (what, args) in [
        ("another --agg", other_agg),
        ("another --window", other_window),
        ("another --key", other_key),
        ("another --lateness", other_lateness),
        ("a group-by", group_by),
        ("a filter", vec!["-f", ".service == \"api\""]),
        ("no stage", vec![]),
    ] {
        let out = run_in(dir.path(), &with("cp.json", &args));
        assert_refused(&out, "cp.json", &format!("a window checkpoint for {what}"));
        assert!(
            common::read(&dir.path().join("cp.json")) == saved,
            "{what}: the refused checkpoint was changed"
        );
    }

    // A filter's checkpoint given to a window chain: the positions are
    // there, the state is not; refused rather than resumed without it.
    let filtered = run_in(dir.path(), &with("plain.json", &["-f", ".status >= 500"]));
    assert_eq!(
        common::status(&filtered),
        0,
        "{}",
        common::stderr(&filtered)
    );
    let out = run_in(dir.path(), &with("plain.json", &chain));
    assert_refused(
        &out,
        "plain.json",
        "a filter's checkpoint for a window chain",
    );
}

#[test]
fn a_corrupt_checkpoint_is_refused_as_before() {
    let dir = common::tempdir();
    std::fs::copy(
        common::root().join("fixtures/windows/requests.ndjson"),
        dir.path().join("in.ndjson"),
    )
    .unwrap();
    std::fs::write(dir.path().join("bad.json"), "{\"files\": [garbage").unwrap();
    for args in [
        &["-f", ".status >= 500"][..],
        &words("--window tumbling:1m --time .ts --key .service --agg n=count"),
        &["--key", ".service", "--agg", "n=count"],
    ] {
        let out = run_in(
            dir.path(),
            &[&["--checkpoint", "bad.json"], args, &["in.ndjson"]].concat(),
        );
        let stderr = common::stderr(&out);
        assert_eq!(common::status(&out), 4, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("evq: --checkpoint bad.json: not a checkpoint file: "),
            "{args:?}: {stderr}"
        );
        assert_eq!(common::stdout(&out), "", "{args:?}");
    }
}

// ---------------------------------------------------------------------------
// 4. Stats of the state

/// `keys` and `state_bytes` of a stage's stats, both required to be counts.
fn state_counts(stage: &Value) -> (u64, u64) {
    let count = |k: &str| {
        stage[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} is not a count in {stage}"))
    };
    (count("keys"), count("state_bytes"))
}

#[test]
fn window_stats_show_keys_and_state_bytes() {
    // At the end everything was emitted: no key is held.
    for (args, file, name) in [
        (
            &words("--window tumbling:1m --time .ts --key .service --agg n=count"),
            "fixtures/windows/requests.ndjson",
            "window#1",
        ),
        (
            &words("--key .user --agg n=count --agg s=sum(.amount)"),
            "fixtures/windows/purchases.ndjson",
            "aggregate#1",
        ),
    ] {
        let out = common::run(&[&["--stats=json"][..], args, &[file]].concat(), b"");
        assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
        let stats = common::stats_json(&out);
        let (keys, _) = state_counts(stage(&stats, name));
        assert_eq!(keys, 0, "{args:?}: keys held at the end");
    }

    // While running, the periodic reports show what is held: 300 keys at most.
    let dir = common::tempdir();
    let input = dir.path().join("in.ndjson");
    let mut rng = Rng(4);
    let mut text = String::new();
    for i in 0..30_000i64 {
        let k = rng.below(300);
        writeln!(
            text,
            r#"{{"t":{},"k":"key-{k}","v":{}}}"#,
            BASE_MS + i * 10,
            k % 7
        )
        .unwrap();
    }
    std::fs::write(&input, text).unwrap();
    for (args, name) in [
        (
            &words("--window tumbling:1h --time .t --key .k --agg n=count --agg s=sum(.v)"),
            "window#1",
        ),
        (
            &words("--key .k --agg n=count --agg s=sum(.v)"),
            "aggregate#1",
        ),
    ] {
        let out = common::evq()
            .args(["--stats=json", "--stats-every", "1ms"])
            .args(args)
            .arg(&input)
            .output()
            .unwrap();
        let stderr = common::stderr(&out);
        assert_eq!(common::status(&out), 0, "{stderr}");
        let mut reports: Vec<Value> = stderr
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect();
        let last = reports.pop().expect("final stats");
        assert!(!reports.is_empty(), "{args:?}: no periodic report");
        let mut held = false;
        for report in &reports {
            let (keys, bytes) = state_counts(stage(report, name));
            assert!(keys <= 300, "{args:?}: {keys} keys held of 300");
            assert!(bytes >= keys, "{args:?}: {keys} keys in {bytes} bytes");
            held |= keys > 0 && bytes > 0;
        }
        assert!(
            held,
            "{args:?}: no report of {} shows a key held",
            reports.len()
        );
        assert_eq!(
            state_counts(stage(&last, name)).0,
            0,
            "{args:?}: at the end"
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Every thread count against the reference

fn python_available() -> bool {
    Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Results of tests/window_reference.py (percentiles as {"$percentile": [lo, hi]}).
fn reference(args: &[&str], input: &[u8]) -> Vec<String> {
    let mut cmd = Command::new("python3");
    cmd.arg("tests/window_reference.py")
        .arg("--bounds")
        .args(args)
        .current_dir(common::root());
    let out = common::feed(cmd, input);
    assert!(
        out.status.success(),
        "reference failed on {args:?}: {}",
        common::stderr(&out)
    );
    common::stdout(&out).lines().map(String::from).collect()
}

/// `actual` matches `expected`: integers exactly, floats within a relative
/// 1e-9, percentiles within the reference's bounds widened by 1% (DDSketch).
fn same(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(e), Value::Number(a)) if e.contains_key("$percentile") => {
            let b = e["$percentile"].as_array().unwrap();
            let (lo, hi) = (b[0].as_f64().unwrap(), b[1].as_f64().unwrap());
            let a = a.as_f64().unwrap();
            (lo * 0.99).min(lo * 1.01) - 1e-9 <= a && a <= (hi * 0.99).max(hi * 1.01) + 1e-9
        }
        (Value::Number(e), Value::Number(a)) if e.is_f64() && a.is_f64() => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            (e - a).abs() <= 1e-9 * e.abs().max(a.abs()).max(1.0)
        }
        (Value::Array(e), Value::Array(a)) => {
            e.len() == a.len() && e.iter().zip(a).all(|(x, y)| same(x, y))
        }
        (Value::Object(e), Value::Object(a)) => {
            e.keys().eq(a.keys()) && e.iter().all(|(k, x)| same(x, &a[k]))
        }
        _ => expected == actual,
    }
}

/// Events over 150 users in 3 regions, out of order within 20 s, one in a
/// hundred 2 minutes late, some without a value.
fn reference_input() -> String {
    let mut rng = Rng(5);
    let mut text = String::new();
    for i in 0..3000i64 {
        let back = match rng.below(100) {
            0 => 120_000,
            1..=20 => rng.below(20_000) as i64,
            _ => 0,
        };
        let t = BASE_MS + i * 150 - back;
        let v = match rng.below(20) {
            0 => "null".to_string(),
            1 => format!("{}.5", rng.below(100)),
            _ => rng.below(500).to_string(),
        };
        writeln!(
            text,
            r#"{{"ts":{t},"user":"u{}","region":"{}","v":{v}}}"#,
            rng.below(150),
            ["eu", "us", "ap"][rng.below(3) as usize]
        )
        .unwrap();
    }
    text
}

/// Window and group-by chains compared with the reference, each with all
/// of REFERENCE_AGGS.
#[rustfmt::skip]
const REFERENCE_CHAINS: &[&[&str]] = &[
    &["--window", "tumbling:1m", "--time", ".ts", "--lateness", "20s", "--key", ".user"],
    &["--window", "sliding:2m/1m", "--time", ".ts", "--lateness", "20s",
      "--key", ".region", "--key", ".user"],
    &["--window", "session:30s", "--time", ".ts", "--lateness", "20s", "--key", ".user"],
    &["--key", ".user"],
    &["--key", ".region", "--key", ".user"],
];

#[rustfmt::skip]
const REFERENCE_AGGS: &[&str] = &[
    "--agg", "n=count", "--agg", "s=sum(.v)", "--agg", "a=avg(.v)",
    "--agg", "lo=min(.v)", "--agg", "hi=max(.v)", "--agg", "f=first(.v)", "--agg", "l=last(.v)",
    "--agg", "d=count_distinct(.v)", "--agg", "p=p90(.v)", "--agg", "c=collect(.v; 3)",
];

#[test]
fn results_match_the_reference_for_every_thread_count() {
    if !python_available() {
        eprintln!("skipping: python3 not found, the window reference cannot run");
        return;
    }
    let text = reference_input();
    let dir = common::tempdir();
    let input: PathBuf = dir.path().join("in.ndjson");
    std::fs::write(&input, &text).unwrap();
    for prefix in REFERENCE_CHAINS {
        let args = [prefix, REFERENCE_AGGS].concat();
        let group = !args.contains(&"--window");
        let ref_args = if group {
            [&["--group"][..], &args].concat()
        } else {
            args.clone()
        };
        let expected = reference(&ref_args, text.as_bytes());
        assert!(
            expected.len() >= 100,
            "{args:?}: {} results",
            expected.len()
        );
        for threads in ["1", "2", "4"] {
            let out = common::evq()
                .args(["-q", "--threads", threads])
                .args(&args)
                .arg(&input)
                .output()
                .unwrap();
            assert_eq!(
                common::status(&out),
                0,
                "{args:?} -j{threads}: {}",
                common::stderr(&out)
            );
            let actual: Vec<String> = common::stdout(&out).lines().map(String::from).collect();
            assert_eq!(
                actual.len(),
                expected.len(),
                "{args:?} -j{threads}: number of results"
            );
            for (i, (e, a)) in expected.iter().zip(&actual).enumerate() {
                let (ev, av): (Value, Value) = (
                    serde_json::from_str(e).unwrap(),
                    serde_json::from_str(a).unwrap(),
                );
                assert!(
                    same(&ev, &av),
                    "{args:?} -j{threads}: result {}\n  expected: {e}\n  evq:      {a}",
                    i + 1
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------
// 6. Results written as lines equal results built as values

/// When nothing after the window needs its results as values, they are
/// written straight as JSON lines; a `-m .` after it makes them values that
/// the output formats. The two must be the same bytes, for every aggregate
/// and every kind of key.
#[test]
fn results_written_as_lines_equal_results_built_as_values() {
    let dir = common::tempdir();
    let mut input = String::new();
    let keys = [
        "\"a\"",
        "\"b\\u0021\"",
        "1",
        "1.0",
        "-0",
        "null",
        "true",
        "[1,\"x\"]",
        "{\"z\":1,\"a\":2}",
        "\"caf\u{e9}\"",
        "100000000000000000000",
    ];
    let values = ["1", "2.5", "-7", "1e3", "12.50", "null", "\"s\"", "0.1"];
    let mut rng = Rng(0x12_0006);
    for i in 0..2000 {
        let t = 1_762_070_400 + i / 3;
        let k = rng.pick(&keys);
        let v = rng.pick(&values);
        let n = rng.below(1000);
        writeln!(input, r#"{{"t":{t},"k":{k},"v":{v},"n":{n}}}"#).unwrap();
    }
    std::fs::write(dir.path().join("in.ndjson"), input).unwrap();
    let aggs = "--agg c=count --agg s=sum(.n) --agg a=avg(.n) --agg f=sum(.n/7) \
                --agg p=p99(.n) --agg q=percentile(.n;0.3) --agg lo=min(.v) --agg hi=max(.v) \
                --agg fi=first(.v) --agg la=last(.v) --agg d=count_distinct(.v) --agg col=collect(.v;3)";
    let chains = [
        format!("--window tumbling:1m --time .t --key .k {aggs}"),
        format!("--window sliding:2m/30s --time .t --key .k --key (.n%3) {aggs}"),
        format!("--window session:2s --time .t --key .k {aggs}"),
        format!("--window tumbling:5m --time .t {aggs}"),
        format!("--key .k {aggs}"),
        format!("--key (.n%5) {aggs}"),
    ];
    for chain in &chains {
        let args = [words(chain), vec!["in.ndjson"]].concat();
        let lines = run_in(dir.path(), &args);
        let values = run_in(dir.path(), &[args.clone(), vec!["-m", "."]].concat());
        assert_eq!(
            common::status(&lines),
            0,
            "{chain}: {}",
            common::stderr(&lines)
        );
        assert!(common::stdout(&lines).lines().count() >= 2, "{chain}");
        assert_eq!(common::stdout(&lines), common::stdout(&values), "{chain}");
    }
}
