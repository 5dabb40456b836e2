//! The pattern language of `--match`: a regular expression over class
//! names (`--def`), parsed with the place of each error, and compiled into
//! a position automaton (Glushkov's construction: one state per occurrence
//! of a class name once quantifiers are expanded, no empty moves), run as
//! bit sets of positions. Also: which class each event of a match was
//! matched as (`Nfa::assign`).
//!
//! Grammar: `alt := cat ('|' cat)*`, `cat := (atom quant?)+`,
//! `atom := NAME | '(' alt ')'`, `quant := '?' | '*' | '+' | '{n}' | '{n,}'
//! | '{n,m}'`; names and operators separated by optional white space.

use std::ops::Range;

/// At most this many positions once quantifiers are expanded.
pub const MAX_POSITIONS: usize = 4096;

/// A pattern error: its message, where in the pattern, and what to say there.
#[derive(Debug, PartialEq)]
pub struct PatternError {
    pub message: String,
    pub span: Range<usize>,
    pub note: String,
}

fn error(message: impl Into<String>, span: Range<usize>, note: &str) -> PatternError {
    PatternError {
        message: message.into(),
        span,
        note: note.into(),
    }
}

/// The parsed pattern.
#[derive(Clone, Debug)]
enum Node {
    Class(usize),
    Cat(Vec<Node>),
    Alt(Vec<Node>),
    Repeat(Box<Node>, u32, Option<u32>),
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
    classes: &'a [String],
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while let Some(c) = self.text[self.at..].chars().next() {
            if !c.is_whitespace() {
                break;
            }
            self.at += c.len_utf8();
        }
    }

    fn peek(&mut self) -> Option<char> {
        self.skip_space();
        self.text[self.at..].chars().next()
    }

    fn here(&self) -> Range<usize> {
        let width = self.text[self.at..]
            .chars()
            .next()
            .map_or(0, char::len_utf8);
        self.at..self.at + width
    }

    fn alt(&mut self) -> Result<Node, PatternError> {
        let mut branches = vec![self.cat()?];
        while self.peek() == Some('|') {
            self.at += 1;
            branches.push(self.cat()?);
        }
        Ok(if branches.len() == 1 {
            branches.pop().expect("one branch")
        } else {
            Node::Alt(branches)
        })
    }

    fn cat(&mut self) -> Result<Node, PatternError> {
        let mut items = Vec::new();
        loop {
            match self.peek() {
                None | Some('|') | Some(')') => break,
                _ => {
                    let atom = self.atom()?;
                    items.push(self.quantified(atom)?);
                }
            }
        }
        if items.is_empty() {
            return Err(error(
                "expected a class name or a group",
                self.here(),
                "a class name or ( expected here",
            ));
        }
        Ok(if items.len() == 1 {
            items.pop().expect("one item")
        } else {
            Node::Cat(items)
        })
    }

    fn atom(&mut self) -> Result<Node, PatternError> {
        let start = self.at;
        match self.peek() {
            Some('(') => {
                let open = self.here();
                self.at += 1;
                let inner = self.alt()?;
                if self.peek() != Some(')') {
                    return Err(error(
                        "unbalanced parenthesis: this ( is not closed",
                        open,
                        "not closed",
                    ));
                }
                self.at += 1;
                Ok(inner)
            }
            Some(c) if c.is_ascii_alphabetic() || c == '_' => {
                let start = self.at;
                let len = self.text[start..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .unwrap_or(self.text.len() - start);
                self.at += len;
                let name = &self.text[start..self.at];
                match self.classes.iter().position(|c| c == name) {
                    Some(i) => Ok(Node::Class(i)),
                    None => Err(error(
                        format!(
                            "unknown class {name:?} (defined: {})",
                            if self.classes.is_empty() {
                                "none; define classes with --def NAME=EXPR".to_string()
                            } else {
                                self.classes.join(", ")
                            }
                        ),
                        start..self.at,
                        "not defined by --def",
                    )),
                }
            }
            Some(')') => Err(error(
                "unbalanced parenthesis: this ) closes nothing",
                self.here(),
                "no ( before it",
            )),
            Some(c) if "?*+{".contains(c) => Err(error(
                format!("a quantifier ({c}) must follow a class name or a group"),
                self.here(),
                "nothing to repeat",
            )),
            _ => {
                let _ = start;
                Err(error(
                    "expected a class name or a group",
                    self.here(),
                    "not a class name",
                ))
            }
        }
    }

    fn quantified(&mut self, atom: Node) -> Result<Node, PatternError> {
        let (min, max) = match self.peek() {
            Some('?') => (0, Some(1)),
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('{') => return self.braces(atom),
            _ => return Ok(atom),
        };
        self.at += 1;
        self.no_second_quantifier()?;
        Ok(Node::Repeat(Box::new(atom), min, max))
    }

    fn no_second_quantifier(&mut self) -> Result<(), PatternError> {
        match self.peek() {
            Some(c) if "?*+{".contains(c) => Err(error(
                format!(
                    "a quantifier ({c}) must follow a class name or a group, not another quantifier (group it: ( … ){c})"
                ),
                self.here(),
                "second quantifier",
            )),
            _ => Ok(()),
        }
    }

    fn number(&mut self) -> Option<u32> {
        self.skip_space();
        let len = self.text[self.at..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.text.len() - self.at);
        let n = self.text[self.at..self.at + len].parse().ok()?;
        self.at += len;
        Some(n)
    }

    fn braces(&mut self, atom: Node) -> Result<Node, PatternError> {
        let open = self.at;
        self.at += 1;
        let bad = |p: &Parser| {
            let end = p.text[open..]
                .find('}')
                .map_or(p.text.len(), |i| open + i + 1);
            error(
                "a count is {n}, {n,} or {n,m} with whole numbers n <= m",
                open..end,
                "not a count",
            )
        };
        let Some(min) = self.number() else {
            return Err(bad(self));
        };
        let max = match self.peek() {
            Some('}') => Some(min),
            Some(',') => {
                self.at += 1;
                if self.peek() == Some('}') {
                    None
                } else {
                    Some(self.number().ok_or_else(|| bad(self))?)
                }
            }
            _ => return Err(bad(self)),
        };
        if self.peek() != Some('}') {
            return Err(bad(self));
        }
        self.at += 1;
        if let Some(max) = max
            && max < min
        {
            return Err(error(
                format!("{{{min},{max}}}: the upper count is below the lower one"),
                open..self.at,
                "n > m",
            ));
        }
        if max == Some(0) {
            return Err(error(
                "a count of 0 matches nothing: leave the item out",
                open..self.at,
                "zero repetitions",
            ));
        }
        self.no_second_quantifier()?;
        Ok(Node::Repeat(Box::new(atom), min, max))
    }
}

