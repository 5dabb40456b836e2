//! The tables of `--lookup NAME FILE KEY` as expressions see them: `$NAME`
//! is jq's `INDEX(rows; KEY)`, an object of the file's rows keyed by
//! `KEY | tostring`, so that `$NAME[.user_id]` is the row or `null`.
//!
//! Why here, in `jq`, and not in `source`: a table is not a stream of
//! events but a value of the language, looked up from the natives and from
//! direct evaluation (both below `plan` and `runtime`, which may not be
//! imported from here). This module holds the table and its binding;
//! `plan::lookup` reads the files into it (files, CSV, running KEY), and
//! `runtime` starts the reloads of `-F`.
//!
//! A table is held compactly and shared: one `Table` per file for the whole
//! process (`Arc`), not a jaq object per worker (jaq values are not `Send`,
//! and a tree of jaq values is several times the row's text). Each row is
//! kept as the compact JSON text jaq would print for it, after its key's
//! bytes, in an arena of 1 MiB chunks; a hash table (foldhash over the
//! key's bytes) maps a key to its entry. Looking a key up is one hash and one comparison; only the row
//! found is parsed into a jaq value. The cost is the row's text and key,
//! about 22 bytes of entry and index, and the arena's slack (see README:
//! "Lookup tables").
//!
//! How `$NAME` reaches the table: jaq's natives are plain functions, so the
//! tables are a process-wide registry (`register`, `install`), and each
//! thread runs with a snapshot of it (`refresh`, at each batch's start: a
//! reloaded table is seen from the next batch on, never halfway through
//! one). Before an expression is compiled, `rewrite` turns each use of
//! `$NAME` into a call of the natives: `$NAME[EXPR]` into
//! `_evq_lookup(I; EXPR)` (EXPR is run on `.`, as in `$NAME[EXPR]`), and
//! `$NAME` used any other way into `_evq_table(I)`, which makes the whole
//! object (once per thread and table: a rare use, and a costly one). An
//! expression that binds `$NAME` itself (`as $NAME`, `def f($NAME)`) is
//! refused rather than rewritten.
//!
//! On an object jq indexes only with strings: `$NAME[7]` is an error,
//! `Cannot index object with number`, as in jq (jaq would give null), so a
//! numeric key is written `$NAME[.id | tostring]`.

use crate::jq::Data;
use jaq_core::load::lex::{StrPart, Tok, Token};
use jaq_core::native::{Filter, Fun, run, v};
use jaq_core::{Cv, Error, Exn, RunPtr, ValXs};
use jaq_json::Val;
use std::cell::RefCell;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

/// The rows of one table file: key bytes to the row's compact JSON text.
#[derive(Default)]
pub struct Table {
    /// Each entry's key bytes, then its row's JSON text, in chunks of
    /// `CHUNK` bytes (a chunk is never reallocated: no copy while loading,
    /// and at most one chunk's slack).
    chunks: Vec<Vec<u8>>,
    /// In the order the keys first came (the order of INDEX's object).
    entries: Vec<Entry>,
    /// Indices into `entries`, by the hash of their key.
    index: hashbrown::HashTable<u32>,
    hasher: foldhash::fast::FixedState,
}

/// Bytes of a chunk of the arena (a larger row gets a chunk of its own).
const CHUNK: usize = 1 << 20;

#[derive(Clone, Copy)]
struct Entry {
    chunk: u32,
    /// Where the key starts in its chunk; the row follows it.
    offset: u32,
    key_len: u32,
    row_len: u32,
}

impl Table {
    /// The row of `key` (its JSON text), if the table has it.
    pub fn get(&self, key: &[u8]) -> Option<&[u8]> {
        let hash = self.hasher.hash_one(key);
        let at = self.index.find(hash, |&i| self.key(i) == key)?;
        Some(self.row(*at))
    }

    /// Adds a row under `key`; a key already there gets the new row in its
    /// place (as INDEX does). Returns whether the key was there.
    pub fn insert(&mut self, key: &[u8], row: &[u8]) -> bool {
        let (Ok(key_len), Ok(row_len)) = (u32::try_from(key.len()), u32::try_from(row.len()))
        else {
            panic!("a key or row of 4 GiB");
        };
        let need = key.len() + row.len();
        let room = self.chunks.last().map_or(0, |c| c.capacity() - c.len());
        if room < need {
            self.chunks.push(Vec::with_capacity(need.max(CHUNK)));
        }
        let chunk = self.chunks.len() - 1;
        let entry = Entry {
            chunk: u32::try_from(chunk).expect("fewer than 2^32 chunks"),
            offset: u32::try_from(self.chunks[chunk].len()).expect("a chunk below 4 GiB"),
            key_len,
            row_len,
        };
        self.chunks[chunk].extend_from_slice(key);
        self.chunks[chunk].extend_from_slice(row);
        let hash = self.hasher.hash_one(key);
        let Table {
            chunks,
            entries,
            index,
            hasher,
        } = self;
        match index.find(hash, |&i| entry_key(chunks, entries, i) == key) {
            Some(&i) => {
                entries[i as usize] = entry;
                true
            }
            None => {
                let i = u32::try_from(entries.len()).expect("fewer than 2^32 rows");
                entries.push(entry);
                index.insert_unique(hash, i, |&i| hasher.hash_one(entry_key(chunks, entries, i)));
                false
            }
        }
    }

