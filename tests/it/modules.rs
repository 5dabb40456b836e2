//! jq modules: `-L DIR`, `import "m" as m;` and `include "m";` of `.jq`
//! modules, `import "d" as $d;` of `.json` data files, and the compile errors
//! when one is missing or broken (exit 2, before any input is read). The
//! modules are written into a temporary directory by each test; where jq is
//! installed, its output for the same program is compared too.

use crate::common;

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A directory holding `lib/` with the test modules; evq runs there, with
/// `HOME` pointing into it so jq's default `~/.jq` finds nothing of the user's.
struct Lib {
    dir: tempfile::TempDir,
}

impl Lib {
    fn new() -> Lib {
        let dir = common::tempdir();
        let files: &[(&str, &str)] = &[
            ("lib/m.jq", "def f: .a + 1;\ndef g: \"g\";\n"),
            ("lib/reads.jq", "def b: .b;\n"),
            ("lib/pkg/pkg.jq", "def h: \"nested\";\n"),
            ("lib/dk.jq", "import \"d\" as $dd;\ndef k: $dd;\n"),
            ("lib/d.json", "{\"a\":1}\n2 \"x\"\n[]\n"),
            ("lib/e.json", "\"e\"\n"),
            ("lib/bad.jq", "def ok: 1;\ndef f: ;\n"),
            ("lib/bad.json", "{\"a\":1}\n{\"a\":\n"),
            ("home/.keep", ""),
        ];
        for (path, text) in files {
            let path = dir.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Lib { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The canonical path of a file under the directory, as evq names it.
    fn canonical(&self, name: &str) -> String {
        let path = self.path().join(name).canonicalize().unwrap();
        path.display().to_string()
    }

    /// Runs evq in the directory with `args`, `stdin` as input.
    fn evq(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = common::evq();
        cmd.current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .args(args);
        common::feed(cmd, stdin.as_bytes())
    }

    /// jq's compact output for `program` with `args`, or `None` when jq is
    /// not installed (it is not needed to run these tests).
    fn jq(&self, args: &[&str], program: &str, stdin: &str) -> Option<String> {
        let mut cmd = Command::new("jq");
        cmd.current_dir(self.path())
            .env("HOME", self.path().join("home"))
            .arg("-c")
            .args(args)
            .arg(program);
        let child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .ok()?;
        let out = {
            use std::io::Write;
            let mut child = child;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            child.wait_with_output().unwrap()
        };
        assert!(out.status.success(), "jq failed: {}", common::stderr(&out));
        Some(common::stdout(&out))
    }

    /// evq's map `program` with `-L lib`, which must succeed with `expected`
    /// (and agree with jq, where jq runs it).
    fn map(&self, program: &str, stdin: &str, expected: &str) {
        let out = self.evq(&["-L", "lib", "-m", program], stdin);
        assert_eq!(common::stderr(&out), "", "{program}");
        assert_eq!(common::status(&out), 0, "{program}");
        assert_eq!(common::stdout(&out), expected, "{program}");
        if let Some(jq) = self.jq(&["-L", "lib"], program, stdin) {
            assert_eq!(jq, expected, "jq disagrees on {program}");
        }
    }

    /// evq with `args` must refuse to start: exit 2, nothing written, and
    /// exactly `expected` on standard error.
    fn refuse(&self, args: &[&str], expected: &str) {
        let out = self.evq(args, "{\"a\":1,\"b\":2}\n");
        assert_eq!(common::stderr(&out), expected, "{args:?}");
        assert_eq!(common::status(&out), 2, "{args:?}");
        assert_eq!(common::stdout(&out), "", "{args:?}");
    }
}

#[test]
fn import_calls_a_module_s_functions_by_its_name() {
    let lib = Lib::new();
    lib.map("import \"m\" as m; m::f", "{\"a\":5}\n", "6\n");
    lib.map(
        "import \"m\" as m; [m::f, m::g]",
        "{\"a\":1}\n",
        "[2,\"g\"]\n",
    );
    // The long option, repeated: directories are searched in order.
    let out = lib.evq(
        &[
            "--library-path",
            "home",
            "--library-path=lib",
            "-m",
            "import \"m\" as m; m::f",
        ],
        "{\"a\":5}\n",
    );
    assert_eq!(common::stdout(&out), "6\n", "{}", common::stderr(&out));
}

#[test]
fn include_brings_a_module_s_definitions_in() {
    let lib = Lib::new();
    lib.map("include \"m\"; [f, g]", "{\"a\":5}\n", "[6,\"g\"]\n");
}

#[test]
fn a_module_may_sit_in_a_directory_of_its_name() {
    // jq looks for "pkg" in pkg.jq, then in pkg/pkg.jq.
    let lib = Lib::new();
    lib.map("import \"pkg\" as p; p::h", "{}\n", "\"nested\"\n");
}

#[test]
fn search_metadata_of_the_expression_is_relative_to_the_current_directory() {
    let lib = Lib::new();
    let program = "import \"m\" as m {search: \"./lib\"}; m::f";
    let out = lib.evq(&["-m", program], "{\"a\":5}\n");
    assert_eq!(common::stdout(&out), "6\n", "{}", common::stderr(&out));
    if let Some(jq) = lib.jq(&[], program, "{\"a\":5}\n") {
        assert_eq!(jq, "6\n");
    }
}

#[test]
fn data_import_binds_an_array_of_all_the_file_s_values() {
    let lib = Lib::new();
    lib.map(
        "import \"d\" as $d; $d",
        "{}\n{}\n",
        "[{\"a\":1},2,\"x\",[]]\n[{\"a\":1},2,\"x\",[]]\n",
    );
}

#[test]
fn imported_data_and_variables_each_keep_their_own_value() {
    // The case of the issue: imported data sits above the globals; each name
    // must read its own value, with --arg, in modules, on every worker thread.
    let lib = Lib::new();
    let program = "import \"dk\" as k; import \"e\" as $e; import \"d\" as $d; [$x, $y, $e, k::k == $d, ($d | length)]";
    let events = "{}\n".repeat(50);
    let expected = "[\"1\",{\"y\":2},[\"e\"],true,4]\n".repeat(50);
    for threads in ["1", "3"] {
        let out = lib.evq(
            &[
                "-j",
                threads,
                "-L",
                "lib",
                "--arg",
                "x",
                "1",
                "--argjson",
                "y",
                "{\"y\":2}",
                "-m",
                program,
            ],
            &events,
        );
        assert_eq!(common::stderr(&out), "", "-j {threads}");
        assert_eq!(common::stdout(&out), expected, "-j {threads}");
    }
}

#[test]
fn a_module_function_may_read_any_field() {
    // The fields an expression reads are not known through a module call:
    // the event is parsed whole, and direct evaluation leaves it to jaq.
    let lib = Lib::new();
    let out = lib.evq(
        &[
            "-L",
            "lib",
            "-f",
            ".a == 1",
            "-f",
            "include \"reads\"; b == 2",
            "-m",
            "import \"reads\" as r; {b: r::b}",
        ],
        "{\"a\":1,\"b\":2}\n{\"a\":1,\"b\":3}\n{\"a\":2,\"b\":2}\n",
    );
    assert_eq!(common::stderr(&out), "");
    assert_eq!(common::stdout(&out), "{\"b\":2}\n");
}

#[test]
fn window_expressions_may_import_modules() {
    let lib = Lib::new();
    let out = lib.evq(
        &[
            "-L",
            "lib",
            "--agg",
            "n=count",
            "--key",
            "import \"m\" as m; m::f",
        ],
        "{\"a\":1}\n{\"a\":1}\n{\"a\":2}\n",
    );
    assert_eq!(common::stderr(&out), "");
    assert_eq!(
        common::stdout(&out),
        "{\"key\":2,\"n\":2}\n{\"key\":3,\"n\":1}\n"
    );
}

#[test]
fn a_missing_data_file_is_a_compile_error_not_another_variable() {
    // Before: `$t` read `$x` and evq printed "1".
    let lib = Lib::new();
    lib.refuse(
        &[
            "-L",
            "lib",
            "--arg",
            "x",
            "1",
            "-m",
            "import \"nope\" as $t; $t",
        ],
        r#"evq: error in --map #1: cannot load data file "nope": nope.json not found in the search path lib (set with -L DIR)
  ╭─[--map #1]
  │
1 │ import "nope" as $t; $t
  ┆         ──┬─           
  ┆           │            
  ┆           ╰───────────── this data file
──╯
"#,
    );
    // Without -L: jq's default search path, named as jq names it.
    let out = lib.evq(
        &["--arg", "x", "1", "-m", "import \"nope\" as $t; $t"],
        "{}\n",
    );
    assert_eq!(common::status(&out), 2);
    assert_eq!(common::stdout(&out), "");
    assert!(
        common::stderr(&out).starts_with("evq: error in --map #1: cannot load data file \"nope\": nope.json not found in the search path ~/.jq, $ORIGIN/../lib/jq, $ORIGIN/../lib (set with -L DIR)\n"),
        "{}",
        common::stderr(&out)
    );
}

#[test]
fn a_missing_module_is_a_compile_error_naming_it_and_the_stage() {
    let lib = Lib::new();
    lib.refuse(
        &["-L", "lib", "-f", ".a", "-f", "include \"m2\"; f"],
        r#"evq: error in --filter #2: cannot load module "m2": m2.jq not found in the search path lib (set with -L DIR)
  ╭─[--filter #2]
  │
1 │ include "m2"; f
  ┆          ─┬    
  ┆           │    
  ┆           ╰───── this module
──╯
"#,
    );
}

#[test]
fn a_syntax_error_in_a_module_is_shown_in_the_module_file() {
    let lib = Lib::new();
    let bad = lib.canonical("lib/bad.jq");
    lib.refuse(
        &["-L", "lib", "-m", "import \"bad\" as b; b::ok"],
        &format!(
            r#"evq: error in --map #1: in module {bad}: expected term
  ╭─[{bad}]
  │
2 │ def f: ;
  ┆        ┬
  ┆        │
  ┆        ╰─ unexpected token
──╯
"#
        ),
    );
}

#[test]
fn invalid_json_in_a_data_file_is_a_compile_error_with_its_line() {
    let lib = Lib::new();
    let bad = lib.canonical("lib/bad.json");
    lib.refuse(
        &["-L", "lib", "-m", "import \"bad\" as $b; $b"],
        &format!(
            r#"evq: error in --map #1: cannot load data file "bad": {bad}:2:6: invalid JSON: EOF while parsing a value
  ╭─[--map #1]
  │
1 │ import "bad" as $b; $b
  ┆         ─┬─           
  ┆          │            
  ┆          ╰───────────── this data file
──╯
"#
        ),
    );
}

#[test]
fn jq_s_second_name_for_imported_data_gets_a_hint() {
    let lib = Lib::new();
    let out = lib.evq(&["-L", "lib", "-m", "import \"d\" as $d; $d::d"], "{}\n");
    assert_eq!(common::status(&out), 2);
    assert!(
        common::stderr(&out).contains("write $d (jq's $d::d is not supported)"),
        "{}",
        common::stderr(&out)
    );
}
