//! The sink of standard output or a file, written through a buffer in large
//! blocks (`-o FILE`, and the dead-letter file).

use super::Sink;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Standard output or a file, written through a buffer (a block larger
/// than the buffer bypasses it): where surviving events go (`-o`), and
/// where the dead-letter records go.
pub struct FileSink {
    out: BufWriter<Target>,
    /// `stdout` or the path, for error messages.
    name: String,
}

/// What an `FileSink` writes to.
enum Target {
    Stdout(io::Stdout),
    /// A file, to fsync before a checkpoint.
    File(File),
}

impl FileSink {
    /// The buffer of event output: large blocks.
    const BUFFER: usize = 64 * 1024;

    pub fn stdout() -> FileSink {
        FileSink {
            out: BufWriter::with_capacity(Self::BUFFER, Target::Stdout(io::stdout())),
            name: "stdout".into(),
        }
    }

    /// Creates (or truncates) the file at `path`.
    pub fn create(path: &Path) -> io::Result<FileSink> {
        let file = File::create(path)?;
        Ok(FileSink::file(path, file, Self::BUFFER))
    }

    /// Opens the file at `path` for appending, creating it if need be, with
    /// a buffer of `buffer` bytes.
    pub fn append(path: &Path, buffer: usize) -> io::Result<FileSink> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(FileSink::file(path, file, buffer))
    }

    fn file(path: &Path, file: File, buffer: usize) -> FileSink {
        FileSink {
            out: BufWriter::with_capacity(buffer, Target::File(file)),
            name: path.display().to_string(),
        }
    }
}

impl Sink for FileSink {
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Flushes, and for a regular file waits until the data is on disk
    /// (a device such as `/dev/null`, a FIFO or a socket has no disk to
    /// wait for, and fsync refuses them).
    fn sync(&mut self) -> io::Result<()> {
        self.out.flush()?;
        match self.out.get_ref() {
            Target::File(file) if file.metadata()?.is_file() => file.sync_data(),
            Target::File(_) | Target::Stdout(_) => Ok(()),
        }
    }

    fn name(&self) -> &str {
        &self.name
    }
}

impl Write for Target {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Target::Stdout(out) => out.write(buf),
            Target::File(file) => file.write(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Target::Stdout(out) => out.write_all(buf),
            Target::File(file) => file.write_all(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Target::Stdout(out) => out.flush(),
            Target::File(file) => file.flush(),
        }
    }
}
