//! The progress bar in a pseudo-terminal: never drawn between the events on
//! the terminal they go to, drawn when they go elsewhere, and drawn anyway
//! under `--progress`.
//!
//! Each run reads a file of a few MB and then standard input from a `sleep`,
//! so it lasts over a second whatever the machine: the bar, redrawn ten times
//! a second, shows when it is enabled. The pseudo-terminal comes from
//! util-linux's `script`, or else python3's `pty` module; with neither the
//! tests say so and pass.

use crate::common;

use std::path::Path;
use std::process::{Command, Stdio};

/// Runs `sh -c command` with standard output and error on a new
/// pseudo-terminal (standard input too, unused) and returns what the terminal
/// showed, with the terminal's CR LF turned back into LF; `None` when no way
/// to make a pseudo-terminal was found.
fn on_terminal(command: &str) -> Option<String> {
    let script = |args: &[&str]| {
        let mut cmd = Command::new("script");
        cmd.args(["-qfec"]).args(args).arg("/dev/null");
        cmd
    };
    let python = |args: &[&str]| {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", PTY]).args(args);
        cmd
    };
    let works = |mut cmd: Command| {
        cmd.stdin(Stdio::null())
            .output()
            .is_ok_and(|out| out.status.success() && out.stdout == b"tty\r\n")
    };
    // `test -t 1` checks that the command really runs on a terminal.
    let probe = "test -t 1 && test -t 2 && echo tty";
    let mut cmd = if works(script(&[probe])) {
        script(&[command])
    } else if works(python(&[probe])) {
        python(&[command])
    } else {
        println!("skipped: neither util-linux script nor python3 can make a pseudo-terminal here");
        return None;
    };
    // indicatif draws nothing on a terminal whose TERM is unset or dumb.
    let out = cmd
        .env("TERM", "xterm")
        .current_dir(common::root())
        .stdin(Stdio::null())
        .output()
        .expect("run under a pseudo-terminal");
    assert!(out.status.success(), "{command}: {out:?}");
    Some(String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n"))
}

/// Runs argv[1] with `sh -c` on a new pseudo-terminal and copies what it shows.
const PTY: &str = r#"
import os, pty, subprocess, sys
master, slave = pty.openpty()
child = subprocess.Popen(["sh", "-c", sys.argv[1]], stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
os.close(slave)
shown = bytearray()
while True:
    try:
        data = os.read(master, 65536)
    except OSError:
        break
    if not data:
        break
    shown += data
status = child.wait()
sys.stdout.buffer.write(bytes(shown))
sys.exit(status)
"#;

/// A few MB of events in `dir`, and the events `-f '.n % 1000 == 0' -m .n` keeps.
fn big_input(dir: &Path) -> (String, String) {
    let mut text = String::new();
    let mut kept = String::new();
    for n in 0..30_000 {
        text.push_str(&format!(
            "{{\"n\":{n},\"level\":\"info\",\"msg\":\"{}\"}}\n",
            "x".repeat(60)
        ));
        if n % 1000 == 0 {
            kept.push_str(&format!("{n}\n"));
        }
    }
    let path = dir.join("big.ndjson");
    std::fs::write(&path, text).unwrap();
    (path.display().to_string(), kept)
}

/// The shell command: evq on the big file, then on standard input, which
/// ends after a second (the run cannot be over before the bar would show).
fn evq_command(file: &str, options: &str, redirect: &str) -> String {
    format!(
        // -M: events on a terminal are coloured by default, and colour
        // escapes would hide the bar's.
        "sleep 1 | '{}' -M {options} -f '.n % 1000 == 0' -m .n '{file}' - {redirect}",
        env!("CARGO_BIN_EXE_evq")
    )
}

/// Marks the bar leaves on a terminal: its message, the carriage return and
/// escape sequences it redraws with, its blocks and spinner (braille).
fn bar_marks(shown: &str) -> Vec<String> {
    let mut marks = Vec::new();
    if shown.contains(" in, ") {
        marks.push("the message \"N in, M out\"".to_string());
    }
    for (c, what) in [('\r', "CR"), ('\x1b', "ESC"), ('█', "█"), ('░', "░")] {
        if shown.contains(c) {
            marks.push(what.to_string());
        }
    }
    if shown
        .chars()
        .any(|c| ('\u{2800}'..='\u{28ff}').contains(&c))
    {
        marks.push("a spinner character".to_string());
    }
    marks
}

#[test]
fn no_bar_between_events_on_the_terminal() {
    let dir = common::tempdir();
    let (file, kept) = big_input(dir.path());
    let Some(shown) = on_terminal(&evq_command(&file, "", "")) else {
        return;
    };
    assert_eq!(bar_marks(&shown), Vec::<String>::new(), "{shown:?}");
    // Whole and in one piece (the pty tool may add a line of its own).
    assert!(shown.contains(&kept), "{shown:?}");
}

#[test]
fn bar_drawn_when_events_go_elsewhere() {
    let dir = common::tempdir();
    let (file, kept) = big_input(dir.path());
    let out = dir.path().join("out.ndjson");
    let redirect = format!("> '{}'", out.display());
    let Some(shown) = on_terminal(&evq_command(&file, "", &redirect)) else {
        return;
    };
    assert!(shown.contains(" in, "), "no bar: {shown:?}");
    assert!(shown.ends_with("\x1b[2K"), "bar not cleared: {shown:?}");
    assert_eq!(String::from_utf8(common::read(&out)).unwrap(), kept);

    // The same with -o FILE, standard output still on the terminal.
    let Some(shown) = on_terminal(&evq_command(&file, &format!("-o '{}'", out.display()), ""))
    else {
        return;
    };
    assert!(shown.contains(" in, "), "no bar: {shown:?}");
    assert_eq!(String::from_utf8(common::read(&out)).unwrap(), kept);
}

#[test]
fn no_bar_when_o_names_the_terminal_of_standard_error() {
    let dir = common::tempdir();
    let (file, kept) = big_input(dir.path());
    let out = dir.path().join("stdout.txt");
    let redirect = format!("> '{}'", out.display());
    let Some(shown) = on_terminal(&evq_command(&file, "-o /dev/stderr", &redirect)) else {
        return;
    };
    assert_eq!(bar_marks(&shown), Vec::<String>::new(), "{shown:?}");
    // Whole and in one piece (the pty tool may add a line of its own).
    assert!(shown.contains(&kept), "{shown:?}");
    assert_eq!(common::read(&out), b"");
}

#[test]
fn progress_forces_the_bar_even_on_the_terminal_of_the_events() {
    let dir = common::tempdir();
    let (file, kept) = big_input(dir.path());
    let Some(shown) = on_terminal(&evq_command(&file, "--progress", "")) else {
        return;
    };
    assert!(shown.contains(" in, "), "no bar: {shown:?}");
    for line in kept.lines() {
        assert!(shown.contains(line), "{line} missing: {shown:?}");
    }
}

#[test]
fn debug_lines_above_the_bar() {
    let dir = common::tempdir();
    let (file, kept) = big_input(dir.path());
    let out = dir.path().join("out.ndjson");
    let command = format!(
        "sleep 1 | '{}' -m '.n | select(. % 1000 == 0) | debug' '{file}' - > '{}'",
        env!("CARGO_BIN_EXE_evq"),
        out.display()
    );
    let Some(shown) = on_terminal(&command) else {
        return;
    };
    assert!(shown.contains(" in, "), "no bar: {shown:?}");
    assert_eq!(String::from_utf8(common::read(&out)).unwrap(), kept);
    // Each debug line is whole, at the start of a line (after the bar was
    // cleared from it).
    for n in kept.lines() {
        let line = format!("[\"DEBUG:\",{n}]\n");
        let at = shown
            .find(&line)
            .unwrap_or_else(|| panic!("{line:?} missing: {shown:?}"));
        assert!(
            at == 0 || shown[..at].ends_with('\n') || shown[..at].ends_with("\x1b[2K"),
            "{line:?} not at the start of a line: {shown:?}"
        );
    }
}