/// A set of positions.
pub type Set = Vec<u64>;

/// The automaton: positions, each with its class; which can begin and end
/// a match; which can follow which.
#[derive(Debug)]
pub struct Nfa {
    words: usize,
    class_of: Vec<usize>,
    first: Set,
    last: Set,
    follow: Vec<Set>,
    /// Per class, the positions of that class.
    of_class: Vec<Set>,
}

/// A fragment of the construction: whether it matches the empty sequence,
/// the positions it can begin and end with.
struct Frag {
    nullable: bool,
    first: Vec<usize>,
    last: Vec<usize>,
}

struct Builder {
    class_of: Vec<usize>,
    follow: Vec<Vec<usize>>,
}

impl Builder {
    fn build(&mut self, node: &Node) -> Result<Frag, ()> {
        Ok(match node {
            Node::Class(c) => {
                if self.class_of.len() >= MAX_POSITIONS {
                    return Err(());
                }
                let p = self.class_of.len();
                self.class_of.push(*c);
                self.follow.push(Vec::new());
                Frag {
                    nullable: false,
                    first: vec![p],
                    last: vec![p],
                }
            }
            Node::Cat(items) => {
                let mut acc = Frag {
                    nullable: true,
                    first: Vec::new(),
                    last: Vec::new(),
                };
                for item in items {
                    let f = self.build(item)?;
                    acc = self.concat(acc, f);
                }
                acc
            }
            Node::Alt(branches) => {
                let mut acc = Frag {
                    nullable: false,
                    first: Vec::new(),
                    last: Vec::new(),
                };
                for b in branches {
                    let f = self.build(b)?;
                    acc.nullable |= f.nullable;
                    acc.first.extend(f.first);
                    acc.last.extend(f.last);
                }
                acc
            }
            Node::Repeat(inner, min, max) => {
                let mut acc = Frag {
                    nullable: true,
                    first: Vec::new(),
                    last: Vec::new(),
                };
                for _ in 0..*min {
                    let f = self.build(inner)?;
                    acc = self.concat(acc, f);
                }
                match max {
                    None => {
                        let mut f = self.build(inner)?;
                        for &l in &f.last {
                            self.follow[l].extend(f.first.iter().copied());
                        }
                        f.nullable = true;
                        acc = self.concat(acc, f);
                    }
                    Some(max) => {
                        for _ in *min..*max {
                            let mut f = self.build(inner)?;
                            f.nullable = true;
                            acc = self.concat(acc, f);
                        }
                    }
                }
                acc
            }
        })
    }

