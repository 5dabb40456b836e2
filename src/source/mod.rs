//! Input: a source is one input named on the command line (a file, a FIFO,
//! standard input, or the nothing `-n` reads). A reader thread reads each
//! source in turn (`read_all`), or all of them as they grow (`follow_all`,
//! `-F`), and hands the executor `Message`s: batches of complete lines cut
//! from large pooled buffers, each line with its source and line number, and
//! each batch with the `Position` its source reached (what `--checkpoint`
//! records). No allocation per line; blank lines, a trailing CR and a UTF-8
//! BOM at the start of a file are dropped here.
//!
//! Other input formats cut their batches here too: `-R` keeps every line as
//! it is (a string event each), `--input-format json` finds the JSON values in
//! a stream of them and hands each on as one compact line, and `-n` makes one
//! `null` event out of nothing.
//!
//! The pieces, from the bytes up:
//! - `lines`: cutting a buffer into NDJSON or `-R` lines;
//!   `json_text`: finding the values of `--input-format json`;
//! - `read`: reading a stream into batches (`LineReader`), carrying a
//!   partial line from one read to the next;
//! - `file`: opening a file at its checkpoint, FIFOs, decompression;
//!   `follow`: `-F`, rotation and truncation;
//! - `batch`: what is handed on (`Batch`, `Line`, `Message`, `Pool`);
//!   `position`: where a source stands; `checkpoint`: the positions saved.
//!
//! A new kind of source (a Kafka topic, a second input to join) is one more
//! `Origin` with a file of its own that reads it into batches, one arm in
//! `read_all` and in `follow`, and its own `Position` variant.

mod batch;
pub mod checkpoint;
mod file;
mod follow;
mod json_text;
pub mod kafka;
mod lines;
mod position;
mod read;

pub use batch::{Batch, Line, Message, Pool};
pub(crate) use file::decompressed;
pub use follow::{Follow, follow_all};
pub use json_text::{json_values, value_error};
pub use position::Position;

use checkpoint::Checkpoint;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// How the bytes of a source become events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One JSON value per line (blank lines, a trailing CR, a BOM dropped).
    #[default]
    Ndjson,
    /// A stream of JSON values separated by white space, as jq reads
    /// (`--input-format json`): each value one event, numbered by the line
    /// where it starts, handed on compact (see `json_text`).
    Json,
    /// `-R`: every line, blank ones included, is a string event (as jq -R:
    /// without its newline, a CR or BOM kept).
    Raw,
    /// `-n`: no input; one `null` event.
    Null,
}

/// Where a source's bytes come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A file, a FIFO or a device, by name.
    File(PathBuf),
    /// Standard input (`-`, or no file named).
    Stdin,
    /// `-n`: nothing; one `null` event.
    Null,
    /// A partition of a `kafka://` input (the input, the partition's index
    /// among its partitions): read by the input's consumers, all together.
    Kafka(std::sync::Arc<kafka::KafkaInput>, usize),
}

/// One input named on the command line.
#[derive(Clone, Debug)]
pub struct Source {
    /// How the source is named in stats and dead-letter records: the path,
    /// `-`, or `null` under `-n`.
    pub name: String,
    /// Where its bytes come from.
    pub origin: Origin,
    /// How its bytes become events.
    pub format: Format,
}

impl Source {
    pub fn new(arg: &Path) -> Source {
        if arg.as_os_str() == "-" {
            Source {
                name: "-".into(),
                origin: Origin::Stdin,
                format: Format::Ndjson,
            }
        } else {
            Source {
                name: arg.to_string_lossy().into_owned(),
                origin: Origin::File(arg.to_path_buf()),
                format: Format::Ndjson,
            }
        }
    }

    /// The source `-n` reads: one `null` event, no bytes.
    pub fn null() -> Source {
        Source {
            name: "null".into(),
            origin: Origin::Null,
            format: Format::Null,
        }
    }

    /// This source, read in `format`.
    pub fn with_format(self, format: Format) -> Source {
        Source { format, ..self }
    }

    /// A partition of a Kafka input, as source `index` (its name
    /// `kafka://BROKERS/TOPIC/PARTITION`).
    pub fn kafka(input: &std::sync::Arc<kafka::KafkaInput>, i: usize) -> Source {
        let (topic, partition) = &input.partitions[i];
        Source {
            name: input.address.partition_name(topic, *partition),
            origin: Origin::Kafka(std::sync::Arc::clone(input), i),
            format: Format::Ndjson,
        }
    }

    /// What a line number of this source's batches is called in reports
    /// and the dead letter: the line, or a Kafka message's offset.
    pub fn line(&self, number: u64) -> u64 {
        match self.origin {
            Origin::Kafka(..) => number.saturating_sub(1),
            _ => number,
        }
    }

    /// The Kafka input this source is a partition of.
    pub fn kafka_input(&self) -> Option<&std::sync::Arc<kafka::KafkaInput>> {
        match &self.origin {
            Origin::Kafka(input, _) => Some(input),
            _ => None,
        }
    }

    /// How the source is named in messages on standard error.
    pub fn display(&self) -> &str {
        match self.origin {
            Origin::File(_) | Origin::Kafka(..) => &self.name,
            Origin::Stdin => "<stdin>",
            Origin::Null => "<null>",
        }
    }

    /// The file it reads, if it reads a file by name.
    pub fn path(&self) -> Option<&Path> {
        match &self.origin {
            Origin::File(path) => Some(path),
            Origin::Stdin | Origin::Null | Origin::Kafka(..) => None,
        }
    }

    /// Size in bytes when the source is a regular, uncompressed file (for
    /// the progress bar, which counts bytes after decompression).
    pub fn size(&self) -> Option<u64> {
        file::size(&self.origin)
    }
}

/// Reads `sources` in order, handing each message to `deliver` until done,
/// until `deliver` returns false (nobody listens), or until `stop` is set (by a signal).
/// The first of `sources` is source number `first` in the messages.
pub fn read_all(
    sources: &[Source],
    first: usize,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
    checkpoint: Option<&Checkpoint>,
) {
    for (index, source) in sources.iter().enumerate() {
        let index = first + index;
        if stop.load(Ordering::Relaxed) != 0 {
            return;
        }
        let format = source.format;
        if let Origin::Kafka(input, i) = &source.origin {
            // One consumer reads all the input's partitions, at the first.
            if *i == 0 {
                let raw = format == Format::Raw;
                if let Err(e) = input.read(raw, false, deliver, stop, pool) {
                    let error = std::io::Error::other(e);
                    if !deliver(Message::Failed { source: index, error }) {
                        return;
                    }
                }
            }
            continue;
        }
        let result = match &source.origin {
            Origin::Null => Ok(deliver(Message::Batch(null_batch(index)))),
            Origin::Stdin => file::read_stdin(index, format, deliver, stop, pool),
            Origin::File(path) => file::read(index, format, path, checkpoint, deliver, stop, pool),
            Origin::Kafka(..) => unreachable!("read above"),
        };
        match result {
            Ok(true) => {}
            Ok(false) => return, // receiver gone
            Err(error) => {
                if !deliver(Message::Failed {
                    source: index,
                    error,
                }) {
                    return;
                }
            }
        }
    }
}

/// What `-n` reads: one `null` event, at line 1 of no bytes.
fn null_batch(source: usize) -> Batch {
    Batch {
        source,
        data: b"null".to_vec(),
        lines: vec![Line {
            start: 0,
            end: 4,
            number: 1,
        }],
        bytes: 0,
        end: Position::File {
            dev: 0,
            ino: 0,
            offset: 0,
            line: 1,
        },
    }
}
