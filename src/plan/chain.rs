//! The stage chain of the plan: each stage's kind, name and expression as
//! stats show them, the window stage's options typed, and the variables.
//! The plan compiles the chain once, to report every error at once; jaq
//! values are not `Send`, so each worker thread then builds its own copy
//! (`Chain::build`). What the chain reads (`fields`), how direct evaluation
//! runs it (`direct`) and hints on a likely mistaken order (`hints`) are
//! found here too.

use super::Error;
use super::vars::{Binding, variables};
use crate::cli::{Args, StageKind};
use crate::jq::{Globals, Library, Program};
use crate::json::Fields;
use crate::stage::join::{JoinConfig, JoinStage, JoinType};
use crate::stage::pattern::{MAX_CLASSES, PatternConfig, PatternStage, regex};
use crate::stage::window::agg::AggSpec;
use crate::stage::window::time::WindowSpec;
use crate::stage::window::{WindowConfig, WindowStage};
use crate::stage::{FilterStage, MapStage, Step};
use std::sync::Arc;

/// The stages in command-line order, checked: every expression compiles.
#[derive(Clone)]
pub struct Chain {
    stages: Vec<StageInfo>,
    /// The window stage's options, when the chain has one.
    window: Option<Window>,
    /// The join stage's options, when the chain has one.
    join: Option<Join>,
    /// The pattern stage's options, when the chain has one.
    pattern: Option<Pattern>,
    vars: Vec<Binding>,
    /// The modules `import` and `include` find (`-L`), shared by every copy,
    /// so each compiles with the same files.
    library: Arc<Library>,
}

/// One stage as the plan knows it: what stats show of it, and what it is
/// built from.
#[derive(Clone)]
pub struct StageInfo {
    kind: StageKind,
    /// Place in the chain, from 1.
    position: usize,
    /// `filter#1`, `map#2`, …
    name: String,
    /// The expression as written; for the window stage, its options
    /// (`tumbling:1m; key .service; n=count`).
    expr: String,
}

impl StageInfo {
    fn new(kind: StageKind, position: usize, expr: String) -> StageInfo {
        StageInfo {
            kind,
            position,
            name: format!("{}#{position}", kind.name()),
            expr,
        }
    }

    /// Whether the stage keeps state across events (a window, a join).
    pub fn stateful(&self) -> bool {
        matches!(
            self.kind,
            StageKind::Window | StageKind::Aggregate | StageKind::Join | StageKind::Pattern
        )
    }

    /// `--filter #1`: the stage in messages.
    fn label(&self) -> String {
        format!("--{} #{}", self.kind.name(), self.position)
    }
}

/// The options of the window stage, parsed: `--window`, `--key`, `--time`,
/// `--agg`, `--lateness`.
#[derive(Clone)]
struct Window {
    /// `None`: `--agg` alone, group-by over the whole input.
    spec: Option<WindowSpec>,
    keys: Vec<String>,
    time: Option<String>,
    aggs: Vec<AggSpec>,
    /// Milliseconds.
    lateness: i64,
}

impl Window {
    /// The window options of the command line. A bad `--window` or
    /// `--lateness` makes the stage unusable: `Err`, its message reported
    /// alone (none of its expressions is compiled). A bad `--agg` is left
    /// out, its message returned beside the window, to be reported after
    /// the compile errors of the rest.
    fn new(args: &Args) -> Result<(Window, String), String> {
        let spec = match &args.window {
            None => None,
            Some(w) => Some(
                w.value
                    .clone()
                    .map_err(|e| format!("evq: --window: {e}\n"))?,
            ),
        };
        let lateness = match &args.lateness {
            None => 0,
            Some(l) => l
                .value
                .clone()
                .map_err(|e| format!("evq: --lateness: {e}\n"))?,
        };
        let mut aggs = Vec::new();
        let mut bad = String::new();
        for agg in &args.aggs {
            match &agg.value {
                Ok(spec) => aggs.push(spec.clone()),
                Err(e) => bad.push_str(&format!("evq: {e}\n")),
            }
        }
        let window = Window {
            spec,
            keys: args.keys.clone(),
            time: args.time.clone(),
            aggs,
            lateness,
        };
        Ok((window, bad))
    }

