//! `--lookup NAME FILE KEY`: CSV, TSV and NDJSON tables (gzip too) bound as
//! `$NAME`, an object of the rows keyed by `KEY | tostring` as jq's INDEX
//! makes it; left and inner joins; the table used whole; duplicates and
//! rows skipped (`FILE:LINE`, counted in `--stats`); every bad option with
//! its message and exit status; reloading under `-F`; and the same bytes
//! out whether direct evaluation runs the lookups or jaq does, on one
//! thread or several.

use crate::common;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

/// Writes `text` to `name` in `dir`; returns its path as a string.
fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// evq in `dir` with `args`, events on standard input.
fn run_in(dir: &Path, args: &[&str], stdin: &str) -> Output {
    let mut cmd = common::evq();
    cmd.current_dir(dir).args(args);
    common::feed(cmd, stdin.as_bytes())
}

/// The lookup stats of a run with `--stats=json`.
fn lookup_stats(out: &Output) -> serde_json::Value {
    common::stats_json(out)["lookups"].clone()
}

const CSV: &str = "id,name,note\n\
7,Ann,plain\n\
8,\"Bob, Jr.\",\"said \"\"hi\"\"\"\n\
9,Cy,\"two\nlines\"\n";

#[test]
fn csv_fields_are_strings_named_by_the_header_with_rfc_4180_quoting() {
    let dir = common::tempdir();
    write(dir.path(), "users.csv", CSV);
    let out = run_in(
        dir.path(),
        &[
            "-n",
            "--lookup",
            "users",
            "users.csv",
            ".id",
            "-c",
            "-m",
            "$users",
        ],
        "",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        concat!(
            r#"{"7":{"id":"7","name":"Ann","note":"plain"},"#,
            r#""8":{"id":"8","name":"Bob, Jr.","note":"said \"hi\""},"#,
            r#""9":{"id":"9","name":"Cy","note":"two\nlines"}}"#,
            "\n"
        )
    );
    // TSV: tabs between fields, the same quoting; a CRLF file and a BOM.
    write(
        dir.path(),
        "users.tsv",
        "\u{feff}id\tname\r\n7\t\"Ann\tA.\"\r\n8\tBob\r\n",
    );
    let out = run_in(
        dir.path(),
        &["-n", "--lookup", "u", "users.tsv", ".id", "-c", "-m", "$u"],
        "",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        "{\"7\":{\"id\":\"7\",\"name\":\"Ann\\tA.\"},\"8\":{\"id\":\"8\",\"name\":\"Bob\"}}\n"
    );
}

#[test]
fn left_join_and_inner_join() {
    let dir = common::tempdir();
    write(dir.path(), "users.csv", CSV);
    let events = "{\"user\":\"7\",\"n\":1}\n{\"user\":\"5\",\"n\":2}\n{\"user\":\"9\",\"n\":3}\n";
    let left = run_in(
        dir.path(),
        &[
            "--lookup",
            "users",
            "users.csv",
            ".id",
            "-m",
            ".name = $users[.user].name",
        ],
        events,
    );
    assert_eq!(common::status(&left), 0, "{}", common::stderr(&left));
    assert_eq!(
        common::stdout(&left),
        "{\"user\":\"7\",\"n\":1,\"name\":\"Ann\"}\n{\"user\":\"5\",\"n\":2,\"name\":null}\n{\"user\":\"9\",\"n\":3,\"name\":\"Cy\"}\n"
    );
    let inner = run_in(
        dir.path(),
        &[
            "--lookup",
            "users",
            "users.csv",
            ".id",
            "-f",
            "$users[.user] != null",
            "-m",
            ".n",
        ],
        events,
    );
    assert_eq!(common::stdout(&inner), "1\n3\n");
}

