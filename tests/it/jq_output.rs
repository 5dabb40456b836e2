//! jq's output flags: `-c`, `--indent N`, `--tab`, `-S`, `-C`/`-M` with
//! `JQ_COLORS` and `NO_COLOR`, `-a`, `--join-output`. The expected bytes are
//! jq 1.8's for the same input (checked against jq's own printer by hand;
//! these tests do not need jq). Where jq 1.6 differs (`--indent 0`, the
//! colours and where colour escapes go), jq 1.8 is followed.

use crate::common;

use crate::common::{run, status, stderr, stdout};

/// jq 1.8's default colours, and the reset after each coloured part.
const NULL: &str = "\x1b[0;90m";
const FALSE: &str = "\x1b[0;39m";
const TRUE: &str = "\x1b[0;39m";
const NUM: &str = "\x1b[0;39m";
const STR: &str = "\x1b[0;32m";
const ARR: &str = "\x1b[1;39m";
const OBJ: &str = "\x1b[1;39m";
const KEY: &str = "\x1b[1;34m";
const R: &str = "\x1b[0m";

const NESTED: &[u8] = br#"{"b":{"y":[2,{"d":1,"c":null}],"x":"s"},"a":[],"c":{}}
"#;

/// Runs evq on `input` and returns its standard output, checking that it
/// succeeded without a word on standard error.
fn ok(args: &[&str], input: &[u8]) -> String {
    let out = run(args, input);
    assert_eq!(status(&out), 0, "evq {args:?}: {}", stderr(&out));
    assert_eq!(stderr(&out), "", "evq {args:?} wrote to stderr");
    stdout(&out)
}

#[test]
fn indent_2_pretty_prints_as_jq() {
    assert_eq!(
        ok(&["--indent", "2"], NESTED),
        r#"{
  "b": {
    "y": [
      2,
      {
        "d": 1,
        "c": null
      }
    ],
    "x": "s"
  },
  "a": [],
  "c": {}
}
"#
    );
}