    /// What the stage shows as its expression in stats.
    fn describe(args: &Args) -> String {
        let spec = args.window.as_ref().map(|w| w.text.clone());
        let mut parts = vec![spec.unwrap_or_else(|| "group".into())];
        parts.extend(args.keys.iter().map(|k| format!("key {k}")));
        parts.extend(args.time.iter().map(|t| format!("time {t}")));
        parts.extend(args.lateness.iter().map(|l| format!("lateness {}", l.text)));
        parts.extend(args.aggs.iter().map(|a| a.text.clone()));
        parts.join("; ")
    }

    /// The jq expressions the window stage runs on each event.
    fn exprs(&self) -> impl Iterator<Item = &str> {
        let aggs = self.aggs.iter().filter_map(|a| a.expr.as_deref());
        self.keys
            .iter()
            .chain(&self.time)
            .map(String::as_str)
            .chain(aggs)
    }

    /// Compiles the stage; each expression that does not compile adds its
    /// report to `errors`.
    fn build(
        &self,
        info: &StageInfo,
        globals: &Globals,
        errors: &mut String,
    ) -> Option<WindowStage> {
        let mut compile = |code: &str, label: String| match Program::compile(code, &label, globals)
        {
            Ok(p) => Some(p),
            Err(report) => {
                errors.push_str(&report);
                None
            }
        };
        let keys: Vec<Option<Program>> = self
            .keys
            .iter()
            .enumerate()
            .map(|(i, k)| compile(k, format!("--key #{}", i + 1)))
            .collect();
        let time = self.time.as_deref().map(|t| compile(t, "--time".into()));
        let aggs: Vec<(AggSpec, Option<Option<Program>>)> = self
            .aggs
            .iter()
            .map(|spec| {
                let program = spec
                    .expr
                    .as_deref()
                    .map(|e| compile(e, format!("--agg {}", spec.name)));
                (spec.clone(), program)
            })
            .collect();
        let ok = keys.iter().all(Option::is_some)
            && time.as_ref().is_none_or(Option::is_some)
            && aggs
                .iter()
                .all(|(_, p)| p.as_ref().is_none_or(Option::is_some));
        if !ok {
            return None;
        }
        let config = WindowConfig {
            spec: self.spec,
            keys: keys.into_iter().flatten().collect(),
            time: time.flatten(),
            aggs: aggs.into_iter().map(|(s, p)| (s, p.flatten())).collect(),
            lateness: self.lateness,
        };
        Some(WindowStage::new(
            info.name.clone(),
            info.expr.clone(),
            config,
        ))
    }
}

/// The options of the join stage: `--join FILE` with `--key`, `--time`,
/// `--join-key`, `--join-time`, `--within`, `--join-type`, `--lateness`.
#[derive(Clone)]
struct Join {
    /// Per side (0 the main input, 1 FILE): key expressions and time expression.
    keys: [Vec<String>; 2],
    time: [String; 2],
    lower: i64,
    upper: i64,
    kind: JoinType,
    lateness: i64,
}

