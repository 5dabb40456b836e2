//! Runs the examples in README.md: every ```console block holds commands
//! (lines starting with `$ `) each followed by its exact standard output.
//! Commands run with `sh` in the project root, with the built evq first on PATH.

use crate::common;

use std::process::Command;

struct Example {
    line: usize,
    command: String,
    expected: String,
}

fn examples() -> Vec<Example> {
    let readme = std::fs::read_to_string(common::root().join("README.md")).expect("README.md");
    let mut examples = Vec::new();
    let mut in_block = false;
    let mut current: Option<Example> = None;
    for (i, line) in readme.lines().enumerate() {
        if !in_block {
            in_block = line.trim_end() == "```console";
            continue;
        }
        if line.trim_end() == "```" {
            in_block = false;
            examples.extend(current.take());
        } else if let Some(cmd) = line.strip_prefix("$ ") {
            examples.extend(current.take());
            current = Some(Example {
                line: i + 1,
                command: cmd.to_string(),
                expected: String::new(),
            });
        } else if let Some(ex) = current.as_mut() {
            ex.expected.push_str(line);
            ex.expected.push('\n');
        } else {
            panic!(
                "README.md:{}: console block output before any `$ ` command",
                i + 1
            );
        }
    }
    examples
}

#[test]
fn readme_examples_print_what_the_readme_says() {
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_evq"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let examples = examples();
    assert!(
        examples.len() >= 8,
        "README.md has only {} console examples",
        examples.len()
    );
    let mut failures = Vec::new();
    for ex in &examples {
        // The install command is the one example that is not run here.
        if ex.command.starts_with("cargo ") {
            continue;
        }
        let out = Command::new("sh")
            .arg("-c")
            .arg(&ex.command)
            .current_dir(common::root())
            .env("PATH", &path)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run sh");
        let got = String::from_utf8_lossy(&out.stdout);
        if got != ex.expected {
            failures.push(format!(
                "README.md:{}: $ {}\n--- expected\n{}--- got (status {:?})\n{}--- stderr\n{}",
                ex.line,
                ex.command,
                ex.expected,
                out.status.code(),
                got,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn readme_names_the_test_command_and_every_exit_status() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    assert!(
        readme.contains("cargo test"),
        "README names no test command"
    );
    for status in ["| 0 ", "| 1 ", "| 2 ", "| 3 ", "| 4 ", "| 130 "] {
        assert!(
            readme.contains(status),
            "README exit status table lacks `{status}`"
        );
    }
}

/// Every option that has a short form is named by both in the README
/// (`-o/--output`), so that a reader who meets either finds it.
#[test]
fn readme_names_every_short_option_with_its_long_form() {
    let readme = std::fs::read_to_string(common::root().join("README.md")).unwrap();
    let mut missing = Vec::new();
    for arg in evq::command().get_arguments() {
        if let (Some(short), Some(long)) = (arg.get_short(), arg.get_long()) {
            let both = format!("-{short}/--{long}");
            if !readme.contains(&both) {
                missing.push(both);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "README.md never writes these options as `-s/--long`: {}",
        missing.join(", ")
    );
}
