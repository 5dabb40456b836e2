//! `--lookup NAME FILE KEY`: the tables checked (names, KEY expressions:
//! exit 2), declared to the language (`jq::lookup::register`), and read
//! before any event (a file that cannot be read: exit 4). Under `-F` a
//! thread of their own (`Lookups::watch`) looks at each file's metadata and
//! loads one that changed again, on the side; the new table is swapped in
//! for the workers' next batches, and one that fails to load leaves the old
//! one in use.
//!
//! Reading a file: NDJSON (gzip or zstd by content, as inputs: blank lines,
//! a trailing CR and a BOM dropped), or CSV or TSV when its name ends in
//! `.csv` or `.tsv` (before a `.gz`, `.zst` or `.zstd`), read by the `csv`
//! crate (RFC 4180 quoting: commas, quotes and newlines in quoted fields);
//! its header row names the fields of each row's object, and every value is
//! a string. A CSV file with no header row (an empty file) cannot be read.
//! Each row's key is `KEY | tostring` (every value of KEY, as INDEX takes
//! them); a row that is not valid, or whose KEY fails or gives no value, is
//! reported as `FILE:LINE` and skipped. KEY written as a path of constant
//! keys (`.id`, `.a.b`) is read straight from the row without running jaq.

use super::Error;
use super::vars::{Binding, var_name, variables};
use crate::cli::Args;
use crate::jq::lookup::{self, Table};
use crate::jq::{Globals, Program};
use crate::json::{Kind, Locate, Located, Token};
use crate::report::status::io_error_text;
use jaq_json::Val;
use std::io::{BufRead, Read};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Failed rows reported per load; the rest are counted.
const REPORT_LIMIT: u64 = 10;

/// One `--lookup`, as written.
#[derive(Clone)]
struct Spec {
    name: String,
    file: String,
    key: String,
}

/// The tables of the command line and what loading them again needs.
#[derive(Clone, Default)]
pub struct Lookups {
    specs: Vec<Spec>,
    /// The variables KEY expressions may use (`--arg` and the like).
    vars: Vec<Binding>,
    /// Each file's identity when it was last loaded (or looked at).
    seen: Vec<Option<Identity>>,
    quiet: bool,
}

/// What tells a changed file: device, inode, size, modification time.
type Identity = (u64, u64, u64, i64, i64);

fn identity(path: &str) -> Option<Identity> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec()))
}

/// The `--lookup` options checked: each NAME a variable name, given once and
/// not also bound by `--arg` and the like; each KEY compiles. The tables are
/// then declared, so the stages may use them; they are read by `load`.
pub(super) fn prepare(args: &Args, bindings: &[Binding]) -> Result<Lookups, Error> {
    let mut specs: Vec<Spec> = Vec::new();
    for triple in args.lookup.chunks(3) {
        let [name, file, key] = triple else {
            unreachable!("clap takes three values")
        };
        let name = var_name("--lookup", name)?;
        let clash = if specs.iter().any(|s| s.name == name) {
            Some("another --lookup")
        } else if ["ENV", "ARGS", "__loc__"].contains(&name.as_str()) {
            Some("evq")
        } else {
            args.vars
                .iter()
                .find(|(_, n, _)| n.strip_prefix('$').unwrap_or(n) == name)
                .map(|(kind, _, _)| kind.option())
        };
        if let Some(by) = clash {
            return Err(Error::Usage(format!(
                "evq: --lookup {name}: ${name} is also bound by {by}; give the table another name"
            )));
        }
        specs.push(Spec {
            name,
            file: file.clone(),
            key: key.clone(),
        });
    }
    let lookups = Lookups {
        seen: vec![None; specs.len()],
        specs,
        vars: bindings.to_vec(),
        quiet: args.quiet,
    };
    if lookups.specs.is_empty() {
        return Ok(lookups);
    }
    let mut errors = String::new();
    for key in lookups.keys()? {
        if let Err(report) = key {
            errors.push_str(&report);
        }
    }
    if !errors.is_empty() {
        return Err(Error::Usage(errors.trim_end().to_string()));
    }
    lookup::register(
        (lookups.specs.iter())
            .map(|s| (s.name.clone(), s.file.clone()))
            .collect(),
    );
    Ok(lookups)
}

/// How a row's key is found: straight from the row for a path of constant
/// keys, else (and for an error's message) by running KEY.
struct Key {
    path: Option<Vec<Vec<u8>>>,
    /// The same path for `json::locate`, each key in a slot from 0.
    locate: Option<Locate>,
    program: Program,
}