    fn concat(&mut self, a: Frag, b: Frag) -> Frag {
        for &l in &a.last {
            self.follow[l].extend(b.first.iter().copied());
        }
        let mut first = a.first;
        if a.nullable {
            first.extend(b.first.iter().copied());
        }
        let mut last = b.last;
        if b.nullable {
            last.extend(a.last.iter().copied());
        }
        Frag {
            nullable: a.nullable && b.nullable,
            first,
            last,
        }
    }
}

/// Parses `text` over the class names `classes` (in `--def` order) and
/// compiles it.
pub fn compile(text: &str, classes: &[String]) -> Result<Nfa, PatternError> {
    let mut parser = Parser {
        text,
        at: 0,
        classes,
    };
    let node = parser.alt()?;
    if let Some(c) = parser.peek() {
        let message = if c == ')' {
            "unbalanced parenthesis: this ) closes nothing"
        } else {
            "unexpected character"
        };
        return Err(error(message, parser.here(), "here"));
    }
    let mut builder = Builder {
        class_of: Vec::new(),
        follow: Vec::new(),
    };
    let frag = builder.build(&node).map_err(|()| {
        error(
            format!("the pattern is too large: more than {MAX_POSITIONS} class names once its counts are written out"),
            0..text.len(),
            "too large",
        )
    })?;
    let n = builder.class_of.len();
    let words = n.div_ceil(64).max(1);
    let set = |ps: &[usize]| {
        let mut s = vec![0u64; words];
        for &p in ps {
            s[p / 64] |= 1 << (p % 64);
        }
        s
    };
    let mut of_class = vec![vec![0u64; words]; classes.len()];
    for (p, &c) in builder.class_of.iter().enumerate() {
        of_class[c][p / 64] |= 1 << (p % 64);
    }
    Ok(Nfa {
        words,
        first: set(&frag.first),
        last: set(&frag.last),
        follow: builder.follow.iter().map(|f| set(f)).collect(),
        class_of: builder.class_of,
        of_class,
    })
}

fn positions(s: &Set) -> impl Iterator<Item = usize> + '_ {
    s.iter().enumerate().flat_map(|(w, &bits)| {
        (0..64)
            .filter(move |b| bits & (1 << b) != 0)
            .map(move |b| w * 64 + b)
    })
}

impl Nfa {
    /// The positions of any class in `mask`.
    fn of_mask(&self, mask: u64, into: &mut Set) {
        into.clear();
        into.resize(self.words, 0);
        for (c, set) in self.of_class.iter().enumerate() {
            if mask & (1 << c) != 0 {
                for (a, b) in into.iter_mut().zip(set) {
                    *a |= b;
                }
            }
        }
    }

    /// The positions a match can be at after its first event, of classes `mask`.
    pub fn start(&self, mask: u64) -> Set {
        let mut s = Vec::new();
        self.start_into(mask, &mut s);
        s
    }

    /// `start`, into `s` (its memory reused).
    pub fn start_into(&self, mask: u64, s: &mut Set) {
        self.of_mask(mask, s);
        for (a, b) in s.iter_mut().zip(&self.first) {
            *a &= b;
        }
    }

    /// The positions after one more event, of classes `mask`.
    pub fn step(&self, from: &Set, mask: u64) -> Set {
        let (mut to, mut m) = (Vec::new(), Vec::new());
        self.step_into(from, mask, &mut to, &mut m);
        to
    }

