//! Shell completions (`evq --generate complete-SHELL`), made by clap_complete
//! from the same definitions as `--help`: every shell gets a script, and the
//! bash one, loaded in bash, completes evq's options.

use crate::common;

use std::process::{Command, Stdio};

fn generate(kind: &str) -> String {
    let out = common::evq()
        .args(["--generate", kind])
        .output()
        .expect("run evq");
    assert_eq!(common::status(&out), 0, "{kind}: {}", common::stderr(&out));
    assert_eq!(common::stderr(&out), "", "{kind} wrote to stderr");
    common::stdout(&out)
}

#[test]
fn every_shell_gets_a_script_naming_evqs_options() {
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let script = generate(&format!("complete-{shell}"));
        for option in ["window", "filter", "dead-letter", "quiet"] {
            assert!(
                script.contains(option),
                "the {shell} completion does not mention {option}"
            );
        }
    }
}

/// Loads the bash completion in bash, asks it to complete `words` (the last
/// being the word under the cursor) and returns the candidates; `None`
/// without bash.
fn complete_in_bash(words: &[&str]) -> Option<Vec<String>> {
    let script = generate("complete-bash");
    let dir = common::tempdir();
    let path = dir.path().join("evq.bash");
    std::fs::write(&path, script).unwrap();
    let line = words.join(" ");
    let quoted: Vec<String> = words.iter().map(|w| format!("'{w}'")).collect();
    let program = format!(
        "source '{}' || exit 9\n\
         COMP_WORDS=({})\nCOMP_CWORD={}\nCOMP_LINE='{line}'\nCOMP_POINT=${{#COMP_LINE}}\n\
         _evq evq '{}' '{}'\nprintf '%s\\n' \"${{COMPREPLY[@]}}\"\n",
        path.display(),
        quoted.join(" "),
        words.len() - 1,
        words[words.len() - 1],
        words[words.len() - 2],
    );
    let out = match Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &program])
        .stdin(Stdio::null())
        .output()
    {
        Ok(out) => out,
        Err(_) => return None,
    };
    assert!(
        out.status.success(),
        "bash could not load or run the completion: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect(),
    )
}

#[test]
fn bash_completion_completes_options_and_their_values() {
    let Some(candidates) = complete_in_bash(&["evq", "--win"]) else {
        eprintln!("skipped: bash is not installed");
        return;
    };
    assert_eq!(candidates, ["--window"]);
    let candidates = complete_in_bash(&["evq", "--on-error", ""]).unwrap();
    assert_eq!(candidates, ["skip", "abort", "ignore"]);
}