/// Keys of a path `Key` reads straight from a row's text, at most.
const KEY_DEPTH: usize = 8;

impl Key {
    fn new(code: &str, program: Program) -> Key {
        let path = key_path(code).filter(|p| p.len() <= KEY_DEPTH);
        let locate = path.as_ref().map(|path| {
            let mut locate = Locate::default();
            let mut node = &mut locate;
            for (slot, key) in path.iter().enumerate() {
                node.keys.push((key.clone(), slot, Locate::default()));
                node = &mut node.keys[0].2;
            }
            locate
        });
        Key {
            path,
            locate,
            program,
        }
    }

    /// The key of a row's text as `tostring` gives it, read from its
    /// tokens (the text is spelled as jaq writes, so a value's text is its
    /// `tostring`); `None` when jaq must say (an escaped string, a type error).
    fn of_text<'t>(
        &self,
        text: &'t [u8],
        located: &Located,
        slots: &[Option<Token>],
    ) -> Option<&'t [u8]> {
        let mut kind = located.root.kind;
        for (i, slot) in slots.iter().enumerate() {
            match kind {
                Kind::Object => {}
                Kind::Null => return Some(b"null"),
                _ => return None,
            }
            let Some(t) = slot else {
                return Some(b"null");
            };
            if i + 1 < slots.len() {
                kind = t.kind;
                continue;
            }
            return match t.kind {
                Kind::Str => Some(&text[t.start + 1..t.end - 1]),
                Kind::EscapedStr => None,
                _ => Some(&text[t.start..t.end]),
            };
        }
        None
    }

    /// Appends each value of KEY on `row`, as `tostring` gives it, to `out`.
    fn keys(&self, row: &Val, out: &mut Vec<Vec<u8>>) -> Result<(), String> {
        if let Some(path) = &self.path {
            let mut at = row;
            let mut known = true;
            for key in path {
                match at {
                    Val::Obj(o) => {
                        let key = Val::from(String::from_utf8_lossy(key).into_owned());
                        match o.get(&key) {
                            Some(v) => at = v,
                            None => {
                                at = &Val::Null;
                                break;
                            }
                        }
                    }
                    Val::Null => break,
                    // A type error: jaq says which.
                    _ => {
                        known = false;
                        break;
                    }
                }
            }
            if known {
                out.push(tostring(at));
                return Ok(());
            }
        }
        self.program.run(row.clone(), |v| {
            out.push(tostring(&v));
            true
        })
    }
}

/// jq's `tostring`, as bytes: a string's text, any other value's JSON.
fn tostring(v: &Val) -> Vec<u8> {
    match v {
        Val::TStr(s) | Val::BStr(s) => s.to_vec(),
        v => {
            let mut out = Vec::new();
            crate::json::write_compact(&mut out, v);
            out
        }
    }
}

/// A path of constant keys without `?` (`.id`, `.a."b"`), if `code` is one.
fn key_path(code: &str) -> Option<Vec<Vec<u8>>> {
    use jaq_core::load::parse::Term;
    use jaq_core::path::{Opt, Part};
    let term: Term<&str> = jaq_core::load::parse(code, |p| p.term())?;
    let Term::Path(base, path) = term else {
        return None;
    };
    if !matches!(*base, Term::Id) {
        return None;
    }
    path.0
        .iter()
        .map(|(part, opt)| match (part, opt) {
            (Part::Index(k), Opt::Essential) => crate::jq::fields::constant(k),
            _ => None,
        })
        .collect()
}

/// What one load of a table counted.
struct Loaded {
    table: Table,
    duplicates: u64,
    failed: u64,
}

impl Lookups {
    /// Each KEY compiled, or its compile error's report.
    fn keys(&self) -> Result<Vec<Result<Key, String>>, Error> {
        let globals = Globals::new(variables(&self.vars)?);
        Ok(self
            .specs
            .iter()
            .map(|spec| {
                let label = format!("--lookup {} KEY", spec.name);
                Program::compile(&spec.key, &label, &globals)
                    .map(|program| Key::new(&spec.key, program))
            })
            .collect())
    }