impl Join {
    /// The join options of the command line (`--join` is given): `Err`
    /// with the message of the first unusable one.
    fn new(args: &Args) -> Result<Join, String> {
        let within = match &args.within {
            None => return Err("evq: --join needs --within LOWER..UPPER (as --within 0s..10m), the bound on the time between the events it pairs".into()),
            Some(w) => w.value.clone().map_err(|e| format!("evq: --within: {e}"))?,
        };
        let lateness = match &args.lateness {
            None => 0,
            Some(l) => l
                .value
                .clone()
                .map_err(|e| format!("evq: --lateness: {e}"))?,
        };
        if args.keys.is_empty() {
            return Err("evq: --join needs --key EXPR: the key the events are paired on (--join-key for FILE's events when it differs)".into());
        }
        let Some(time) = &args.time else {
            return Err("evq: --join needs --time EXPR: the time of each event, which --within bounds (--join-time for FILE's events when it differs)".into());
        };
        let right_keys = if args.join_keys.is_empty() {
            args.keys.clone()
        } else {
            args.join_keys.clone()
        };
        if right_keys.len() != args.keys.len() {
            return Err(format!(
                "evq: --join-key is given {} times and --key {} times: a composite key needs as many of each",
                right_keys.len(),
                args.keys.len()
            ));
        }
        let right_time = args.join_time.clone().unwrap_or_else(|| time.clone());
        Ok(Join {
            keys: [args.keys.clone(), right_keys],
            time: [time.clone(), right_time],
            lower: within.0,
            upper: within.1,
            kind: args.join_type.unwrap_or(JoinType::Inner),
            lateness,
        })
    }

    /// `side`'s key, time and whole event, after `filters`, for direct evaluation.
    fn direct(
        &self,
        side: usize,
        filters: &[&str],
        vars: &[(String, jaq_json::Val)],
    ) -> Option<crate::jq::direct::Chain> {
        let keys: Vec<&str> = self.keys[side].iter().map(String::as_str).collect();
        crate::jq::direct::compile_keyed(
            filters,
            &keys,
            Some(&self.time[side]),
            false,
            &[(Some("."), false)],
            vars,
        )
    }

    /// What the stage shows as its expression in stats.
    fn describe(args: &Args) -> String {
        let file = args.join.as_ref().map(|f| f.display().to_string());
        let mut parts = vec![file.unwrap_or_default()];
        parts.extend(args.keys.iter().map(|k| format!("key {k}")));
        parts.extend(args.join_keys.iter().map(|k| format!("join-key {k}")));
        parts.extend(args.time.iter().map(|t| format!("time {t}")));
        parts.extend(args.join_time.iter().map(|t| format!("join-time {t}")));
        parts.extend(args.within.iter().map(|w| format!("within {}", w.text)));
        parts.extend(args.lateness.iter().map(|l| format!("lateness {}", l.text)));
        let kind = args.join_type.unwrap_or(JoinType::Inner);
        parts.push(format!("type {}", kind.name()));
        parts.join("; ")
    }

