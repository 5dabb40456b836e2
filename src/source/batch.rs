//! What the reader hands on: batches of complete lines cut from large
//! buffers (`Batch`, `Line`), the messages around them (`Message`), and the
//! pool the buffers come from and go back to (`Pool`).

use super::checkpoint::Entry;
use super::position::Position;
use std::io;
use std::sync::Mutex;

/// Buffers handed back after use, so that batches and their output (and a
/// keyed stage's extractions: `stage::extract`) reuse memory that is
/// already mapped instead of faulting in fresh pages.
pub struct Pool<T = Vec<u8>>(Mutex<Vec<T>>);

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Pool::new()
    }
}

impl<T> Pool<T> {
    pub const fn new() -> Self {
        Pool(Mutex::new(Vec::new()))
    }
}

impl<T: Default> Pool<T> {
    /// Buffers kept at most; more are freed.
    const KEEP: usize = 64;

    /// A buffer, recycled when one is free: not necessarily empty.
    pub fn take(&self) -> T {
        self.0
            .lock()
            .map(|mut bufs| bufs.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Takes `buf` back; its contents stay (readers overwrite, writers clear).
    pub fn give(&self, buf: T) {
        if let Ok(mut bufs) = self.0.lock()
            && bufs.len() < Self::KEEP
        {
            bufs.push(buf);
        }
    }
}

/// A non-blank line inside a batch's buffer: `data[start..end]`, without its
/// newline and without a trailing CR.
#[derive(Clone, Copy, Debug)]
pub struct Line {
    pub start: usize,
    pub end: usize,
    /// 1-based physical line number in its source.
    pub number: u64,
}

/// Complete lines from one source, in order.
#[derive(Default)]
pub struct Batch {
    pub source: usize,
    pub data: Vec<u8>,
    pub lines: Vec<Line>,
    /// Bytes of the source consumed since the previous batch (blank lines included).
    pub bytes: u64,
    /// Where the source stands after this batch's last line (what
    /// `--checkpoint` records).
    pub end: Position,
}

impl Batch {
    pub fn line(&self, line: &Line) -> &[u8] {
        &self.data[line.start..line.end]
    }

    /// Gives the buffers back once the batch is done with: its data to
    /// `pool`, its line index to the splitter's (`Batch::lines_buffer`).
    pub fn recycle(self, pool: &Pool) {
        pool.give(self.data);
        LINES.give(self.lines);
    }

    /// An empty line index, recycled when one is spare: a batch's index
    /// holds thousands of lines, and growing a fresh one for every batch
    /// cost the kernel's zeroing of new pages (a few percent of a run).
    pub fn lines_buffer() -> Vec<Line> {
        let mut lines = LINES.take();
        lines.clear();
        lines
    }
}

/// Line indexes of batches done with (see `Batch::recycle`).
static LINES: Pool<Vec<Line>> = Pool::new();

/// What the reader thread tells the executor.
pub enum Message {
    Batch(Batch),
    /// With `--checkpoint`: a file was opened, at this position (its batches
    /// follow). Under `--follow`, a later one for the same source is the new
    /// file after a rotation: the file open before goes on as the rotated one.
    Opened {
        source: usize,
        entry: Entry,
    },
    /// A source could not be opened or read; the reader goes on with the next one.
    Failed {
        source: usize,
        error: io::Error,
    },
    /// The partitions of a Kafka input whose event time counts now
    /// (`sources`: assigned to this run, not at their end), after a
    /// rebalance or the end of a partition.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    Assigned {
        sources: Vec<usize>,
    },
    /// The last batch of an input side (of a join: 0 the main inputs, 1
    /// its FILE) was dealt.
    Ended {
        side: usize,
    },
}