    /// Reads every table file and puts the tables in force. A file that
    /// cannot be read is an I/O error (exit 4).
    pub(super) fn load(&mut self) -> Result<(), Error> {
        if self.specs.is_empty() {
            return Ok(());
        }
        let keys = self.keys()?;
        for (i, key) in keys.into_iter().enumerate() {
            let key = key.map_err(Error::Usage)?;
            let spec = &self.specs[i];
            self.seen[i] = identity(&spec.file);
            let loaded = read(spec, &key, self.quiet)
                .map_err(|e| Error::Io(format!("evq: --lookup {}: {}", spec.name, e)))?;
            put(i, loaded, false);
        }
        Ok(())
    }

    /// Under `-F`: a thread that looks at each table file about every
    /// `every` (at most a second) and loads one that changed (its inode,
    /// size or modification time) again. `None` without tables.
    pub fn watch(&self, every: Duration) -> Option<Watcher> {
        if self.specs.is_empty() {
            return None;
        }
        let every = every.min(Duration::from_secs(1));
        let stop = Arc::new(AtomicBool::new(false));
        let mut lookups = self.clone();
        let stopped = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("lookup-reload".into())
            .spawn(move || {
                let keys = match lookups.keys() {
                    Ok(keys) => keys,
                    Err(_) => return,
                };
                let keys: Vec<Key> = keys.into_iter().filter_map(Result::ok).collect();
                while !stopped.load(Ordering::Relaxed) {
                    let mut slept = Duration::ZERO;
                    while slept < every && !stopped.load(Ordering::Relaxed) {
                        let step = Duration::from_millis(20).min(every - slept);
                        std::thread::sleep(step);
                        slept += step;
                    }
                    for (i, key) in keys.iter().enumerate() {
                        lookups.reload(i, key);
                    }
                }
            })
            .expect("spawn the lookup reload thread");
        Some(Watcher {
            stop,
            thread: Some(thread),
        })
    }

    /// Loads table `i` again when its file changed since it was last seen.
    fn reload(&mut self, i: usize, key: &Key) {
        let spec = &self.specs[i];
        let now = identity(&spec.file);
        if now == self.seen[i] {
            return;
        }
        self.seen[i] = now;
        let counters = &lookup::slots()[i].counters;
        let result = match now {
            // Gone (for now): said once, until the file changes again.
            None => std::fs::metadata(&spec.file)
                .map(|_| ())
                .map_err(|e| format!("cannot read {}: {}", spec.file, io_error_text(&e))),
            Some(_) => read(spec, key, self.quiet).map(|loaded| put(i, loaded, true)),
        };
        if let Err(e) = result {
            counters.reload_failures.fetch_add(1, Ordering::Relaxed);
            crate::report::progress::eprintln(&format!(
                "evq: --lookup {}: loading it again failed: {e}; the table loaded before stays in use",
                spec.name
            ));
        }
    }
}

/// Puts a loaded table in force for slot `i`, with its counts.
fn put(i: usize, loaded: Loaded, again: bool) {
    let counters = &lookup::slots()[i].counters;
    counters
        .rows
        .store(loaded.table.len() as u64, Ordering::Relaxed);
    (counters.duplicates).store(loaded.duplicates, Ordering::Relaxed);
    counters.failed.store(loaded.failed, Ordering::Relaxed);
    if again {
        counters.reloads.fetch_add(1, Ordering::Relaxed);
    }
    lookup::install(i, loaded.table);
}

/// The reload thread of `-F`; stopped (and waited for) when dropped.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Builds a table from rows, reporting the rows it skips.
struct Builder<'a> {
    spec: &'a Spec,
    key: &'a Key,
    quiet: bool,
    table: Table,
    duplicates: u64,
    failed: u64,
    keys: Vec<Vec<u8>>,
}