    /// Rows held (distinct keys).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Each key and its row, in the order the keys first came.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        (0..self.entries.len() as u32).map(|i| (self.key(i), self.row(i)))
    }

    /// Gives back what the last chunk and the entries reserved beyond
    /// their use.
    pub fn shrink_to_fit(&mut self) {
        if let Some(last) = self.chunks.last_mut() {
            last.shrink_to_fit();
        }
        self.entries.shrink_to_fit();
    }

    fn key(&self, i: u32) -> &[u8] {
        entry_key(&self.chunks, &self.entries, i)
    }

    fn row(&self, i: u32) -> &[u8] {
        let e = self.entries[i as usize];
        let start = (e.offset + e.key_len) as usize;
        &self.chunks[e.chunk as usize][start..start + e.row_len as usize]
    }

    /// The whole table as one object, as INDEX makes it.
    fn to_value(&self) -> Val {
        let mut map = jaq_json::Map::default();
        for (key, row) in self.iter() {
            let key = Val::from(String::from_utf8_lossy(key).into_owned());
            let row = crate::json::parse(row).expect("a table holds valid rows");
            map.insert(key, row);
        }
        Val::obj(map)
    }
}

/// The key of entry `i` (a function of the fields, for the hash table's
/// rehash while the table itself is borrowed).
fn entry_key<'a>(chunks: &'a [Vec<u8>], entries: &[Entry], i: u32) -> &'a [u8] {
    let e = entries[i as usize];
    let start = e.offset as usize;
    &chunks[e.chunk as usize][start..start + e.key_len as usize]
}

/// What a table's loads counted, for `--stats` (`lookups`).
#[derive(Default)]
pub struct Counters {
    /// Of the table in force: rows held, rows that replaced an earlier one
    /// with the same key, rows skipped (not JSON or CSV, KEY failed).
    pub rows: AtomicU64,
    pub duplicates: AtomicU64,
    pub failed: AtomicU64,
    /// Loads after the first one under `-F`, and those that failed.
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
}

/// One `--lookup`: its name, its file and the table in force.
pub struct Slot {
    pub name: String,
    pub path: String,
    table: RwLock<Arc<Table>>,
    pub counters: Counters,
}

/// The tables of the command line, in its order (set once, by the plan).
static REGISTRY: OnceLock<Vec<Slot>> = OnceLock::new();
/// Bumped whenever a table is installed: threads then take a new snapshot.
static GENERATION: AtomicU64 = AtomicU64::new(1);

/// Declares the tables (name and file), empty until `install`ed: from now
/// on every expression compiled may use `$NAME`. Once per process.
pub fn register(tables: Vec<(String, String)>) {
    let slots = tables
        .into_iter()
        .map(|(name, path)| Slot {
            name,
            path,
            table: RwLock::default(),
            counters: Counters::default(),
        })
        .collect();
    if REGISTRY.set(slots).is_err() {
        panic!("lookup tables are registered once");
    }
}

/// Each table's counts, for `--stats`.
pub fn stats() -> Vec<crate::report::stats::LookupStats> {
    let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
    slots()
        .iter()
        .map(|s| crate::report::stats::LookupStats {
            name: s.name.clone(),
            path: s.path.clone(),
            rows: load(&s.counters.rows),
            duplicates: load(&s.counters.duplicates),
            failed: load(&s.counters.failed),
            reloads: load(&s.counters.reloads),
            reload_failures: load(&s.counters.reload_failures),
        })
        .collect()
}

/// The registered tables.
pub fn slots() -> &'static [Slot] {
    REGISTRY.get().map_or(&[], Vec::as_slice)
}

/// The place of the table named `name` (without `$`), if there is one.
pub fn index_of(name: &str) -> Option<usize> {
    slots().iter().position(|s| s.name == name)
}

/// Makes `table` the one in force for slot `i`; each thread sees it from
/// its next `refresh`.
pub fn install(i: usize, table: Table) {
    let slot = &slots()[i];
    *slot.table.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(table);
    GENERATION.fetch_add(1, Ordering::Release);
}

