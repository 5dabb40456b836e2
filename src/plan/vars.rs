//! The variables of the command line (`--arg`, `--argjson`, `--slurpfile`,
//! `--rawfile`): their files read once, here, and their values made for
//! each compile (jaq values are not `Send`, so each worker makes its own).

use super::Error;
use crate::cli::VarKind;
use jaq_json::Val;

/// A variable binding of the command line, with its text: VALUE or JSON as
/// given, or what FILE holds (read once, by `bindings`).
#[derive(Clone)]
pub(super) struct Binding {
    kind: VarKind,
    name: String,
    text: std::sync::Arc<str>,
    /// FILE, for `--slurpfile` and `--rawfile`.
    file: Option<String>,
}

/// The command line's bindings, with the files of `--slurpfile` and
/// `--rawfile` read: one that cannot be read is an I/O error (exit 4).
pub(super) fn bindings(args: &[(VarKind, String, String)]) -> Result<Vec<Binding>, Error> {
    let mut bindings = Vec::new();
    for (kind, name, value) in args {
        let (text, file) = match kind {
            VarKind::Arg | VarKind::ArgJson => (value.as_str().into(), None),
            VarKind::SlurpFile | VarKind::RawFile => {
                let bytes = std::fs::read(value).map_err(|e| {
                    Error::Io(format!(
                        "evq: {} {name}: cannot read {value}: {}",
                        kind.option(),
                        crate::report::status::io_error_text(&e)
                    ))
                })?;
                (String::from_utf8_lossy(&bytes).into(), Some(value.clone()))
            }
        };
        bindings.push(Binding {
            kind: *kind,
            name: name.clone(),
            text,
            file,
        });
    }
    Ok(bindings)
}

/// The variables the bindings give, in command-line order: `--arg` a
/// string, `--argjson` its JSON, `--slurpfile` an array of the JSON values
/// in FILE, `--rawfile` FILE's text.
pub(super) fn variables(bindings: &[Binding]) -> Result<Vec<(String, Val)>, Error> {
    let mut vars = Vec::new();
    for Binding {
        kind,
        name,
        text,
        file,
    } in bindings
    {
        let name = var_name(kind.option(), name)?;
        let value = match kind {
            VarKind::Arg | VarKind::RawFile => Val::from(text.to_string()),
            VarKind::ArgJson => crate::json::parse(text.as_bytes())
                .map_err(|e| Error::Usage(format!("evq: --argjson {name}: {e}")))?,
            VarKind::SlurpFile => {
                let file = file.as_deref().unwrap_or_default();
                let mut values = Vec::new();
                for (line, value) in crate::source::json_values(text.as_bytes()) {
                    values.push(crate::json::parse(&value).map_err(|e| {
                        Error::Usage(format!(
                            "evq: --slurpfile {name}: {file}:{line}: {}",
                            crate::source::value_error(&e)
                        ))
                    })?);
                }
                Val::Arr(values.into())
            }
        };
        vars.push((name, value));
    }
    Ok(vars)
}

pub(super) fn var_name(option: &str, name: &str) -> Result<String, Error> {
    let name = name.strip_prefix('$').unwrap_or(name);
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if valid {
        Ok(name.to_string())
    } else {
        Err(Error::Usage(format!(
            "evq: {option}: '{name}' is not a variable name (letters, digits and _, not starting with a digit)"
        )))
    }
}