impl Builder<'_> {
    /// A row that could not be read or keyed, on line `line` of the file.
    fn fail(&mut self, line: u64, error: &str) {
        self.failed += 1;
        if !self.quiet && self.failed <= REPORT_LIMIT {
            crate::report::progress::eprintln(&format!(
                "{}:{line}: --lookup {}: {error}",
                self.spec.file, self.spec.name
            ));
        }
    }

    /// Adds the row `value`, from line `line`, under each of its keys;
    /// `text` is its JSON as jaq writes it, when known.
    fn add(&mut self, line: u64, value: &Val, text: Option<&[u8]>) {
        self.keys.clear();
        let mut keys = std::mem::take(&mut self.keys);
        match self.key.keys(value, &mut keys) {
            Err(e) => self.fail(line, &format!("KEY {}: {e}", self.spec.key)),
            Ok(()) if keys.is_empty() => {
                self.fail(line, &format!("KEY {} gives no value", self.spec.key))
            }
            Ok(()) => {
                let mut written = Vec::new();
                let row = text.unwrap_or_else(|| {
                    crate::json::write_compact(&mut written, value);
                    &written
                });
                for key in &keys {
                    self.insert(key, row);
                }
            }
        }
        self.keys = keys;
    }

    fn insert(&mut self, key: &[u8], row: &[u8]) {
        if self.table.insert(key, row) {
            self.duplicates += 1;
        }
    }

    fn finish(mut self) -> Loaded {
        if !self.quiet && self.failed > REPORT_LIMIT {
            crate::report::progress::eprintln(&format!(
                "evq: --lookup {}: {} more rows of {} skipped, not shown",
                self.spec.name,
                self.failed - REPORT_LIMIT,
                self.spec.file
            ));
        }
        self.table.shrink_to_fit();
        Loaded {
            table: self.table,
            duplicates: self.duplicates,
            failed: self.failed,
        }
    }
}

/// The delimiter of a CSV or TSV file, by its name (before a compression
/// suffix); `None`: NDJSON.
fn delimiter(file: &str) -> Option<u8> {
    let lower = file.to_ascii_lowercase();
    let name = [".gz", ".zst", ".zstd"]
        .iter()
        .find_map(|ext| lower.strip_suffix(ext))
        .unwrap_or(&lower);
    if name.ends_with(".csv") {
        Some(b',')
    } else if name.ends_with(".tsv") {
        Some(b'\t')
    } else {
        None
    }
}

/// Reads a table file into a table; `Err` says why the file cannot be read.
fn read(spec: &Spec, key: &Key, quiet: bool) -> Result<Loaded, String> {
    let cannot = |e: std::io::Error| format!("cannot read {}: {}", spec.file, io_error_text(&e));
    let file = std::fs::File::open(&spec.file).map_err(cannot)?;
    if file.metadata().map_err(cannot)?.is_dir() {
        return Err(format!("cannot read {}: Is a directory", spec.file));
    }
    let reader = crate::source::decompressed(file).map_err(cannot)?;
    let mut builder = Builder {
        spec,
        key,
        quiet,
        table: Table::default(),
        duplicates: 0,
        failed: 0,
        keys: Vec::new(),
    };
    match delimiter(&spec.file) {
        Some(delimiter) => read_csv(reader, delimiter, &mut builder)?,
        None => read_ndjson(reader, &mut builder).map_err(cannot)?,
    }
    Ok(builder.finish())
}

fn read_ndjson(reader: Box<dyn Read + '_>, builder: &mut Builder) -> std::io::Result<()> {
    let mut reader = std::io::BufReader::with_capacity(256 * 1024, reader);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        number += 1;
        let mut text = line.strip_suffix(b"\n").unwrap_or(&line);
        text = text.strip_suffix(b"\r").unwrap_or(text);
        if number == 1 {
            text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        }
        if text.iter().all(|b| matches!(b, b' ' | b'\t' | b'\r')) {
            continue;
        }
        ndjson_row(builder, number, text);
    }
}

/// One NDJSON row. A row spelled as jaq writes it is kept as it is, and
/// with a path KEY its key is read from its tokens: no jaq value is built.
fn ndjson_row(builder: &mut Builder, number: u64, text: &[u8]) {
    let key = builder.key;
    let none = Locate::default();
    let depth = key.path.as_ref().map_or(0, Vec::len);
    let mut slots = [None; KEY_DEPTH];
    let slots = &mut slots[..depth];
    let located = crate::json::locate(text, key.locate.as_ref().unwrap_or(&none), slots, true);
    let as_is = located
        .as_ref()
        .is_ok_and(|l| l.canonical && l.unique_keys && memchr::memchr(0x7f, text).is_none());
    if let (true, Ok(located)) = (as_is && key.locate.is_some(), &located)
        && let Some(k) = key.of_text(text, located, slots)
    {
        builder.insert(k, text);
        return;
    }
    match crate::json::parse(text) {
        Ok(value) => builder.add(number, &value, as_is.then_some(text)),
        Err(e) => builder.fail(number, &e.to_string()),
    }
}