    /// `step`, into `to`, with `m` for scratch (the memory of both reused:
    /// no allocation per event).
    pub fn step_into(&self, from: &Set, mask: u64, to: &mut Set, m: &mut Set) {
        to.clear();
        to.resize(self.words, 0);
        for p in positions(from) {
            for (a, b) in to.iter_mut().zip(&self.follow[p]) {
                *a |= b;
            }
        }
        self.of_mask(mask, m);
        for (a, b) in to.iter_mut().zip(m.iter()) {
            *a &= b;
        }
    }

    /// Whether a set holds no position (no match can go on).
    pub fn dead(set: &Set) -> bool {
        set.iter().all(|&w| w == 0)
    }

    /// Whether a match can end at one of the positions.
    pub fn accepts(&self, set: &Set) -> bool {
        set.iter().zip(&self.last).any(|(a, b)| a & b != 0)
    }

    /// The class each event of a sequence (their class masks) is matched
    /// as: of all the ways through the pattern (ending where a match ends
    /// when `complete`), the one whose classes, in `--def` order, are
    /// smallest event by event. The sequence must be one the automaton
    /// took.
    pub fn assign(&self, masks: &[u64], complete: bool) -> Vec<usize> {
        let n = masks.len();
        let mut forward = Vec::with_capacity(n);
        for (i, &m) in masks.iter().enumerate() {
            let s = if i == 0 {
                self.start(m)
            } else {
                self.step(&forward[i - 1], m)
            };
            forward.push(s);
        }
        // back[i]: the positions at event i from which the rest can be taken.
        let mut back = forward.clone();
        if complete {
            for (a, b) in back[n - 1].iter_mut().zip(&self.last) {
                *a &= b;
            }
        }
        for i in (0..n.saturating_sub(1)).rev() {
            let next = back[i + 1].clone();
            let keep: Vec<usize> = positions(&back[i])
                .filter(|&p| self.follow[p].iter().zip(&next).any(|(a, b)| a & b != 0))
                .collect();
            back[i] = vec![0; self.words];
            for p in keep {
                back[i][p / 64] |= 1 << (p % 64);
            }
        }
        let mut classes = Vec::with_capacity(n);
        let mut at = back[0].clone();
        for i in 0..n {
            let class = positions(&at)
                .map(|p| self.class_of[p])
                .min()
                .expect("a way through");
            classes.push(class);
            if i + 1 < n {
                let mut chosen = vec![0u64; self.words];
                for p in positions(&at).filter(|&p| self.class_of[p] == class) {
                    for (a, b) in chosen.iter_mut().zip(&self.follow[p]) {
                        *a |= b;
                    }
                }
                for (a, b) in chosen.iter_mut().zip(&back[i + 1]) {
                    *a &= b;
                }
                at = chosen;
            }
        }
        classes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        vec!["a".into(), "b".into(), "c".into()]
    }

    fn matches(pattern: &str, masks: &[u64]) -> bool {
        let nfa = compile(pattern, &names()).unwrap();
        let mut s = nfa.start(masks[0]);
        for &m in &masks[1..] {
            s = nfa.step(&s, m);
        }
        nfa.accepts(&s)
    }

    #[test]
    fn language() {
        assert!(matches("a{3,} b", &[1, 1, 1, 2]));
        assert!(!matches("a{3,} b", &[1, 1, 2]));
        assert!(matches("a{3,} b", &[1, 1, 1, 1, 1, 2]));
        assert!(matches("(a|b)+ c?", &[2, 1, 2]));
        assert!(matches("a{1,2} (b c)*", &[1, 1, 2, 4, 2, 4]));
        assert!(!matches("a{1,2} (b c)*", &[1, 1, 1]));
        assert!(matches("a b{2}", &[1, 2, 2]));
    }

    #[test]
    fn assignment() {
        let nfa = compile("a* b", &names()).unwrap();
        assert_eq!(nfa.assign(&[3, 3, 3], true), vec![0, 0, 1]);
    }

    #[test]
    fn errors() {
        let e = compile("a (b", &names()).unwrap_err();
        assert_eq!(e.span, 2..3);
        let e = compile("a x", &names()).unwrap_err();
        assert_eq!(e.span, 2..3);
        let e = compile("a{3,1}", &names()).unwrap_err();
        assert_eq!(e.span, 1..6);
        assert!(compile("a )", &names()).is_err());
        assert!(compile("a | ", &names()).is_err());
        assert!(compile("* a", &names()).is_err());
        assert!(compile("a**", &names()).is_err());
        assert!(compile("a{99999}", &names()).is_err());
    }
}
