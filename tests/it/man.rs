//! The man page is generated from the clap definitions (`evq --generate man`)
//! and committed as man/evq.1; these tests keep the committed page, the
//! generator and `--help` in step.

use crate::common;

use std::collections::BTreeSet;

const REGENERATE: &str = "run `cargo run -- --generate man > man/evq.1` and commit the result";

fn generated() -> Vec<u8> {
    let out = common::evq()
        .args(["--generate", "man"])
        .output()
        .expect("run evq");
    assert_eq!(
        common::status(&out),
        0,
        "evq --generate man failed: {}",
        common::stderr(&out)
    );
    assert!(
        out.stderr.is_empty(),
        "evq --generate man wrote to stderr: {}",
        common::stderr(&out)
    );
    out.stdout
}

fn committed() -> String {
    let path = common::root().join("man/evq.1");
    let bytes = std::fs::read(&path)
        .unwrap_or_else(|e| panic!("man/evq.1 cannot be read ({e}): {REGENERATE}"));
    String::from_utf8(bytes).expect("man/evq.1 is UTF-8")
}

/// `evq --help` (the long form), at a fixed width so wrapping does not depend
/// on the machine running the tests.
fn long_help() -> String {
    let out = common::evq()
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .expect("run evq");
    assert_eq!(
        common::status(&out),
        0,
        "evq --help failed: {}",
        common::stderr(&out)
    );
    common::stdout(&out)
}

/// Roff text as a reader sees it: escaped hyphens and quotes, font changes removed.
fn unroff(roff: &str) -> String {
    roff.replace("\\-", "-")
        .replace("\\ ", " ")
        .replace("\\*(Aq", "'")
        .replace("\\fB", "")
        .replace("\\fI", "")
        .replace("\\fR", "")
}

/// The long options (`--name`) a text mentions.
fn long_options(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("--") {
        rest = &rest[i + 2..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
            .collect();
        let name = name.trim_end_matches('-');
        if name.chars().next().is_some_and(|c| c.is_ascii_lowercase()) {
            names.insert(format!("--{name}"));
        }
        rest = &rest[name.len()..];
    }
    names
}

/// The lines of the EXIT STATUS block of a text: from `EXIT STATUS:` to the
/// first empty line, with runs of spaces collapsed.
fn exit_status_block(text: &str) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.trim() == "EXIT STATUS:")
        .unwrap_or_else(|| panic!("no `EXIT STATUS:` line in:\n{text}"));
    lines[start + 1..]
        .iter()
        .take_while(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn committed_man_page_is_what_evq_generates() {
    let generated = generated();
    let committed = committed();
    if generated != committed.as_bytes() {
        let generated = String::from_utf8_lossy(&generated);
        let first = generated
            .lines()
            .zip(committed.lines())
            .position(|(g, c)| g != c)
            .unwrap_or_else(|| generated.lines().count().min(committed.lines().count()));
        panic!(
            "man/evq.1 is not what `evq --generate man` writes (first difference at line {}):\n\
             committed: {:?}\ngenerated: {:?}\n{REGENERATE}",
            first + 1,
            committed.lines().nth(first).unwrap_or("<end of file>"),
            generated.lines().nth(first).unwrap_or("<end of file>"),
        );
    }
}

#[test]
fn help_mentions_every_long_option_of_the_man_page() {
    let man = unroff(&committed());
    let help = long_help();
    let in_man = long_options(&man);
    let in_help = long_options(&help);
    for expected in [
        "--filter",
        "--map",
        "--stats",
        "--on-error",
        "--dead-letter",
        "--quiet",
        "--help",
        "--version",
    ] {
        assert!(
            in_man.contains(expected),
            "man/evq.1 does not mention {expected}; it has {in_man:?}"
        );
    }
    let missing: Vec<_> = in_man.difference(&in_help).collect();
    assert!(
        missing.is_empty(),
        "evq --help does not mention {missing:?}, which man/evq.1 lists"
    );
    let not_in_man: Vec<_> = in_help.difference(&in_man).collect();
    assert!(
        not_in_man.is_empty(),
        "man/evq.1 does not mention {not_in_man:?}, which evq --help lists"
    );
    assert!(
        !in_help.contains("--generate"),
        "--generate is hidden, yet evq --help shows it"
    );
}

#[test]
fn help_and_man_page_document_the_exit_statuses() {
    let help = exit_status_block(&long_help());
    let codes: Vec<&str> = help.iter().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(
        codes,
        ["0", "1", "2", "3", "4", "130"],
        "exit statuses in evq --help: {help:#?}"
    );
    // The man page has a real EXIT STATUS section: `.TP`, the code in bold, its meaning.
    let man = committed();
    let section = man
        .split("\n.SH \"EXIT STATUS\"\n")
        .nth(1)
        .expect("man/evq.1 has an EXIT STATUS section");
    let section = section.split("\n.SH ").next().unwrap();
    let entries: Vec<String> = section
        .split(".TP\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| unroff(e).split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        entries, help,
        "the EXIT STATUS text of man/evq.1 and of evq --help differ"
    );
}

#[test]
fn man_page_synopsis_shows_each_options_placeholders() {
    let man = committed();
    let synopsis = man
        .split("\n.SH SYNOPSIS\n")
        .nth(1)
        .expect("man/evq.1 has a SYNOPSIS section");
    let synopsis = unroff(synopsis.split("\n.SH ").next().unwrap());
    for expected in [
        "[-f|--filter EXPR]...",
        "[-m|--map EXPR]...",
        "[--arg NAME VALUE]...",
        "[--window SPEC]",
        "[--stats[=FORMAT]]",
        "[-F|--follow]",
        "[FILE]...",
    ] {
        assert!(
            synopsis.contains(expected),
            "the SYNOPSIS of man/evq.1 does not show {expected}:\n{synopsis}"
        );
    }
}

#[test]
fn a_man_page_that_cannot_be_written_is_an_io_error() {
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        eprintln!("no /dev/full here: skipped");
        return;
    };
    let out = common::evq()
        .args(["--generate", "man"])
        .stdout(full)
        .output()
        .expect("run evq");
    assert_eq!(common::status(&out), 4);
    assert_eq!(
        common::stderr(&out),
        "evq: cannot write to stdout: No space left on device\n"
    );
}