#[test]
fn the_table_used_whole_is_the_object_index_makes() {
    let dir = common::tempdir();
    write(dir.path(), "users.csv", CSV);
    let out = run_in(
        dir.path(),
        &[
            "-n",
            "--lookup",
            "users",
            "users.csv",
            ".id",
            "-c",
            "-m",
            r#"($users | length), $users["7"].name, ($users | keys), ({$users} | keys), "\($users["8"].name)!", ([$users[] | .id] == [$users | to_entries[] | .key])"#,
        ],
        "",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(
        common::stdout(&out),
        "3\n\"Ann\"\n[\"7\",\"8\",\"9\"]\n[\"users\"]\n\"Bob, Jr.!\"\ntrue\n"
    );
    // The same object as jq's INDEX over the rows.
    let index = run_in(
        dir.path(),
        &[
            "-n",
            "--lookup",
            "users",
            "users.csv",
            ".id",
            "-m",
            r#"$users == INDEX($users[]; .id)"#,
        ],
        "",
    );
    assert_eq!(common::stdout(&index), "true\n");
}

#[test]
fn keys_are_strings_as_on_any_object_in_jq() {
    let dir = common::tempdir();
    write(dir.path(), "users.csv", CSV);
    let run = |expr: &str, events: &str| {
        run_in(
            dir.path(),
            &["--lookup", "users", "users.csv", ".id", "-c", "-m", expr],
            events,
        )
    };
    // A number indexes no object: an error, as in jq; tostring finds it.
    let out = run("$users[.id].name", "{\"id\":7}\n");
    assert_eq!(common::status(&out), 3);
    assert_eq!(
        common::stderr(&out),
        "<stdin>:1: map#1: \"Cannot index object with number\"\n"
    );
    let out = run(
        "$users[.id | tostring].name",
        "{\"id\":7}\n{\"id\":\"8\"}\n",
    );
    assert_eq!(common::stdout(&out), "\"Ann\"\n\"Bob, Jr.\"\n");
    let out = run(
        "try $users[.id] catch .",
        "{}\n{\"id\":true}\n{\"id\":[1]}\n{\"id\":{}}\n",
    );
    assert_eq!(
        common::stdout(&out),
        concat!(
            "\"Cannot index object with null\"\n",
            "\"Cannot index object with boolean\"\n",
            "\"Cannot index object with array\"\n",
            "\"Cannot index object with object\"\n"
        )
    );
    // A key not there is null; every value of the index is looked up.
    let out = run("[$users[.ids[]].name]", "{\"ids\":[\"9\",\"x\",\"7\"]}\n");
    assert_eq!(common::stdout(&out), "[\"Cy\",null,\"Ann\"]\n");
}

#[test]
fn ndjson_tables_plain_and_gzip_with_duplicates_and_failed_rows() {
    let dir = common::tempdir();
    let rows = concat!(
        "{\"id\":1,\"team\":\"a\"}\n",
        "\n",
        "{\"id\":2,\"team\":\"b\"}\n",
        "{\"id\":1,\"team\":\"c\"}\n",
        "{\"id\":3,\"team\":\n",
        "[1,2]\n",
        "{\"id\":\"4\",\"team\":\"d\"}\r\n"
    );
    write(dir.path(), "teams.ndjson", rows);
    let gz = dir.path().join("teams.ndjson.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
    std::io::Write::write_all(&mut encoder, rows.as_bytes()).unwrap();
    encoder.finish().unwrap();
    for file in ["teams.ndjson", "teams.ndjson.gz"] {
        let out = run_in(
            dir.path(),
            &[
                "-n",
                "--stats=json",
                "--lookup",
                "t",
                file,
                ".id",
                "-c",
                "-m",
                "$t",
            ],
            "",
        );
        assert_eq!(common::status(&out), 0, "{file}: {}", common::stderr(&out));
        // The later row with key 1 replaces the earlier, in its place.
        assert_eq!(
            common::stdout(&out),
            concat!(
                r#"{"1":{"id":1,"team":"c"},"2":{"id":2,"team":"b"},"#,
                r#""4":{"id":"4","team":"d"}}"#,
                "\n"
            ),
            "{file}"
        );
        let err = common::stderr(&out);
        let reports: Vec<&str> = err.lines().filter(|l| !l.starts_with('{')).collect();
        assert_eq!(
            reports,
            [
                format!(
                    "{file}:5: --lookup t: invalid JSON: EOF while parsing a value at column 15"
                ),
                format!("{file}:6: --lookup t: KEY .id: cannot index [1,2] with \"id\""),
            ],
            "{file}"
        );
        assert_eq!(
            lookup_stats(&out),
            serde_json::json!([{"name": "t", "path": file, "rows": 3, "duplicates": 1,
                "failed": 2, "reloads": 0, "reload_failures": 0}]),
            "{file}"
        );
    }
}

#[test]
fn failed_csv_rows_are_reported_by_line_and_counted() {
    let dir = common::tempdir();
    write(
        dir.path(),
        "u.csv",
        "id,team\n1,a\n2,b,extra\n3,\"multi\nline\"\n4\n5,e\n",
    );
    let out = run_in(
        dir.path(),
        &[
            "-n",
            "--stats",
            "--lookup",
            "u",
            "u.csv",
            ".id",
            "-c",
            "-m",
            "$u | keys",
        ],
        "",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "[\"1\",\"3\",\"5\"]\n");
    let err = common::stderr(&out);
    assert!(
        err.starts_with(concat!(
            "u.csv:3: --lookup u: 3 fields, where the header row has 2\n",
            "u.csv:6: --lookup u: 1 field, where the header row has 2\n"
        )),
        "{err}"
    );
    assert!(
        err.ends_with("lookup $u u.csv: 3 rows, 0 duplicates, 2 failed, 0 reloads (0 failed)\n"),
        "{err}"
    );
    // A KEY that fails or gives nothing skips the row; -q keeps it quiet.
    let out = run_in(
        dir.path(),
        &[
            "-n",
            "-q",
            "--stats=json",
            "--lookup",
            "u",
            "u.csv",
            "if .id == \"3\" then error(\"no\") elif .id == \"5\" then empty else .id end",
            "-c",
            "-m",
            "$u | keys",
        ],
        "",
    );
    assert_eq!(common::stdout(&out), "[\"1\"]\n");
    assert_eq!(lookup_stats(&out)[0]["failed"], 4);
    assert_eq!(common::stderr(&out).lines().count(), 1, "only the stats");
}

#[test]
fn a_header_only_csv_is_an_empty_table_and_an_empty_csv_cannot_be_read() {
    let dir = common::tempdir();
    write(dir.path(), "header.csv", "id,team\n");
    let out = run_in(
        dir.path(),
        &["-n", "--lookup", "t", "header.csv", ".id", "-m", "$t"],
        "",
    );
    assert_eq!(common::status(&out), 0, "{}", common::stderr(&out));
    assert_eq!(common::stdout(&out), "{}\n");
    // An empty NDJSON file is an empty table too.
    write(dir.path(), "empty.ndjson", "");
    let out = run_in(
        dir.path(),
        &["-n", "--lookup", "t", "empty.ndjson", ".id", "-m", "$t"],
        "",
    );
    assert_eq!(common::stdout(&out), "{}\n");
    write(dir.path(), "empty.csv", "");
    let out = run_in(
        dir.path(),
        &["-n", "--lookup", "t", "empty.csv", ".id", "-m", "$t"],
        "",
    );
    assert_eq!(common::status(&out), 4);
    assert_eq!(
        common::stderr(&out),
        "evq: --lookup t: empty.csv: no header row naming the fields (the file is empty)\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn bad_options_are_refused_before_any_input_is_read() {
    let dir = common::tempdir();
    write(dir.path(), "u.csv", CSV);
    let out_file = dir.path().join("out.ndjson");
    std::fs::write(&out_file, "kept\n").unwrap();
    let cases: &[(&[&str], i32, &str)] = &[
        (
            &["--lookup", "u", "missing.csv", ".id"],
            4,
            "evq: --lookup u: cannot read missing.csv: No such file or directory\n",
        ),
        (
            &["--lookup", "u", ".", ".id"],
            4,
            "evq: --lookup u: cannot read .: Is a directory\n",
        ),
        (
            &["--lookup", "2u", "u.csv", ".id"],
            2,
            "evq: --lookup: '2u' is not a variable name (letters, digits and _, not starting with a digit)\n",
        ),
        (
            &[
                "--lookup", "u", "u.csv", ".id", "--lookup", "u", "u.csv", ".name",
            ],
            2,
            "evq: --lookup u: $u is also bound by another --lookup; give the table another name\n",
        ),
        (
            &["--arg", "u", "x", "--lookup", "u", "u.csv", ".id"],
            2,
            "evq: --lookup u: $u is also bound by --arg; give the table another name\n",
        ),
        (
            &["--lookup", "ENV", "u.csv", ".id"],
            2,
            "evq: --lookup ENV: $ENV is also bound by evq; give the table another name\n",
        ),
        (
            &["--lookup", "u", "u.csv", ".id |"],
            2,
            concat!(
                "evq: error in --lookup u KEY: expected term\n",
                "  ╭─[--lookup u KEY]\n",
                "  │\n",
                "1 │ .id |\n",
                "  ┆     ┬\n",
                "  ┆     │\n",
                "  ┆     ╰─ unexpected end of input\n",
                "──╯\n"
            ),
        ),
    ];
    for (args, status, message) in cases {
        let mut all = args.to_vec();
        all.extend(["-m", ".", "-o", "out.ndjson"]);
        let out = run_in(dir.path(), &all, "{\"id\":\"7\"}\n");
        assert_eq!(common::status(&out), *status, "{args:?}");
        assert_eq!(common::stderr(&out), *message, "{args:?}");
        assert_eq!(
            common::read(&out_file),
            b"kept\n",
            "{args:?}: output opened"
        );
    }
    // A stage that binds the table's name itself, or misuses it, is told
    // where, in the expression as written.
    let out = run_in(
        dir.path(),
        &["--lookup", "u", "u.csv", ".id", "-m", ". as $u | $u"],
        "",
    );
    assert_eq!(common::status(&out), 2);
    assert!(
        common::stderr(&out).starts_with(
            "evq: error in --map #1: $u is a --lookup table, and this expression binds $u (as): rename one of them\n"
        ),
        "{}",
        common::stderr(&out)
    );
    let out = run_in(
        dir.path(),
        &["--lookup", "u", "u.csv", ".id", "-m", "$u[.id] | nope"],
        "",
    );
    assert_eq!(common::status(&out), 2);
    assert!(
        common::stderr(&out).contains("1 │ $u[.id] | nope\n"),
        "{}",
        common::stderr(&out)
    );
}

/// Events that look a key up every way a line can spell it: missing,
/// numbers and strings, escaped strings, non-ASCII keys, repeated keys,
/// values that are not objects.
const TRICKY: &str = concat!(
    "{\"uid\":\"7\"}\n",
    "{\"uid\":\"missing\"}\n",
    "{\"uid\":7}\n",
    "{\"uid\":\"\\u0037\"}\n",
    "{\"uid\":\"é\"}\n",
    "{\"uid\":\"\\u00e9\"}\n",
    "{\"uid\":\"a\\\"b\"}\n",
    "{\"uid\":\"éx\"}\n",
    "{\"uid\":8}\n",
    "{\"uid\":null}\n",
    "{\"uid\":true}\n",
    "{\"uid\":-0}\n",
    "{\"uid\":1.0}\n",
    "{\"uid\":100000000000000000000}\n",
    "{}\n",
    "{\"uid\":\"7\",\"team\":\"old\"}\n",
    "{\"uid\":\"7\",\"uid\":\"8\"}\n",
    "{\"uid\":\"tab\"}\n",
    "[1,2]\n",
    "\"7\"\n",
    "{\"uid\":{\"a\":1}}\n",
    "{\"uid\":\"😀\",\"x\":[1, 2]}\n",
    "not json\n",
);

/// The table of the differential test: keys by `tostring` of numbers,
/// null, escapes and non-ASCII; a row with DEL and an escaped key.
const TRICKY_TABLE: &str = concat!(
    "{\"id\":\"7\",\"name\":\"Ann\",\"team\":\"core\",\"nested\":{\"deep\":1}}\n",
    "{\"id\":\"é\",\"name\":\"Émile\",\"team\":\"ünï\"}\n",
    "{\"id\":\"a\\\"b\",\"name\":\"quote\",\"team\":\"q\"}\n",
    "{\"id\":\"\\u00e9x\",\"name\":\"escaped key\",\"team\":\"e\"}\n",
    "{\"id\":8,\"name\":\"eight\",\"team\":\"n\",\"nested\":null}\n",
    "{\"id\":0,\"name\":\"zero\",\"team\":\"z\"}\n",
    "{\"id\":null,\"name\":\"null key\",\"team\":\"nk\"}\n",
    "{\"id\":true,\"name\":\"true key\",\"team\":\"tk\"}\n",
    "{\"id\":\"tab\",\"name\":\"t\u{7f}del\",\"team\":[1,{\"b\":2}],\"nested\":\"str\"}\n",
    "{\"id\":\"😀\",\"name\":\"smile\",\"team\":\"s\"}\n",
    "{\"id\":100000000000000000000,\"name\":\"big\",\"team\":\"b\"}\n",
);

#[test]
fn direct_evaluation_and_jaq_agree_byte_for_byte() {
    let dir = common::tempdir();
    write(dir.path(), "users.ndjson", TRICKY_TABLE);
    write(dir.path(), "events.ndjson", TRICKY);
    let stages: &[&[&str]] = &[
        &["-m", ".team = $users[.uid].team"],
        &["-m", ".team = $users[.uid | tostring].team"],
        &["-m", ".deep = $users[.uid | tostring].nested.deep"],
        &["-f", "$users[.uid] != null"],
        &["-f", "$users[.uid | tostring].team == \"core\""],
        &["-f", "select($users[.uid | tostring] == null)"],
        &[
            "-m",
            "{u: .uid, row: $users[.uid | tostring], name: $users[.uid | tostring].name}",
        ],
        &["-r", "-m", "$users[.uid | tostring].name // \"none\""],
        &["-m", "$users[\"7\"].name"],
        &["--arg", "k", "é", "-m", "{n: $users[$k].name, v: .uid}"],
        &["-f", ".uid != null", "-m", "$users[.uid | tostring].team"],
    ];
    for stage in stages {
        let mut args = vec!["--lookup", "users", "users.ndjson", ".id"];
        args.extend_from_slice(stage);
        args.push("events.ndjson");
        let run = |threads: &str, full: bool| {
            let mut cmd = common::evq();
            cmd.current_dir(dir.path()).args(&args);
            cmd.env("EVQ_THREADS", threads).env_remove("EVQ_FULL_PARSE");
            if full {
                cmd.env("EVQ_FULL_PARSE", "1");
            }
            cmd.output().unwrap()
        };
        let direct = run("2", false);
        for (threads, full) in [("1", false), ("2", true), ("1", true)] {
            let other = run(threads, full);
            assert_eq!(
                common::stdout(&direct),
                common::stdout(&other),
                "{stage:?}: EVQ_THREADS={threads} EVQ_FULL_PARSE={full}"
            );
            assert_eq!(common::stderr(&direct), common::stderr(&other), "{stage:?}");
            assert_eq!(direct.status.code(), other.status.code(), "{stage:?}");
        }
        // Direct evaluation did take the lines it can.
        let mut stats = vec!["--stats=json", "-q"];
        stats.extend_from_slice(&args);
        let mut cmd = common::evq();
        cmd.current_dir(dir.path())
            .args(&stats)
            .env_remove("EVQ_FULL_PARSE");
        let out = cmd.output().unwrap();
        let direct = common::stats_json(&out)["events_direct"].as_u64().unwrap();
        assert!(direct >= 5, "{stage:?}: {direct} events direct");
    }
    // The answers themselves, for one of them.
    let out = run_in(
        dir.path(),
        &[
            "--lookup",
            "users",
            "users.ndjson",
            ".id",
            "-c",
            "-m",
            "$users[.uid | tostring].name",
            "events.ndjson",
        ],
        "",
    );
    assert_eq!(
        common::stdout(&out),
        concat!(
            "\"Ann\"\n",
            "null\n",
            "\"Ann\"\n",
            "\"Ann\"\n",
            "\"Émile\"\n",
            "\"Émile\"\n",
            "\"quote\"\n",
            "\"escaped key\"\n",
            "\"eight\"\n",
            "\"null key\"\n",
            "\"true key\"\n",
            "\"zero\"\n",
            "null\n",
            "\"big\"\n",
            "\"null key\"\n",
            "\"Ann\"\n",
            "\"eight\"\n",
            "\"t\\u007fdel\"\n",
            "null\n",
            "\"smile\"\n",
        )
    );
    assert_eq!(common::status(&out), 3, "{}", common::stderr(&out));
}

/// evq following `events.ndjson` in `dir` with a table, its output and
/// standard error in files.
struct Follower {
    child: Child,
    out: std::path::PathBuf,
    err: std::path::PathBuf,
}

impl Follower {
    fn start(dir: &Path, args: &[&str]) -> Follower {
        let (out, err) = (dir.join("out.ndjson"), dir.join("err.txt"));
        let mut cmd = common::evq();
        cmd.current_dir(dir)
            .args(["-F", "--follow-interval", "20ms", "--stats=json", "-o"])
            .arg(&out)
            .args(args)
            .arg("events.ndjson")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap());
        Follower {
            child: cmd.spawn().expect("spawn evq"),
            out,
            err,
        }
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.out).unwrap_or_default()
    }

    /// Waits (at most 10 s) until `done` holds of the output, appending
    /// `probe` to the input every 100 ms meanwhile, if given.
    fn until(&self, dir: &Path, probe: Option<&str>, done: impl Fn(&str, &str) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let err = std::fs::read_to_string(&self.err).unwrap_or_default();
            if done(&self.output(), &err) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "waited; output:\n{}\nstderr:\n{err}",
                self.output()
            );
            if let Some(probe) = probe {
                common::append(&dir.join("events.ndjson"), probe);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGTERM; the stats JSON.
    fn stop(mut self) -> serde_json::Value {
        std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(common::wait_timeout(&mut self.child, Duration::from_secs(10)).is_some());
        let err = std::fs::read_to_string(&self.err).unwrap();
        serde_json::from_str(err.lines().last().unwrap()).unwrap()
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// Replaces `name` in `dir` with `text` at once (a new file renamed over it).
fn replace(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[test]
fn a_changed_table_is_loaded_again_under_follow_and_a_failed_load_keeps_the_old() {
    let dir = common::tempdir();
    let d = dir.path();
    write(d, "teams.csv", "id,team\n1,old\n");
    write(d, "events.ndjson", "{\"id\":\"1\"}\n");
    let f = Follower::start(
        d,
        &[
            "--lookup",
            "t",
            "teams.csv",
            ".id",
            "-c",
            "-m",
            "$t[.id].team",
        ],
    );
    f.until(d, None, |out, _| out == "\"old\"\n");
    replace(d, "teams.csv", "id,team\n1,new\n2,two\n");
    // Events keep coming; once one sees the new table, all later ones do.
    f.until(d, Some("{\"id\":\"1\"}\n"), |out, _| {
        out.ends_with("\"new\"\n")
    });
    common::append(&d.join("events.ndjson"), "{\"id\":\"2\"}\n");
    f.until(d, None, |out, _| out.ends_with("\"new\"\n\"two\"\n"));
    let out = f.output();
    let first_new = out.find("\"new\"").unwrap();
    assert!(!out[first_new..].contains("old"), "{out}");
    // A table that cannot be read is reported and the old one stays.
    replace(d, "teams.csv", "");
    f.until(d, None, |_, err| err.contains("loading it again failed"));
    common::append(&d.join("events.ndjson"), "{\"id\":\"2\"}\n");
    f.until(d, None, |out, _| {
        out.ends_with("\"new\"\n\"two\"\n\"two\"\n")
    });
    let err = std::fs::read_to_string(&f.err).unwrap();
    assert_eq!(
        err,
        "evq: --lookup t: loading it again failed: teams.csv: no header row naming the fields (the file is empty); the table loaded before stays in use\n"
    );
    let stats = f.stop();
    assert_eq!(
        stats["lookups"],
        serde_json::json!([{"name": "t", "path": "teams.csv", "rows": 2, "duplicates": 0,
            "failed": 0, "reloads": 1, "reload_failures": 1}])
    );
}

#[test]
fn rows_read_straight_from_their_text_are_those_jaq_reads() {
    let dir = common::tempdir();
    write(
        dir.path(),
        "t.ndjson",
        concat!(
            "{\"id\":\"1\",\"v\":1.50}\n",
            "{ \"id\" : \"2\", \"v\": [1, 2] }\n",
            "{\"id\":\"\\u0033\",\"v\":\"é\"}\n",
            "{\"id\":4,\"v\":\"\\u00e9\\/\"}\n",
            "{\"id\":5,\"id\":6,\"v\":1}\n",
            "{\"id\":\"7\",\"v\":\"del\u{7f}\"}\n",
            "{\"id\":-0,\"v\":-0}\n",
            "{\"id\":{\"a\":[1,{\"b\":null}]},\"v\":true}\n",
            "{\"id\":1e2,\"v\":null}\n",
            "{\"id\":1.0,\"v\":\"x\"}\n",
            "{\"v\":\"no id\"}\n",
            "null\n",
            "{\"id\":[3,4]}\n",
            "[3,4]\n",
        ),
    );
    write(
        dir.path(),
        "dup.csv",
        "id,v,v\n1,a,b\n2,\"c\"\"\",\"d\\e\"\n",
    );
    write(
        dir.path(),
        "t.csv",
        "id,v,w\n1,a,\"b\u{7f}\"\n2,\"c\"\"\",\"d\\e\t\"\n",
    );
    for file in ["t.ndjson", "dup.csv", "t.csv"] {
        // `.id` is read from the row's text; `.id | .` runs jaq on its value.
        let outs: Vec<Output> = [".id", ".id | ."]
            .iter()
            .map(|key| {
                run_in(
                    dir.path(),
                    &["-n", "--lookup", "t", file, key, "-c", "-m", "$t"],
                    "",
                )
            })
            .collect();
        assert_eq!(common::status(&outs[0]), 0, "{file}");
        assert_eq!(common::stdout(&outs[0]), common::stdout(&outs[1]), "{file}");
        assert_eq!(
            common::stderr(&outs[0]),
            common::stderr(&outs[1]).replace(".id | .", ".id"),
            "{file}"
        );
    }
    let out = run_in(
        dir.path(),
        &[
            "-n",
            "--lookup",
            "t",
            "t.ndjson",
            ".id",
            "-c",
            "-m",
            "$t | keys",
        ],
        "",
    );
    assert_eq!(
        common::stdout(&out),
        "[\"0\",\"1\",\"1.0\",\"1e2\",\"2\",\"3\",\"4\",\"6\",\"7\",\"[3,4]\",\"null\",\"{\\\"a\\\":[1,{\\\"b\\\":null}]}\"]\n"
    );
}

#[test]
fn csv_rows_are_numbered_by_the_files_lines_across_quoted_line_breaks() {
    let dir = common::tempdir();
    // The record `2,y` is on line 4, after a CRLF inside quotes (LF too).
    for (name, eol) in [("crlf.csv", "\r\n"), ("lf.csv", "\n")] {
        let text = format!("id,name,note{eol}1,\"multi{eol}line\",x{eol}2,y{eol}3,z,ok{eol}4{eol}");
        write(dir.path(), name, &text);
        let out = run_in(
            dir.path(),
            &["-n", "--lookup", "t", name, ".id", "-c", "-m", "$t | keys"],
            "",
        );
        assert_eq!(common::stdout(&out), "[\"1\",\"3\"]\n", "{name}");
        assert_eq!(
            common::stderr(&out),
            format!(
                "{name}:4: --lookup t: 2 fields, where the header row has 3\n{name}:6: --lookup t: 1 field, where the header row has 3\n"
            ),
            "{name}"
        );
    }
}