fn read_csv(
    reader: Box<dyn Read + '_>,
    delimiter: u8,
    builder: &mut Builder,
) -> Result<(), String> {
    let file = &builder.spec.file;
    let breaks = LineBreaks::default();
    let reader = Counted {
        inner: reader,
        breaks: breaks.clone(),
        offset: 0,
    };
    let mut csv = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(reader);
    let names: Vec<String> = match csv.headers() {
        Ok(h) if h.is_empty() => {
            return Err(format!(
                "{file}: no header row naming the fields (the file is empty)"
            ));
        }
        Ok(h) => h.iter().map(String::from).collect(),
        Err(e) => return Err(format!("{file}: header row: {}", csv_error(&e))),
    };
    // With distinct names a row's JSON is written straight from its fields
    // (`"name":` written once), and a KEY `.name` is one of them.
    let distinct = names
        .iter()
        .enumerate()
        .all(|(i, n)| !names[..i].contains(n));
    let prefixes: Vec<Vec<u8>> = (names.iter())
        .map(|name| {
            let mut prefix = Vec::new();
            crate::json::write_str(name, &mut prefix);
            prefix.push(b':');
            prefix
        })
        .collect();
    let field = match &builder.key.path {
        Some(path) if distinct && path.len() == 1 => {
            Some(names.iter().position(|n| n.as_bytes() == path[0]))
        }
        _ => None,
    };
    let mut record = csv::StringRecord::new();
    let mut row = Vec::new();
    loop {
        match csv.read_record(&mut record) {
            Ok(false) => return Ok(()),
            Ok(true) => {
                let line = record.position().map_or(0, |p| breaks.line_at(p.byte()));
                if !distinct {
                    // A name given twice: its last value at its first place.
                    let mut map = jaq_json::Map::default();
                    for (name, value) in names.iter().zip(record.iter()) {
                        map.insert(Val::from(name.clone()), Val::from(value.to_string()));
                    }
                    builder.add(line, &Val::obj(map), None);
                    continue;
                }
                row.clear();
                row.push(b'{');
                for (i, (prefix, value)) in prefixes.iter().zip(record.iter()).enumerate() {
                    if i > 0 {
                        row.push(b',');
                    }
                    row.extend_from_slice(prefix);
                    crate::json::write_str(value, &mut row);
                }
                row.push(b'}');
                match field {
                    Some(Some(i)) => builder.insert(record[i].as_bytes(), &row),
                    Some(None) => builder.insert(b"null", &row),
                    None => {
                        let value = crate::json::parse(&row).expect("a row written as JSON");
                        builder.add(line, &value, Some(&row));
                    }
                }
            }
            Err(e) => match e.kind() {
                csv::ErrorKind::Io(io) => {
                    return Err(format!("cannot read {file}: {}", io_error_text(io)));
                }
                _ => {
                    let line = e.position().map_or(0, |p| breaks.line_at(p.byte()));
                    builder.fail(line, &csv_error(&e));
                }
            },
        }
    }
}

/// Where the line breaks of a CSV file are, to number its records by the
/// file's lines (the csv crate's own line count misses a CRLF inside a
/// quoted field): the offsets of the breaks not yet passed, and how many
/// were passed.
#[derive(Clone, Default)]
struct LineBreaks(std::rc::Rc<std::cell::RefCell<(std::collections::VecDeque<u64>, u64)>>);

impl LineBreaks {
    /// The line (from 1) of a record the csv crate says starts at `offset`:
    /// after a CRLF it says the LF's offset, so a break there is passed too.
    /// Offsets asked for never go back.
    fn line_at(&self, offset: u64) -> u64 {
        let mut inner = self.0.borrow_mut();
        let (breaks, passed) = &mut *inner;
        while breaks.front().is_some_and(|&b| b <= offset) {
            breaks.pop_front();
            *passed += 1;
        }
        *passed + 1
    }
}

/// A reader that notes where each `\n` it reads is.
struct Counted<R> {
    inner: R,
    breaks: LineBreaks,
    offset: u64,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut inner = self.breaks.0.borrow_mut();
        for i in memchr::memchr_iter(b'\n', &buf[..n]) {
            inner.0.push_back(self.offset + i as u64);
        }
        self.offset += n as u64;
        Ok(n)
    }
}

/// What is wrong with a CSV row, in evq's words.
fn csv_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            let fields = if *len == 1 { "field" } else { "fields" };
            format!("{len} {fields}, where the header row has {expected_len}")
        }
        csv::ErrorKind::Utf8 { err, .. } => {
            format!("invalid UTF-8 in field {}", err.field() + 1)
        }
        _ => e.to_string(),
    }
}
