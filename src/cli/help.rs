//! The help and man page texts that are not flag definitions: the about
//! texts, the exit status and example tables (shown by `--help` and the man
//! page alike), the short usage, the man page with its synopsis, and the
//! shell completions. All derive from the flags in `cli/mod.rs`.

use super::{Generate, command};
use clap::ArgAction;

pub(super) const ABOUT: &str = "Stream processor for NDJSON events: filter and map each event with jq expressions, and account for every one.";

pub(super) const LONG_ABOUT: &str = "\
evq reads NDJSON (one JSON value per line) from each FILE in order, or from \
standard input when FILE is '-' or absent. Each event runs through the stages \
given by -f/--filter and -m/--map, in command-line order, and the surviving \
events are written to standard output as compact JSON lines. An event no map \
changed is written byte for byte as it was read (in jq's other formats, \
--indent, --tab, -S, -C and -a, every event is written from its value). Everything evq writes is \
valid JSON: a computed infinity is written as 1.7976931348623157e+308 (or its \
negative) and NaN as null, as in jq 1.7. An expression goes after -f or -m, \
never in place of a FILE. With -R each line is a string event instead; with \
--input-format json any JSON text is read, each value one event (as jq reads); \
with -n nothing is read and the chain runs once on null.

Every event is accounted for: a line that is not valid JSON, or an event whose \
expression fails at run time, is a failed event. It is reported on standard \
error as FILE:LINE: reason (the first 10, then a count), counted in --stats, \
kept in the --dead-letter file if one is given, and evq goes on with the next \
line (see --on-error). Blank lines, a CR before the newline, a UTF-8 byte order \
mark at the start of a file and a missing final newline are not errors.

