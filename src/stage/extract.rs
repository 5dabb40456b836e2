//! What a worker hands the owner of a keyed stage's state. For each event
//! that reaches the stage, the worker (any of them, in parallel, by direct
//! evaluation or through jaq) extracts its key as bytes, its time and the
//! values of its aggregates; the owner of the state (`runtime::state`) only
//! merges these into its state, in input order. Everything here is plain
//! data, which crosses threads (jaq's values do not).
//!
//! A key is the JSON text of the key's value as jaq writes it, with object
//! keys sorted: two keys are the same key when their texts are equal.

use crate::source::Pool;
use jaq_json::{Num, Val};

/// The extractions of one batch, in input order, in three flat buffers.
#[derive(Default)]
pub struct Extracts {
    /// The input side of every event here (a join's: 0 main, 1 its FILE).
    pub side: u8,
    items: Vec<Item>,
    /// Keys and JSON values, one after the other.
    bytes: Vec<u8>,
    /// Each item's aggregate values: (aggregate index, value).
    values: Vec<(u32, Stored)>,
}

/// One event's extraction.
struct Item {
    line: u64,
    /// The event's line in its batch (for the dead letter), if it has one.
    index: Option<u32>,
    key: (u32, u32),
    time: i64,
    values: (u32, u32),
}

#[derive(Clone, Copy)]
enum Stored {
    Int(i64),
    Float(f64),
    Json(u32, u32),
}

/// A value for an aggregate: numbers for those that compute with numbers
/// (sum, avg, percentiles), JSON text for those that keep values.
#[derive(Clone, Copy, Debug)]
pub enum Input<'a> {
    Int(i64),
    Float(f64),
    Json(&'a [u8]),
}

/// One event's extraction, as the owner reads it.
pub struct Extract<'a> {
    /// The input side (see `StatefulStage::sides`).
    pub side: u8,
    pub line: u64,
    pub index: Option<u32>,
    pub key: &'a [u8],
    pub time: i64,
    values: &'a [(u32, Stored)],
    bytes: &'a [u8],
}

impl<'a> Extract<'a> {
    /// Each value with the index of its aggregate, in the order extracted.
    pub fn values(&self) -> impl Iterator<Item = (usize, Input<'a>)> + '_ {
        let bytes = self.bytes;
        self.values.iter().map(move |&(agg, v)| {
            let input = match v {
                Stored::Int(i) => Input::Int(i),
                Stored::Float(f) => Input::Float(f),
                Stored::Json(s, e) => Input::Json(&bytes[s as usize..e as usize]),
            };
            (agg as usize, input)
        })
    }
}

/// Where an extraction in progress began: `Extracts::abandon` goes back there.
#[derive(Clone, Copy)]
pub struct Mark {
    bytes: usize,
    values: usize,
}

/// Extractions' buffers freed by the owner, for the workers' next batches:
/// a batch's buffers grow to hundreds of kilobytes, and fresh ones would
/// cost the kernel's zeroing of new pages on every batch.
static SPARE: Pool<Extracts> = Pool::new();

impl Extracts {
    /// Empty buffers, recycled when some are spare.
    pub fn recycled() -> Extracts {
        SPARE.take()
    }

    /// Gives the buffers back, emptied, once applied (see `recycled`).
    pub fn recycle(mut self) {
        self.clear();
        SPARE.give(self);
    }

    pub fn clear(&mut self) {
        self.side = 0;
        self.items.clear();
        self.bytes.clear();
        self.values.clear();
    }

    /// Starts an extraction: write the key with `key_buffer`, then call
    /// `key_done`, add values, and `finish` (or `abandon`).
    pub fn start(&self) -> Mark {
        Mark {
            bytes: self.bytes.len(),
            values: self.values.len(),
        }
    }

    /// Where the key's text goes (after `start`, before any value).
    pub fn key_buffer(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Writes a key value as a key's text: JSON with object keys sorted.
    pub fn write_key(&mut self, key: &Val) {
        let pp = jaq_json::write::Pp {
            sort_keys: true,
            ..Default::default()
        };
        crate::json::write_json(&mut self.bytes, &pp, 0, key).expect("write to memory");
    }

    pub fn push_int(&mut self, agg: usize, i: i64) {
        self.values.push((agg as u32, Stored::Int(i)));
    }

    pub fn push_float(&mut self, agg: usize, f: f64) {
        self.values.push((agg as u32, Stored::Float(f)));
    }

    /// A number from jaq, as the sums and percentiles take it: a machine
    /// integer stays one, any other number is its f64.
    pub fn push_number(&mut self, agg: usize, n: &Num) -> Option<()> {
        match n {
            Num::Int(i) => self.push_int(agg, *i as i64),
            Num::Float(f) => self.push_float(agg, *f),
            Num::BigInt(b) => self.push_float(agg, b.to_string().parse().ok()?),
            Num::Dec(s) => self.push_float(agg, s.parse().ok()?),
        }
        Some(())
    }

    /// A value's JSON text, written by `write` at the end of the bytes.
    pub fn push_json(&mut self, agg: usize, write: impl FnOnce(&mut Vec<u8>)) {
        let start = self.bytes.len() as u32;
        write(&mut self.bytes);
        let end = self.bytes.len() as u32;
        self.values.push((agg as u32, Stored::Json(start, end)));
    }

    /// A value's JSON text, already written at the end of the bytes from `start`.
    pub fn push_written(&mut self, agg: usize, start: usize) {
        let end = self.bytes.len() as u32;
        self.values
            .push((agg as u32, Stored::Json(start as u32, end)));
    }

    /// Takes the extraction started at `mark`, whose key ends at `key_end`.
    pub fn finish(&mut self, mark: Mark, key_end: usize, line: u64, index: Option<u32>, time: i64) {
        self.items.push(Item {
            line,
            index,
            key: (mark.bytes as u32, key_end as u32),
            time,
            values: (mark.values as u32, self.values.len() as u32),
        });
    }

    /// Drops what was written since `mark` (the event failed).
    pub fn abandon(&mut self, mark: Mark) {
        self.bytes.truncate(mark.bytes);
        self.values.truncate(mark.values);
    }

    /// Each extraction in input order.
    pub fn iter(&self) -> impl Iterator<Item = Extract<'_>> {
        self.items.iter().map(|item| self.extract(item))
    }

    /// How many extractions there are.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The `i`th extraction.
    pub fn get(&self, i: usize) -> Extract<'_> {
        self.extract(&self.items[i])
    }

    fn extract<'a>(&'a self, item: &Item) -> Extract<'a> {
        Extract {
            side: self.side,
            line: item.line,
            index: item.index,
            key: &self.bytes[item.key.0 as usize..item.key.1 as usize],
            time: item.time,
            values: &self.values[item.values.0 as usize..item.values.1 as usize],
            bytes: &self.bytes,
        }
    }
}