/// One thread's view of the tables: taken at `refresh`, kept until the next.
#[derive(Default)]
struct Snapshot {
    generation: u64,
    tables: Vec<Arc<Table>>,
    /// `_evq_table`'s objects, made when first asked for.
    whole: Vec<Option<Val>>,
}

thread_local! {
    static SNAPSHOT: RefCell<Snapshot> = RefCell::default();
}

/// Takes the tables in force now for this thread, if any changed since its
/// last snapshot. Workers call it as each batch starts.
pub fn refresh() {
    let generation = GENERATION.load(Ordering::Acquire);
    SNAPSHOT.with(|s| {
        let mut s = s.borrow_mut();
        if s.generation == generation {
            return;
        }
        s.tables = slots()
            .iter()
            .map(|slot| Arc::clone(&slot.table.read().unwrap_or_else(|e| e.into_inner())))
            .collect();
        s.whole = vec![None; s.tables.len()];
        s.generation = generation;
    });
}

/// Takes a first snapshot on a thread that has none.
fn ensure() {
    if SNAPSHOT.with(|s| s.borrow().generation == 0) {
        refresh();
    }
}

/// This thread's snapshot of the tables (empty when there are none).
pub fn tables() -> Vec<Arc<Table>> {
    ensure();
    SNAPSHOT.with(|s| s.borrow().tables.clone())
}

/// Runs `f` on table `i` of this thread's snapshot (taken now if it has
/// none), with the place for its whole object.
fn with_table<T>(i: usize, f: impl FnOnce(&Table, &mut Option<Val>) -> T) -> Option<T> {
    ensure();
    SNAPSHOT.with(|s| {
        let mut s = s.borrow_mut();
        let Snapshot { tables, whole, .. } = &mut *s;
        Some(f(tables.get(i)?, &mut whole[i]))
    })
}

type Out<'a> = ValXs<'a, Val>;

fn fail<'a>(msg: String) -> Out<'a> {
    Box::new(core::iter::once(Err(Exn::from(Error::str(msg)))))
}

fn one<'a>(v: Val) -> Out<'a> {
    Box::new(core::iter::once(Ok(v)))
}

/// The table number a native is called with.
fn table_number(v: &Val) -> usize {
    match v {
        Val::Num(n) => n.as_isize().and_then(|i| usize::try_from(i).ok()),
        _ => None,
    }
    .expect("rewrite passes a table number")
}

/// jq's name of a value's type, in its indexing error.
fn type_name(v: &Val) -> &'static str {
    match v {
        Val::Null => "null",
        Val::Bool(_) => "boolean",
        Val::Num(_) => "number",
        Val::BStr(_) | Val::TStr(_) => "string",
        Val::Arr(_) => "array",
        Val::Obj(_) => "object",
    }
}

/// The natives `rewrite` calls, for `Compiler::with_funs`.
pub fn funs() -> impl Iterator<Item = Fun<Data>> {
    let funs: [Filter<RunPtr<Data>>; 2] = [
        ("_evq_lookup", v(2), |mut cv: Cv<Data>| {
            let key = cv.0.pop_var();
            let table = table_number(&cv.0.pop_var());
            let key = match &key {
                Val::TStr(s) | Val::BStr(s) => s,
                other => {
                    return fail(format!("Cannot index object with {}", type_name(other)));
                }
            };
            let found = with_table(table, |t, _| t.get(key).map(crate::json::parse));
            match found.flatten() {
                Some(Ok(row)) => one(row),
                Some(Err(e)) => fail(format!("lookup table row: {e}")),
                None => one(Val::Null),
            }
        }),
        ("_evq_table", v(1), |mut cv: Cv<Data>| {
            let table = table_number(&cv.0.pop_var());
            let whole = with_table(table, |t, whole| {
                whole.get_or_insert_with(|| t.to_value()).clone()
            });
            one(whole.unwrap_or(Val::Null))
        }),
    ];
    funs.into_iter().map(run::<Data>)
}

/// An expression that binds a table's name itself: where, and what to say.
pub struct Bound {
    pub span: std::ops::Range<usize>,
    pub message: String,
}

/// `code` with every use of a table's `$NAME` turned into a call of the
/// natives (see the module's comment); `Ok(None)` when it uses none (or
/// does not lex: the compiler then says why). `Err` when the expression
/// binds a table's name itself.
pub fn rewrite(code: &str) -> Result<Option<String>, Bound> {
    if slots().is_empty() || !code.contains('$') {
        return Ok(None);
    }
    let Ok(tokens) = jaq_core::load::Lexer::new(code).lex() else {
        return Ok(None);
    };
    let mut edits = Vec::new();
    let mut rewriter = Rewriter {
        code,
        edits: &mut edits,
    };
    rewriter.tokens(&tokens, false)?;
    if edits.is_empty() {
        return Ok(None);
    }
    edits.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(code.len() + 32 * edits.len());
    let mut at = 0;
    for (range, text) in edits {
        out.push_str(&code[at..range.start]);
        out.push_str(&text);
        at = range.end;
    }
    out.push_str(&code[at..]);
    Ok(Some(out))
}