Expressions are in the jq language as implemented by jaq, standard library \
included ($ENV, regular expressions, time functions). --arg, --argjson, \
--slurpfile and --rawfile bind variables in every expression; $ARGS.named holds \
them all. debug and stderr \
write on standard error as in jq 1.7 (debug: [\"DEBUG:\",VALUE], one line each).";

/// Exit statuses, for `--help` and the man page alike.
const EXIT_STATUSES: &[(&str, &str)] = &[
    (
        "0",
        "success, also when the output pipe was closed early (as by evq ... | head -1)",
    ),
    ("1", "no event was emitted, with -e/--exit-status"),
    ("2", "usage error, or an expression that does not compile"),
    (
        "3",
        "one or more events failed (with --on-error skip or abort), even if the pipe closed after",
    ),
    (
        "4",
        "I/O error: an input could not be read, or the output could not be written (Kafka too)",
    ),
    (
        "130",
        "interrupted by SIGINT (143 for SIGTERM), after writing what was read",
    ),
];

/// Examples from real use, for `--help` and the man page alike.
const EXAMPLES: &[(&str, &str)] = &[
    (
        "Error events of one service, three fields each:",
        r#"evq -f '.level == "error" and .service == "api"' -m '{ts, msg}' app.ndjson"#,
    ),
    (
        "Large transactions, failures kept for later, metrics as JSON:",
        "evq --stats=json --dead-letter failed.ndjson -f '.amount > 100' tx.ndjson",
    ),
    (
        "In a CI script, fail when a server error was logged:",
        "evq -e -f '.status >= 500' app.ndjson > /dev/null && exit 1",
    ),
];

pub(super) fn after_long_help() -> String {
    let mut text = String::from("EXIT STATUS:\n");
    for (code, meaning) in EXIT_STATUSES {
        text.push_str(&format!("    {code:<5}{meaning}\n"));
    }
    text.push_str("\nEXAMPLES:\n");
    for (what, command) in EXAMPLES {
        text.push_str(&format!("    {what}\n        {command}\n"));
    }
    text
}

/// What evq says when run with nothing to do (no stage, no FILE, standard
/// input a terminal): the usage line, an example, and where to read more.
pub fn short_usage() -> String {
    let usage = command().render_usage().to_string();
    let (what, example) = EXAMPLES[0];
    format!(
        "evq: no stage and no FILE, and standard input is a terminal: nothing to do\n{}\n\n{what}\n    {example}\n\nTry 'evq --help' for more information.",
        usage.trim_end()
    )
}

/// Writes what `--generate` asks for to `out`: the man page, or the
/// completion script for a shell, made by clap_complete from the same
/// definitions as `--help`. A closed pipe is no error (as for events); any
/// other write error is, with what was being written.
pub fn generate(kind: Generate, out: &mut dyn std::io::Write) -> anyhow::Result<()> {
    use anyhow::Context;
    use clap_complete::Shell;
    let shell = match kind {
        Generate::Man => None,
        Generate::CompleteBash => Some(Shell::Bash),
        Generate::CompleteZsh => Some(Shell::Zsh),
        Generate::CompleteFish => Some(Shell::Fish),
        Generate::CompletePowershell => Some(Shell::PowerShell),
        Generate::CompleteElvish => Some(Shell::Elvish),
    };
    let text = match shell {
        None => man_page().context("cannot render the man page")?,
        Some(shell) => {
            let mut text = Vec::new();
            clap_complete::generate(shell, &mut command(), "evq", &mut text);
            text
        }
    };
    match out.write_all(&text).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::anyhow!(crate::report::status::io_error_text(&e)))
                .context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Renders the man page from the definitions above: clap_mangen's sections,
/// then EXIT STATUS and EXAMPLES from the same tables `--help` uses.
fn man_page() -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(command());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    out.extend_from_slice(synopsis().as_bytes());
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    let mut extra = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in EXIT_STATUSES {
        extra.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff(meaning)));
    }
    extra.push_str(".SH EXAMPLES\n");
    for (what, command) in EXAMPLES {
        extra.push_str(&format!(
            ".TP\n{}\n.nf\n\\fB{}\\fR\n.fi\n",
            roff(what),
            roff(command)
        ));
    }
    out.extend_from_slice(extra.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The SYNOPSIS section: every option with its placeholders (`-f|--filter
/// EXPR`), which clap_mangen's own synopsis leaves out.
fn synopsis() -> String {
    let mut cmd = command();
    cmd.build();
    let mut line = String::from("\\fBevq\\fR");
    for arg in cmd.get_arguments().filter(|a| !a.is_hide_set()) {
        if arg.is_positional() {
            continue;
        }
        let mut names = Vec::new();
        if let Some(short) = arg.get_short() {
            names.push(format!("\\fB{}\\fR", roff(&format!("-{short}"))));
        }
        if let Some(long) = arg.get_long() {
            names.push(format!("\\fB{}\\fR", roff(&format!("--{long}"))));
        }
        let values = arg
            .get_value_names()
            .map(|names| {
                names
                    .iter()
                    .map(|n| format!("\\fI{}\\fR", roff(n)))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let takes_value = arg.get_num_args().is_some_and(|n| n.takes_values());
        let value = if !takes_value || values.is_empty() {
            String::new()
        } else if arg.get_num_args().is_some_and(|n| n.min_values() == 0) {
            format!("[={values}]")
        } else {
            format!(" {values}")
        };
        let repeated = matches!(arg.get_action(), ArgAction::Append);
        // An unpaddable space (`\ `) keeps an option with its placeholders.
        line.push_str(&format!(
            " [{}{}]{}",
            names.join("|"),
            value.replace(' ', "\\ "),
            if repeated { "..." } else { "" }
        ));
    }
    for arg in cmd.get_positionals().filter(|a| !a.is_hide_set()) {
        let name = arg
            .get_value_names()
            .map_or(arg.get_id().as_str(), |n| &n[0]);
        line.push_str(&format!(" [\\fI{}\\fR]...", roff(name)));
    }
    // Left-aligned, and placeholders not hyphenated at the end of a line.
    format!(".SH SYNOPSIS\n.nh\n.ad l\n{line}\n.ad\n.hy\n")
}

/// Escapes text for roff: backslashes, hyphens, and a leading dot or quote.
fn roff(text: &str) -> String {
    let text = text.replace('\\', "\\e").replace('-', "\\-");
    if text.starts_with('.') || text.starts_with('\'') {
        format!("\\&{text}")
    } else {
        text
    }
}