#[test]
fn indent_0_puts_each_value_on_a_line_unindented_as_jq_1_8() {
    // jq 1.6 and 1.7 made --indent 0 compact; jq 1.8 fixed that.
    assert_eq!(
        ok(&["--indent", "0"], br#"{"a":[1,{"b":null}],"c":{}}"#),
        "{\n\"a\": [\n1,\n{\n\"b\": null\n}\n],\n\"c\": {}\n}\n"
    );
}

#[test]
fn tab_indents_by_a_tab_a_level() {
    assert_eq!(
        ok(&["--tab"], br#"{"a":[1,{"b":null}],"c":"x"}"#),
        "{\n\t\"a\": [\n\t\t1,\n\t\t{\n\t\t\t\"b\": null\n\t\t}\n\t],\n\t\"c\": \"x\"\n}\n"
    );
}

#[test]
fn indent_out_of_range_is_a_usage_error() {
    let out = run(&["--indent", "8"], b"1\n");
    assert_eq!(status(&out), 2);
    assert!(stderr(&out).contains("--indent"), "{}", stderr(&out));
    assert_eq!(stdout(&out), "");
}

#[test]
fn compact_output_is_accepted_and_the_last_layout_flag_wins() {
    let line = r#"{"b":{"y":[2,{"d":1,"c":null}],"x":"s"},"a":[],"c":{}}"#;
    assert_eq!(ok(&["-c"], NESTED), format!("{line}\n"));
    assert_eq!(ok(&["--compact-output"], NESTED), format!("{line}\n"));
    assert_eq!(ok(&["--indent", "3", "-c"], NESTED), format!("{line}\n"));
    assert_eq!(
        ok(&["--tab", "--compact-output"], NESTED),
        format!("{line}\n")
    );
    assert_eq!(ok(&["-c", "--indent", "1"], b"[1]\n"), "[\n 1\n]\n");
    assert_eq!(ok(&["--indent", "1", "--tab"], b"[1]\n"), "[\n\t1\n]\n");
}

#[test]
fn sort_keys_sorts_nested_objects() {
    assert_eq!(
        ok(&["-S"], NESTED),
        "{\"a\":[],\"b\":{\"x\":\"s\",\"y\":[2,{\"c\":null,\"d\":1}]},\"c\":{}}\n"
    );
    assert_eq!(
        ok(
            &["--sort-keys", "--indent", "1"],
            br#"{"b":{"z":1,"y":2},"a":0}"#
        ),
        "{\n \"a\": 0,\n \"b\": {\n  \"y\": 2,\n  \"z\": 1\n }\n}\n"
    );
}

#[test]
fn an_unchanged_event_in_another_format_is_written_from_its_value() {
    // Byte for byte only holds for plain compact output: a filter-only chain
    // (direct evaluation), no stage, and a map all write the sorted value.
    let input = b"{\"b\": 1, \"a\": 2.50}\n{\"b\": 0}\n";
    for args in [
        &["-S", "-f", ".b > 0"][..],
        &["-S"][..],
        &["-S", "-f", ".b > 0", "-m", "{b, a}"][..],
    ] {
        let out = ok(args, input);
        assert!(out.starts_with("{\"a\":2.50,\"b\":1}\n"), "{args:?}: {out}");
    }
    assert_eq!(ok(&["-S", "-f", ".b > 0"], input), "{\"a\":2.50,\"b\":1}\n");
    // The plain default still writes the line as it was read.
    assert_eq!(ok(&["-f", ".b > 0"], input), "{\"b\": 1, \"a\": 2.50}\n");
}

#[test]
fn ascii_output_escapes_beyond_ascii_with_surrogate_pairs() {
    let input = "{\"é\":\"caf\u{e9} \u{1F600} \\u0001\\u001f\\u007f\\t\\n\\b\\f\\r\\\"\\\\/\"}\n";
    assert_eq!(
        ok(&["-a"], input.as_bytes()),
        "{\"\\u00e9\":\"caf\\u00e9 \\ud83d\\ude00 \\u0001\\u001f\\u007f\\t\\n\\b\\f\\r\\\"\\\\/\"}\n"
    );
    // Without -a, characters beyond ASCII are written as they are.
    assert_eq!(
        ok(&["-m", ".[]"], input.as_bytes()),
        "\"caf\u{e9} \u{1F600} \\u0001\\u001f\\u007f\\t\\n\\b\\f\\r\\\"\\\\/\"\n"
    );
    // As jq does, -r with -a writes a string as escaped JSON, quotes and all.
    assert_eq!(
        ok(&["-r", "-a", "-m", ".[] | .[:4]"], input.as_bytes()),
        "\"caf\\u00e9\"\n"
    );
}

#[test]
fn color_output_uses_jq_1_8_colours_for_every_value_type() {
    let out = ok(&["-C"], br#"[null,false,true,1.5,"s",[],{},{"k":[0]}]"#);
    let expected = [
        format!("{ARR}[{R}"),
        format!("{NULL}null{R}"),
        format!("{ARR},{R}{FALSE}false{R}"),
        format!("{ARR},{R}{TRUE}true{R}"),
        format!("{ARR},{R}{NUM}1.5{R}"),
        format!("{ARR},{R}{STR}\"s\"{R}"),
        format!("{ARR},{R}{ARR}[]{R}"),
        format!("{ARR},{R}{OBJ}{{}}{R}"),
        format!("{ARR},{R}{OBJ}{{{R}{KEY}\"k\"{R}{OBJ}:{R}{ARR}[{R}{NUM}0{R}{ARR}]{R}{OBJ}}}{R}"),
        format!("{ARR}]{R}\n"),
    ]
    .concat();
    assert_eq!(out, expected);
}

#[test]
fn color_output_pretty_printed() {
    let out = ok(
        &["--color-output", "--indent", "2"],
        br#"{"a":[1,"x"],"b":null}"#,
    );
    let expected = [
        format!("{OBJ}{{{R}\n"),
        format!("  {KEY}\"a\"{R}{OBJ}:{R} {ARR}[{R}\n"),
        format!("    {NUM}1{R}{ARR},{R}\n"),
        format!("    {STR}\"x\"{R}\n"),
        format!("  {ARR}]{R}{OBJ},{R}\n"),
        format!("  {KEY}\"b\"{R}{OBJ}:{R} {NULL}null{R}\n"),
        format!("{OBJ}}}{R}\n"),
    ]
    .concat();
    assert_eq!(out, expected);
}

#[test]
fn raw_strings_are_not_coloured() {
    assert_eq!(
        ok(&["-C", "-r"], b"\"text\"\n[1]\n"),
        format!("text\n{ARR}[{R}{NUM}1{R}{ARR}]{R}\n")
    );
}

#[test]
fn jq_colors_overrides_colours_in_order() {
    let mut cmd = common::evq();
    cmd.args(["-C"]).env("JQ_COLORS", "4;31:4;32::4;34");
    let out = common::feed(cmd, br#"[null,false,true,1,"s",{"k":{}}]"#);
    assert_eq!(status(&out), 0);
    assert_eq!(stderr(&out), "");
    // null, false, true ("" gives a bare reset), numbers; the rest default.
    let expected = [
        format!("{ARR}[{R}\x1b[4;31mnull{R}"),
        format!("{ARR},{R}\x1b[4;32mfalse{R}"),
        format!("{ARR},{R}\x1b[mtrue{R}"),
        format!("{ARR},{R}\x1b[4;34m1{R}"),
        format!("{ARR},{R}{STR}\"s\"{R}"),
        format!("{ARR},{R}{OBJ}{{{R}{KEY}\"k\"{R}{OBJ}:{R}{OBJ}{{}}{R}{OBJ}}}{R}"),
        format!("{ARR}]{R}\n"),
    ]
    .concat();
    assert_eq!(stdout(&out), expected);

    // All eight, the last for object keys.
    let mut cmd = common::evq();
    cmd.args(["-C"])
        .env("JQ_COLORS", "0;31:0;32:0;33:0;34:0;35:0;36:0;37:1;31");
    let out = common::feed(cmd, br#"{"k":[true]}"#);
    assert_eq!(
        stdout(&out),
        format!(
            "\x1b[0;37m{{{R}\x1b[1;31m\"k\"{R}\x1b[0;37m:{R}\x1b[0;36m[{R}\x1b[0;33mtrue{R}\x1b[0;36m]{R}\x1b[0;37m}}{R}\n"
        )
    );
}

#[test]
fn invalid_jq_colors_warns_and_keeps_the_defaults() {
    let mut cmd = common::evq();
    cmd.args(["-C"]).env("JQ_COLORS", "1;31:red");
    let out = common::feed(cmd, b"null\n");
    assert_eq!(status(&out), 0);
    assert_eq!(stdout(&out), format!("{NULL}null{R}\n"));
    assert_eq!(
        stderr(&out),
        "evq: JQ_COLORS: \"1;31:red\" is not a colon-separated list of colours such as \
         0;90:0;39:0;39:0;39:0;32:1;39:1;39:1;34; default colours used\n"
    );
}

#[test]
fn monochrome_wins_over_color_in_either_order() {
    for args in [["-C", "-M"], ["-M", "-C"]] {
        assert_eq!(ok(&args, br#"{"a":[1]}"#), "{\"a\":[1]}\n", "{args:?}");
    }
    assert_eq!(
        ok(&["--monochrome-output", "--color-output"], b"1\n"),
        "1\n"
    );
}

#[test]
fn no_colour_by_default_when_stdout_is_not_a_terminal() {
    // Standard output is a pipe here; JQ_COLORS alone does not turn colour on.
    let mut cmd = common::evq();
    cmd.env("JQ_COLORS", "0;31").env_remove("NO_COLOR");
    let out = common::feed(cmd, br#"{"a":null}"#);
    assert_eq!(stdout(&out), "{\"a\":null}\n");
}

/// Runs evq on a terminal (through script(1)) with NO_COLOR set to `no_color`
/// (or unset), and returns what it wrote there; `None` without script(1).
fn on_terminal(no_color: Option<&str>) -> Option<String> {
    let dir = common::tempdir();
    let input = dir.path().join("in.ndjson");
    std::fs::write(&input, b"{\"a\":1}\n").unwrap();
    let evq = env!("CARGO_BIN_EXE_evq");
    let mut cmd = std::process::Command::new("script");
    cmd.args([
        "-qec",
        &format!("'{evq}' '{}'", input.display()),
        "/dev/null",
    ])
    .stdin(std::process::Stdio::null())
    .env_remove("NO_COLOR")
    .env_remove("JQ_COLORS");
    if let Some(value) = no_color {
        cmd.env("NO_COLOR", value);
    }
    let out = cmd.output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).replace("\r\n", "\n"))
}

#[test]
fn colour_by_default_on_a_terminal_unless_no_color_is_set() {
    let coloured = format!("{OBJ}{{{R}{KEY}\"a\"{R}{OBJ}:{R}{NUM}1{R}{OBJ}}}{R}\n");
    let Some(unset) = on_terminal(None) else {
        eprintln!("skipped: script(1) is not available to run evq on a terminal");
        return;
    };
    assert_eq!(unset, coloured);
    // As jq 1.7.1 and later: an empty NO_COLOR does not count.
    assert_eq!(on_terminal(Some("")).unwrap(), coloured);
    assert_eq!(on_terminal(Some("1")).unwrap(), "{\"a\":1}\n");
}

#[test]
fn join_output_writes_raw_strings_with_no_newline() {
    let input = b"{\"a\":\"x\",\"n\":1}\n\"s\"\n{\"a\":\"y\",\"n\":2}\n";
    assert_eq!(ok(&["--join-output", "-m", ".a? // ."], input), "xsy");
    assert_eq!(ok(&["--join-output", "-m", ".n? // ."], input), "1s2");
    // Unchanged events, through a filter and with no stage at all.
    assert_eq!(
        ok(&["--join-output", "-f", "(.n? // 0) != 1"], input),
        "s{\"a\":\"y\",\"n\":2}"
    );
    assert_eq!(
        ok(&["--join-output"], input),
        "{\"a\":\"x\",\"n\":1}s{\"a\":\"y\",\"n\":2}"
    );
}

#[test]
fn a_switch_given_twice_is_accepted_as_in_jq() {
    assert_eq!(
        ok(&["-S", "-c", "-S", "-c"], b"{\"b\":1,\"a\":2}\n"),
        "{\"a\":2,\"b\":1}\n"
    );
    // Repeated stages and variables still add up (the last binding wins).
    assert_eq!(
        ok(
            &[
                "-m", ".a", "-m", ". + 1", "--arg", "x", "1", "--arg", "x", "2", "-m", "[., $x]"
            ],
            b"{\"a\":1}\n"
        ),
        "[2,\"2\"]\n"
    );
}
