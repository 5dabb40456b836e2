//! Where events go, apart from the stages: a `Sink` takes the bytes of each
//! batch's output in order (the executor hands it on from the workers), is
//! flushed when input is idle, and synced before a checkpoint is written.
//! `FileSink` is one: standard output or `-o FILE`; the dead letter
//! (`DeadLetter`) writes its records of failed events into another (the
//! `--dead-letter` file). Events are serialised before they get here, by `Formatter`
//! (`format`).
//!
//! `KafkaSink` (`kafka`, with the `kafka` feature) writes each line as a
//! message of a Kafka topic (`-o kafka://…`, `--dead-letter kafka://…`).
//! A new sink is one more implementation of `Sink` in a file of its own,
//! chosen where the plan opens the output.

mod dead_letter;
mod file;
mod format;
#[cfg(feature = "kafka")]
mod kafka;

pub use dead_letter::DeadLetter;
pub use file::FileSink;
pub use format::{DEFAULT_COLORS, Formatter, Pretty};
#[cfg(feature = "kafka")]
pub use kafka::{KafkaSink, Key as KafkaKey, OpenError as KafkaOpenError};

use std::io;

/// A destination for bytes: formatted events, or dead-letter records.
pub trait Sink: Send {
    /// Writes `bytes` (whole events or records), buffered.
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Hands on what is buffered.
    fn flush(&mut self) -> io::Result<()>;
    /// Flushes, and waits until what was written is durable (a file on
    /// disk, messages acknowledged by the broker): a checkpoint is written,
    /// or input offsets committed, only after this.
    fn sync(&mut self) -> io::Result<()>;
    /// At the end of the run: what was written must have reached its
    /// destination when this returns `Ok` (a file: flushed; Kafka: every
    /// message acknowledged, as `sync`).
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// How it is named in error messages: `stdout`, the path, or the
    /// `kafka://` address.
    fn name(&self) -> &str;
}