    /// Compiles the stage; each expression that does not compile adds its
    /// report to `errors`.
    fn build(&self, info: &StageInfo, globals: &Globals, errors: &mut String) -> Option<JoinStage> {
        let mut compile = |code: &str, label: String| match Program::compile(code, &label, globals)
        {
            Ok(p) => Some(p),
            Err(report) => {
                errors.push_str(&report);
                None
            }
        };
        let options = [("--key", "--time"), ("--join-key", "--join-time")];
        let mut keys: [Vec<Program>; 2] = Default::default();
        let mut times = Vec::new();
        let mut ok = true;
        for (side, (key_option, time_option)) in options.into_iter().enumerate() {
            for (i, k) in self.keys[side].iter().enumerate() {
                match compile(k, format!("{key_option} #{}", i + 1)) {
                    Some(p) => keys[side].push(p),
                    None => ok = false,
                }
            }
            match compile(&self.time[side], time_option.into()) {
                Some(p) => times.push(p),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        let right_time = times.pop().expect("two times");
        let left_time = times.pop().expect("two times");
        let config = JoinConfig {
            keys,
            time: [left_time, right_time],
            lower: self.lower,
            upper: self.upper,
            kind: self.kind,
            lateness: self.lateness,
        };
        Some(JoinStage::new(info.name.clone(), info.expr.clone(), config))
    }
}

/// The options of the pattern stage: `--match PATTERN` with its `--def`s,
/// `--key`, `--time`, `--within`, `--lateness`, `--match-timeouts`.
#[derive(Clone)]
struct Pattern {
    pattern: String,
    /// `--def` names and expressions, in order.
    defs: Vec<(String, String)>,
    keys: Vec<String>,
    time: Option<String>,
    within: Option<i64>,
    timeouts: bool,
    lateness: i64,
}

/// Whether `name` can name a class: a letter or `_`, then letters, digits, `_`.
fn class_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Pattern {
    /// The pattern options of the command line (`--match` is given): `Err`
    /// with the message of the first unusable one.
    fn new(args: &Args) -> Result<Pattern, String> {
        let within = match &args.within {
            None => None,
            Some(w) => Some(
                crate::stage::window::time::parse_duration(&w.text).map_err(|e| {
                    format!("evq: --within: {e}; with --match, --within is one positive duration, the most a match spans (as 5m)")
                })?,
            ),
        };
        let lateness = match &args.lateness {
            None => 0,
            Some(l) => l
                .value
                .clone()
                .map_err(|e| format!("evq: --lateness: {e}"))?,
        };
        let mut defs: Vec<(String, String)> = Vec::new();
        for def in &args.defs {
            let Some((name, expr)) = def.split_once('=') else {
                return Err(format!(
                    "evq: --def {def:?}: expected NAME=EXPR (as --def 'fail=.status == 401')"
                ));
            };
            let name = name.trim();
            if !class_name(name) {
                return Err(format!(
                    "evq: --def {def:?}: {name:?} is not a class name (a letter or _, then letters, digits or _)"
                ));
            }
            if defs.iter().any(|(n, _)| n == name) {
                return Err(format!("evq: --def {name}: the class is defined twice"));
            }
            defs.push((name.to_string(), expr.to_string()));
        }
        if defs.is_empty() {
            return Err("evq: --match needs at least one --def NAME=EXPR: the classes its pattern is written in".into());
        }
        if defs.len() > MAX_CLASSES {
            return Err(format!(
                "evq: --def: {} classes, at most {MAX_CLASSES}",
                defs.len()
            ));
        }
        Ok(Pattern {
            pattern: args.pattern.clone().unwrap_or_default(),
            defs,
            keys: args.keys.clone(),
            time: args.time.clone(),
            within,
            timeouts: args.match_timeouts,
            lateness,
        })
    }

    /// What the stage shows as its expression in stats.
    fn describe(args: &Args) -> String {
        let mut parts = vec![args.pattern.clone().unwrap_or_default()];
        parts.extend(args.defs.iter().map(|d| format!("def {d}")));
        parts.extend(args.keys.iter().map(|k| format!("key {k}")));
        parts.extend(args.time.iter().map(|t| format!("time {t}")));
        parts.extend(args.within.iter().map(|w| format!("within {}", w.text)));
        parts.extend(args.lateness.iter().map(|l| format!("lateness {}", l.text)));
        if args.match_timeouts {
            parts.push("timeouts".into());
        }
        parts.join("; ")
    }

    /// Compiles the stage; the pattern and each expression that does not
    /// compile add their reports to `errors`.
    fn build(
        &self,
        info: &StageInfo,
        globals: &Globals,
        errors: &mut String,
    ) -> Option<PatternStage> {
        let mut ok = true;
        let mut compile = |code: &str, label: String| match Program::compile(code, &label, globals)
        {
            Ok(p) => Some(p),
            Err(report) => {
                errors.push_str(&report);
                ok = false;
                None
            }
        };
        let classes: Vec<Option<(String, Program)>> = (self.defs.iter())
            .map(|(name, expr)| Some((name.clone(), compile(expr, format!("--def {name}"))?)))
            .collect();
        let keys: Vec<Option<Program>> = (self.keys.iter().enumerate())
            .map(|(i, k)| compile(k, format!("--key #{}", i + 1)))
            .collect();
        let time = self.time.as_deref().map(|t| compile(t, "--time".into()));
        let names: Vec<String> = self.defs.iter().map(|(n, _)| n.clone()).collect();
        let nfa = match regex::compile(&self.pattern, &names) {
            Ok(nfa) => Some(nfa),
            Err(e) => {
                errors.push_str(&crate::jq::render_error(
                    "--match",
                    &self.pattern,
                    e.span,
                    &e.message,
                    &e.note,
                ));
                None
            }
        };
        if !ok {
            return None;
        }
        let config = PatternConfig {
            classes: classes.into_iter().flatten().collect(),
            nfa: nfa?,
            keys: keys.into_iter().flatten().collect(),
            time: time.flatten(),
            within: self.within,
            timeouts: self.timeouts,
            lateness: self.lateness,
        };
        Some(PatternStage::new(
            info.name.clone(),
            info.expr.clone(),
            config,
        ))
    }
}

impl Chain {
    /// The chain of the command line, compiled once: every stage that does
    /// not compile is reported, in chain order (a bad `--window`,
    /// `--lateness` or `--agg` where the window stage stands).
    pub(super) fn new(args: &Args, vars: Vec<Binding>) -> Result<Chain, Error> {
        let has_window = args.window.is_some() || !args.aggs.is_empty();
        let (window, window_errors) = match has_window.then(|| Window::new(args)) {
            None => (None, String::new()),
            Some(Ok((window, bad_aggs))) => (Some(window), bad_aggs),
            Some(Err(unusable)) => (None, unusable),
        };
        let (join, join_errors) = match args.join.is_some().then(|| Join::new(args)) {
            None => (None, String::new()),
            Some(Ok(join)) => (Some(join), String::new()),
            Some(Err(unusable)) => (None, unusable + "\n"),
        };
        let (pattern, pattern_errors) = match args.pattern.is_some().then(|| Pattern::new(args)) {
            None => (None, String::new()),
            Some(Ok(pattern)) => (Some(pattern), String::new()),
            Some(Err(unusable)) => (None, unusable + "\n"),
        };
        let stages = args
            .stages
            .iter()
            .enumerate()
            .map(|(i, (kind, expr))| {
                let expr = match kind {
                    StageKind::Window | StageKind::Aggregate => Window::describe(args),
                    StageKind::Join => Join::describe(args),
                    StageKind::Pattern => Pattern::describe(args),
                    _ => expr.clone(),
                };
                StageInfo::new(*kind, i + 1, expr)
            })
            .collect();
        let chain = Chain {
            stages,
            window,
            join,
            pattern,
            vars,
            library: Arc::new(Library::new(args.library_path.clone())),
        };
        let mut errors = String::new();
        chain.compile(
            &mut errors,
            &(window_errors + &join_errors + &pattern_errors),
        )?;
        if errors.is_empty() {
            Ok(chain)
        } else {
            Err(Error::Usage(errors.trim_end().to_string()))
        }
    }

    /// Compiles every stage, for one worker thread.
    pub fn build(&self) -> Result<Vec<Step>, Error> {
        let mut errors = String::new();
        let stages = self.compile(&mut errors, "")?;
        if errors.is_empty() {
            Ok(stages)
        } else {
            Err(Error::Usage(errors.trim_end().to_string()))
        }
    }

    /// Compiles every stage; each that does not compile adds its report to
    /// `errors`, and `window_errors` go where the window or join stage stands.
    /// A bad variable (`--argjson`) is an error on its own.
    fn compile(&self, errors: &mut String, window_errors: &str) -> Result<Vec<Step>, Error> {
        let globals = Globals::new(variables(&self.vars)?).with_library(self.library.clone());
        let mut stages = Vec::new();
        for info in &self.stages {
            if info.kind == StageKind::Join {
                if let Some(join) = &self.join
                    && let Some(stage) = join.build(info, &globals, errors)
                {
                    stages.push(Step::Stateful(Box::new(stage)));
                }
                // An unusable join option, where the join stands.
                errors.push_str(window_errors);
                continue;
            }
            if info.kind == StageKind::Pattern {
                if let Some(pattern) = &self.pattern
                    && let Some(stage) = pattern.build(info, &globals, errors)
                {
                    stages.push(Step::Stateful(Box::new(stage)));
                }
                errors.push_str(window_errors);
                continue;
            }
            if info.stateful() {
                if let Some(window) = &self.window
                    && let Some(stage) = window.build(info, &globals, errors)
                {
                    stages.push(Step::Stateful(Box::new(stage)));
                }
                errors.push_str(window_errors);
                continue;
            }
            match Program::compile(&info.expr, &info.label(), &globals) {
                Ok(program) => {
                    let (name, expr) = (info.name.clone(), info.expr.clone());
                    stages.push(Step::Stateless(match info.kind {
                        StageKind::Filter => Box::new(FilterStage {
                            name,
                            expr,
                            program,
                        }),
                        _ => Box::new(MapStage {
                            name,
                            expr,
                            program,
                        }),
                    }))
                }
                Err(report) => errors.push_str(&report),
            }
        }
        Ok(stages)
    }

    /// The variable bindings every expression sees.
    pub(super) fn vars(&self) -> &[Binding] {
        &self.vars
    }

    /// Hints for stages that read what no result of the window stage before
    /// them has: `--window … -f '.level == "error"'` filters results, not
    /// events, and so drops them all. Checks the filters after the window
    /// stage up to and including the first map (later stages see the map's
    /// output); a stage that reads its input whole gets no hint.
    pub fn hints(&self) -> Vec<String> {
        let (Some(at), Some(window)) = (
            self.stages.iter().position(StageInfo::stateful),
            &self.window,
        ) else {
            return Vec::new();
        };
        let mut has: Vec<String> = Vec::new();
        if window.spec.is_some() {
            has.extend(["window_start".into(), "window_end".into()]);
        }
        if !window.keys.is_empty() {
            has.push("key".into());
        }
        has.extend(window.aggs.iter().map(|a| a.name.clone()));
        let (results, option) = match self.stages[at].kind {
            StageKind::Window => ("window results", "--window"),
            _ => ("aggregate results", "--agg"),
        };
        let mut hints = Vec::new();
        for (i, stage) in self.stages.iter().enumerate().skip(at + 1) {
            let flag = match stage.kind {
                StageKind::Filter => "-f",
                StageKind::Map => "-m",
                StageKind::Window | StageKind::Aggregate | StageKind::Join | StageKind::Pattern => {
                    break;
                }
            };
            if let Some(Fields::Keys(read)) = crate::jq::fields::read_by(&stage.expr) {
                let missing: Vec<String> = read
                    .into_iter()
                    .filter(|(key, _)| !has.iter().any(|h| h.as_bytes() == key.as_slice()))
                    .filter_map(|(key, _)| Fields::Keys(vec![(key, Fields::Whole)]).paths()?.pop())
                    .collect();
                if !missing.is_empty() {
                    hints.push(format!(
                        "hint: --{} #{} reads {}, which {results} do not have (they have {}); stages run in command-line order: put {flag} before {option} to {verb} the events",
                        stage.kind.name(),
                        i + 1,
                        and_list(&missing),
                        has.join(", "),
                        verb = stage.kind.name(),
                    ));
                }
            }
            if stage.kind == StageKind::Map {
                break;
            }
        }
        hints
    }

    /// The fields of an input line the chain reads: those of the filters up
    /// to and including the first map (later stages see that map's output,
    /// not the line). `None`: the whole event.
    pub fn fields(&self) -> Option<Fields> {
        let mut fields = Fields::Keys(Vec::new());
        for stage in &self.stages {
            match (stage.kind, &self.window) {
                (StageKind::Filter | StageKind::Map, _) => {
                    fields.merge(&crate::jq::fields::read_by(&stage.expr)?)
                }
                // A pair, a match holds its events whole.
                (StageKind::Join | StageKind::Pattern, _) => return None,
                (_, Some(window)) => {
                    for expr in window.exprs() {
                        fields.merge(&crate::jq::fields::read_by(expr)?);
                    }
                }
                (_, None) => {}
            }
            // Later stages see this stage's output, not the line.
            if stage.kind != StageKind::Filter {
                break;
            }
        }
        Some(fields)
    }

    /// The chain for direct evaluation: filters and maps, or filters and
    /// the window stage's key, time and aggregate expressions; each one an
    /// expression `direct` understands.
    pub fn direct(&self) -> Option<crate::jq::direct::Chain> {
        let mut stages = Vec::new();
        let vars = variables(&self.vars).ok()?;
        for stage in &self.stages {
            match stage.kind {
                StageKind::Filter => stages.push((false, stage.expr.as_str())),
                StageKind::Map => stages.push((true, stage.expr.as_str())),
                // Classes are evaluated through jaq on the workers.
                StageKind::Pattern => {
                    if stages.iter().any(|(is_map, _)| *is_map) {
                        return None;
                    }
                    let pattern = self.pattern.as_ref()?;
                    let filters: Vec<&str> = stages.iter().map(|(_, e)| *e).collect();
                    let keys: Vec<&str> = pattern.keys.iter().map(String::as_str).collect();
                    // Each class's value (truthy: in the class), then the event whole.
                    let mut values: Vec<(Option<&str>, bool)> = (pattern.defs.iter())
                        .map(|(_, e)| (Some(e.as_str()), false))
                        .collect();
                    values.push((Some("."), false));
                    return crate::jq::direct::compile_keyed(
                        &filters,
                        &keys,
                        pattern.time.as_deref(),
                        pattern.time.is_none(),
                        &values,
                        &vars,
                    );
                }
                StageKind::Join => {
                    if stages.iter().any(|(is_map, _)| *is_map) {
                        return None;
                    }
                    let join = self.join.as_ref()?;
                    let filters: Vec<&str> = stages.iter().map(|(_, e)| *e).collect();
                    return join.direct(0, &filters, &vars);
                }
                StageKind::Window | StageKind::Aggregate => {
                    // The stages before it must be filters: it reads the line.
                    if stages.iter().any(|(is_map, _)| *is_map) {
                        return None;
                    }
                    let window = self.window.as_ref()?;
                    let filters: Vec<&str> = stages.iter().map(|(_, e)| *e).collect();
                    let keys: Vec<&str> = window.keys.iter().map(String::as_str).collect();
                    let values: Vec<(Option<&str>, bool)> = window
                        .aggs
                        .iter()
                        .map(|a| (a.expr.as_deref(), a.func.takes_numbers()))
                        .collect();
                    return crate::jq::direct::compile_keyed(
                        &filters,
                        &keys,
                        window.time.as_deref(),
                        window.spec.is_some(),
                        &values,
                        &vars,
                    );
                }
            }
        }
        crate::jq::direct::compile(&stages, &vars)
    }

    /// A join's FILE side for direct evaluation: its key, its time and
    /// the event whole, with no stage before.
    pub fn direct_right(&self) -> Option<crate::jq::direct::Chain> {
        let vars = variables(&self.vars).ok()?;
        self.join.as_ref()?.direct(1, &[], &vars)
    }

    /// Whether the chain has a stateful stage.
    pub fn stateful(&self) -> bool {
        self.stages.iter().any(StageInfo::stateful)
    }

    /// What the chain is, as a checkpoint records it: each stage's name and
    /// expression (for the window stage, its options) as the stats show them.
    pub fn fingerprint(&self) -> String {
        let stages: Vec<String> = self
            .stages
            .iter()
            .map(|s| format!("{} {}", s.name, s.expr))
            .collect();
        stages.join(" | ")
    }
}

/// `a`, `a and b`, `a, b and c`.
fn and_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}