struct Rewriter<'c, 'e> {
    code: &'c str,
    edits: &'e mut Vec<(std::ops::Range<usize>, String)>,
}

impl<'c> Rewriter<'c, '_> {
    fn span(&self, part: &str) -> std::ops::Range<usize> {
        jaq_core::load::span(self.code, part)
    }

    /// The table a variable token names, if it names one.
    fn table(token: &Token<&str>) -> Option<usize> {
        match token {
            Token(s, Tok::Var) => index_of(&s[1..]),
            _ => None,
        }
    }

    /// A binding of a table's name in `tokens` (a pattern after `as`, a
    /// definition's arguments), at any depth.
    fn binds(&self, tokens: &[Token<&'c str>]) -> Option<&'c str> {
        tokens.iter().find_map(|t| match t {
            Token(s, Tok::Var) => Self::table(t).map(|_| *s),
            Token(_, Tok::Block(inner)) => self.binds(inner),
            _ => None,
        })
    }

    fn refuse(&self, var: &str, how: &str) -> Bound {
        Bound {
            span: self.span(var),
            message: format!(
                "{var} is a --lookup table, and this expression binds {var} {how}: rename one of them"
            ),
        }
    }

    /// Rewrites the uses in a list of tokens; `object`: the list is the
    /// inside of `{…}`, where `$NAME` alone is the shorthand `{NAME: $NAME}`.
    fn tokens(&mut self, tokens: &[Token<&'c str>], object: bool) -> Result<(), Bound> {
        let sym =
            |t: Option<&Token<&str>>, s: &str| matches!(t, Some(Token(x, Tok::Sym)) if *x == s);
        for (i, token) in tokens.iter().enumerate() {
            let next = tokens.get(i + 1);
            match token {
                Token("as", Tok::Word) => {
                    if let Some(var) = next.and_then(|n| self.binds(std::slice::from_ref(n))) {
                        return Err(self.refuse(var, "(as)"));
                    }
                }
                Token("def", Tok::Word) => {
                    if let Some(Token(_, Tok::Block(args))) = tokens.get(i + 2)
                        && let Some(var) = self.binds(args)
                    {
                        return Err(self.refuse(var, "(a definition's argument)"));
                    }
                }
                Token(s, Tok::Var) => {
                    let Some(table) = Self::table(token) else {
                        continue;
                    };
                    // `label $x` and `break $x` name labels, not variables.
                    if i > 0 && matches!(tokens[i - 1], Token("label" | "break", Tok::Word)) {
                        continue;
                    }
                    let whole = format!("_evq_table({table})");
                    let first = i == 0 || sym(tokens.get(i - 1), ",");
                    if object && first && (sym(next, ",") || sym(next, "}")) {
                        // `{$users}` is `{users: $users}`.
                        self.edits
                            .push((self.span(s), format!("\"{}\": {whole}", &s[1..])));
                    } else if object && first && sym(next, ":") {
                        self.edits.push((self.span(s), format!("({whole})")));
                    } else if let Some(Token(block, Tok::Block(inner))) = next
                        && block.starts_with('[')
                        && is_index(inner)
                    {
                        // `$users[EXPR]`: `_evq_lookup(I; EXPR)`.
                        let open = self.span(s).start..self.span(block).start + 1;
                        let close = self.span(inner.last().expect("a closing bracket").0);
                        self.edits.push((open, format!("_evq_lookup({table}; ")));
                        self.edits.push((close, ")".into()));
                    } else {
                        self.edits.push((self.span(s), whole));
                    }
                }
                Token(s, Tok::Block(inner)) => self.tokens(inner, s.starts_with('{'))?,
                Token(_, Tok::Str(parts)) => {
                    for part in parts {
                        if let StrPart::Term(Token(_, Tok::Block(inner))) = part {
                            self.tokens(inner, false)?;
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Whether the inside of `[…]` (its closing bracket last) is an index:
/// not empty (`[]` iterates) and no `:` at its top (a slice).
fn is_index(inner: &[Token<&str>]) -> bool {
    let body = &inner[..inner.len().saturating_sub(1)];
    !body.is_empty() && !body.iter().any(|t| matches!(t, Token(":", Tok::Sym)))
}
