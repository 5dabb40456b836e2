//! Input: reads each source in turn on a reader thread and hands the executor
//! batches of complete lines cut from large buffers, each line with its source
//! and line number. No allocation per line; blank lines, a trailing CR and a
//! UTF-8 BOM at the start of a file are dropped here.
//!
//! Other input formats cut their batches here too: `-R` keeps every line as
//! it is (a string event each), `--input-format json` finds the JSON values in
//! a stream of them (`Values`) and hands each on as one compact line, and
//! `-n` makes one `null` event out of nothing.

pub mod checkpoint;

use crate::source::checkpoint::{Checkpoint, Entry, FileId};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How much one read asks for; a batch holds the complete lines of one or more reads.
const CHUNK: usize = 256 * 1024;

/// Buffers handed back after use, so that batches and their output reuse
/// memory that is already mapped instead of faulting in fresh pages.
#[derive(Default)]
pub struct Pool(Mutex<Vec<Vec<u8>>>);

impl Pool {
    /// Buffers kept at most; more are freed.
    const KEEP: usize = 64;

    /// A buffer, recycled when one is free: not necessarily empty.
    pub fn take(&self) -> Vec<u8> {
        self.0
            .lock()
            .map(|mut bufs| bufs.pop())
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    /// Takes `buf` back; its contents stay (readers overwrite, writers clear).
    pub fn give(&self, buf: Vec<u8>) {
        if let Ok(mut bufs) = self.0.lock()
            && bufs.len() < Self::KEEP
        {
            bufs.push(buf);
        }
    }
}

/// How the bytes of a source become events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// One JSON value per line (blank lines, a trailing CR, a BOM dropped).
    #[default]
    Ndjson,
    /// A stream of JSON values separated by white space, as jq reads
    /// (`--input-format json`): each value one event, numbered by the line
    /// where it starts, handed on compact (see `Values`).
    Json,
    /// `-R`: every line, blank ones included, is a string event (as jq -R:
    /// without its newline, a CR or BOM kept).
    Raw,
    /// `-n`: no input; one `null` event.
    Null,
}

/// One input named on the command line.
#[derive(Clone, Debug)]
pub struct Source {
    /// How the source is named in stats and dead-letter records: the path,
    /// `-`, or `null` under `-n`.
    pub name: String,
    /// The file to open, or `None` for standard input (or `-n`).
    pub path: Option<PathBuf>,
    /// How its bytes become events.
    pub format: Format,
}

impl Source {
    pub fn new(arg: &std::path::Path) -> Source {
        if arg.as_os_str() == "-" {
            Source {
                name: "-".into(),
                path: None,
                format: Format::Ndjson,
            }
        } else {
            Source {
                name: arg.to_string_lossy().into_owned(),
                path: Some(arg.to_path_buf()),
                format: Format::Ndjson,
            }
        }
    }

    /// The source `-n` reads: one `null` event, no bytes.
    pub fn null() -> Source {
        Source {
            name: "null".into(),
            path: None,
            format: Format::Null,
        }
    }

    /// This source, read in `format`.
    pub fn with_format(self, format: Format) -> Source {
        Source { format, ..self }
    }

    /// How the source is named in messages on standard error.
    pub fn display(&self) -> &str {
        if self.format == Format::Null {
            "<null>"
        } else if self.path.is_none() {
            "<stdin>"
        } else {
            &self.name
        }
    }

    /// Size in bytes when the source is a regular, uncompressed file (for
    /// the progress bar, which counts bytes after decompression).
    pub fn size(&self) -> Option<u64> {
        let path = self.path.as_ref()?;
        let meta = std::fs::metadata(path).ok()?;
        if !meta.is_file() {
            // A pipe or device: opening it here would consume its data.
            return None;
        }
        let mut magic = [0; 4];
        let n = File::open(path).and_then(|mut f| f.read(&mut magic)).ok()?;
        (meta.is_file() && compression(&magic[..n]).is_none()).then_some(meta.len())
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
pub struct Batch {
    pub source: usize,
    pub data: Vec<u8>,
    pub lines: Vec<Line>,
    /// Bytes of the source consumed since the previous batch (blank lines included).
    pub bytes: u64,
    /// Where the source stands after this batch's last line: byte offset and
    /// lines so far (what `--checkpoint` records).
    pub end_offset: u64,
    pub end_line: u64,
    /// Device and inode of the file the lines come from ((0, 0) for standard
    /// input): under `--follow`, a source's lines may come from the file now
    /// under its name or from the one rotated away from it (`--rotate-wait`),
    /// and `end_offset` and `end_line` are that file's.
    pub file: (u64, u64),
}

impl Batch {
    pub fn line(&self, line: &Line) -> &[u8] {
        &self.data[line.start..line.end]
    }
}

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
}

/// Reads `sources` in order, handing each message to `deliver` until done,
/// until `deliver` returns false (nobody listens), or until `stop` is set (by a signal).
pub fn read_all(
    sources: &[Source],
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
    checkpoint: Option<&Checkpoint>,
) {
    for (index, source) in sources.iter().enumerate() {
        if stop.load(Ordering::Relaxed) != 0 {
            return;
        }
        if source.format == Format::Null {
            if !deliver(Message::Batch(null_batch(index))) {
                return;
            }
            continue;
        }
        let format = source.format;
        let result = match &source.path {
            None => decompressed(io::stdin().lock())
                .and_then(|r| read_source(index, format, r, deliver, stop, pool)),
            Some(path) => {
                open(index, format, path, checkpoint, deliver).and_then(|opened| match opened {
                    Some((reader, mut lines)) => Ok(lines
                        .read_available(reader, deliver, stop, pool, true)?
                        != Ended::HungUp),
                    None => Ok(false),
                })
            }
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
        end_offset: 0,
        end_line: 1,
        file: (0, 0),
    }
}

/// Opens a file for reading, decompressed, and with a checkpoint at the
/// position where the last run stopped (announced with `Message::Opened`).
/// `None` when the receiver hung up.
fn open(
    index: usize,
    format: Format,
    path: &Path,
    checkpoint: Option<&Checkpoint>,
    deliver: &mut dyn FnMut(Message) -> bool,
) -> io::Result<Option<(Box<dyn io::Read>, LineReader)>> {
    let mut file = File::open(path)?;
    let id = identity(&file)?;
    let Some((offset, line)) = position(index, path, &file, checkpoint, deliver)? else {
        return Ok(None);
    };
    if offset == 0 && !file.metadata()?.is_file() {
        // A named pipe, `<(command)` or a device: read as a stream, as
        // standard input is (it cannot be read at an offset or sought).
        return Ok(Some((
            decompressed(file)?,
            LineReader::resumed(index, format, id, 0, line),
        )));
    }
    let mut magic = [0; 4];
    let n = std::os::unix::fs::FileExt::read_at(&file, &mut magic, 0)?;
    let reader = if compression(&magic[..n]).is_some() {
        // Offsets count decompressed bytes: decompress and skip them.
        let mut reader = decompressed(file)?;
        io::copy(&mut (&mut reader).take(offset), &mut io::sink())?;
        reader
    } else {
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
        Box::new(file)
    };
    Ok(Some((
        reader,
        LineReader::resumed(index, format, id, offset, line),
    )))
}

/// Device and inode of an open file.
fn identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Where to start reading `file`: where the checkpoint says its last run
/// stopped (announced with `Message::Opened`), or its start. `None` when the
/// receiver hung up.
fn position(
    index: usize,
    path: &Path,
    file: &File,
    checkpoint: Option<&Checkpoint>,
    deliver: &mut dyn FnMut(Message) -> bool,
) -> io::Result<Option<(u64, u64)>> {
    let Some(checkpoint) = checkpoint else {
        return Ok(Some((0, 0)));
    };
    let id = FileId::of(file)?;
    let (offset, line) = checkpoint
        .resume(file, &id)
        .map_or((0, 0), |e| (e.offset, e.line));
    let entry = Entry {
        path: path.display().to_string(),
        id,
        offset,
        line,
    };
    Ok(deliver(Message::Opened {
        source: index,
        entry,
    })
    .then_some((offset, line)))
}

/// The compression a stream's first bytes announce.
#[derive(Debug, PartialEq, Eq)]
enum Compression {
    Gzip,
    Zstd,
}

fn compression(magic: &[u8]) -> Option<Compression> {
    if magic.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if magic.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else {
        None
    }
}

/// `reader`, decompressed when its first bytes are a gzip or zstd header
/// (by content, not by name; concatenated gzip members are read as one).
/// A corrupt or truncated stream then fails its reads with an error.
fn decompressed<'a>(mut reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
    let mut magic = [0; 4];
    let mut n = 0;
    while n < magic.len() {
        match reader.read(&mut magic[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let whole = io::Cursor::new(magic[..n].to_vec()).chain(reader);
    Ok(match compression(&magic[..n]) {
        Some(Compression::Gzip) => Box::new(flate2::read::MultiGzDecoder::new(whole)),
        Some(Compression::Zstd) => Box::new(zstd::stream::read::Decoder::new(whole)?),
        None => Box::new(whole),
    })
}

/// How `--follow` follows.
#[derive(Clone, Copy, Debug)]
pub struct Follow {
    /// How often idle files are looked at (`--follow-interval`).
    pub interval: Duration,
    /// How long a rotated file is still read after its rotation is seen (`--rotate-wait`).
    pub rotate_wait: Duration,
}

/// `--follow`: reads every file to its end, then keeps reading each as it
/// grows, like `tail -F`, until `stop` is set. When a file is replaced under
/// its name (rotation), the new one is read from its start at once, and the
/// old one is still read alongside for `rotate_wait` (what its writer still
/// appends, and a partial last line waiting for its newline), then read to
/// its end, a last line without newline included, and closed. A file that
/// shrank (truncation) is read again from its start. Compressed files are
/// read once, not followed.
pub fn follow_all(
    sources: &[Source],
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
    follow: &Follow,
    checkpoint: Option<&Checkpoint>,
) {
    let mut followed: Vec<Followed> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| Followed::new(i, s))
        .collect();
    while stop.load(Ordering::Relaxed) == 0 {
        let mut progressed = false;
        for f in &mut followed {
            match f.poll(deliver, stop, pool, follow.rotate_wait, checkpoint) {
                Ok(Some(p)) => progressed |= p,
                Ok(None) => return, // nobody listens
                Err(error) => {
                    if !deliver(Message::Failed {
                        source: f.index,
                        error,
                    }) {
                        return;
                    }
                }
            }
        }
        if !progressed {
            std::thread::sleep(follow.interval);
        }
    }
}

/// One followed file.
struct Followed {
    index: usize,
    path: Option<PathBuf>,
    file: Option<File>,
    /// Device and inode of the open file: a new pair under the path means rotation.
    id: Option<(u64, u64)>,
    lines: LineReader,
    format: Format,
    /// The file rotated away from under the path, still read for a while.
    rotated: Option<Rotated>,
    /// Whether the file is done with (compressed, or standard input at its end).
    done: bool,
    /// Whether "cannot open" was reported (once, not every poll).
    reported: bool,
}

/// A rotated file still being read, through the descriptor opened before
/// its rotation, until `until`.
struct Rotated {
    file: File,
    lines: LineReader,
    until: Instant,
}

impl Followed {
    fn new(index: usize, source: &Source) -> Followed {
        let path = source.path.clone();
        Followed {
            index,
            path,
            file: None,
            id: None,
            lines: LineReader::new(index, source.format),
            format: source.format,
            rotated: None,
            done: false,
            reported: false,
        }
    }

    /// Reads what is new: in the rotated file first (its lines are older),
    /// then in the file under the path. `Some(progressed)`, or `None` when
    /// the receiver hung up.
    fn poll(
        &mut self,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        rotate_wait: Duration,
        checkpoint: Option<&Checkpoint>,
    ) -> io::Result<Option<bool>> {
        let Some(old) = self.poll_rotated(deliver, stop, pool)? else {
            return Ok(None);
        };
        let current = self.poll_current(deliver, stop, pool, rotate_wait, checkpoint)?;
        Ok(current.map(|new| new | old))
    }

    /// Reads what is new in the rotated file; once its time is up, reads it
    /// to its end (an unterminated last line too) and closes it.
    fn poll_rotated(
        &mut self,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
    ) -> io::Result<Option<bool>> {
        let Some(rotated) = &mut self.rotated else {
            return Ok(Some(false));
        };
        let last = Instant::now() >= rotated.until;
        let ended = rotated
            .lines
            .read_available(&mut rotated.file, deliver, stop, pool, last);
        if last || ended.is_err() {
            self.rotated = None;
        }
        Ok(match ended? {
            Ended::HungUp => None,
            Ended::End(any) => Some(any),
        })
    }

    /// Reads what is new in the file under the path, opening it first if
    /// needed, and looks for rotation and truncation.
    fn poll_current(
        &mut self,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        rotate_wait: Duration,
        checkpoint: Option<&Checkpoint>,
    ) -> io::Result<Option<bool>> {
        use std::os::unix::fs::MetadataExt;
        if self.done {
            return Ok(Some(false));
        }
        let Some(path) = self.path.clone() else {
            // Standard input is a stream already: read it to its end.
            self.done = true;
            let ok = decompressed(io::stdin().lock())
                .and_then(|r| read_source(self.index, self.format, r, deliver, stop, pool))?;
            return Ok(ok.then_some(true));
        };
        if self.file.is_none() {
            let mut file = match File::open(&path) {
                Ok(file) => file,
                Err(e) if self.reported => {
                    return if e.kind() == io::ErrorKind::NotFound {
                        Ok(Some(false))
                    } else {
                        Err(e)
                    };
                }
                Err(e) => {
                    self.reported = true;
                    return Err(e);
                }
            };
            let mut magic = [0; 4];
            let n = file.read(&mut magic)?;
            if compression(&magic[..n]).is_some() {
                self.done = true;
                let Some((reader, mut lines)) =
                    open(self.index, self.format, &path, checkpoint, deliver)?
                else {
                    return Ok(None);
                };
                let ended = lines.read_available(reader, deliver, stop, pool, true)?;
                return Ok((ended != Ended::HungUp).then_some(true));
            }
            let Some((offset, line)) = position(self.index, &path, &file, checkpoint, deliver)?
            else {
                return Ok(None);
            };
            io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
            let id = identity(&file)?;
            self.id = Some(id);
            self.lines = LineReader::resumed(self.index, self.format, id, offset, line);
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let progressed = match self
            .lines
            .read_available(&mut *file, deliver, stop, pool, false)?
        {
            Ended::HungUp => return Ok(None),
            Ended::End(any) => any,
        };
        // At the end of what is there: has the file been replaced or cut?
        let position = io::Seek::stream_position(file)?;
        match std::fs::metadata(&path) {
            Ok(meta) if Some((meta.dev(), meta.ino())) != self.id => {
                // Rotated: the new file is read from its start on the next
                // poll; the old one goes on being read for `rotate_wait`,
                // with its partial last line. A file rotated before is done
                // now (its last line too).
                if let Some(mut before) = self.rotated.take()
                    && before
                        .lines
                        .read_available(&mut before.file, deliver, stop, pool, true)?
                        == Ended::HungUp
                {
                    return Ok(None);
                }
                self.rotated = Some(Rotated {
                    file: self.file.take().expect("open"),
                    lines: std::mem::replace(
                        &mut self.lines,
                        LineReader::new(self.index, self.format),
                    ),
                    until: Instant::now() + rotate_wait,
                });
                Ok(Some(true))
            }
            Ok(meta) if meta.len() < position => {
                // Truncated: read again from the start, counting lines anew.
                io::Seek::rewind(file)?;
                self.lines = LineReader::resumed(self.index, self.format, self.lines.file, 0, 0);
                Ok(Some(true))
            }
            // Unchanged, or moved away with nothing in its place yet: keep reading it.
            _ => Ok(Some(progressed)),
        }
    }
}

/// Splits one source into batches. Returns `Ok(false)` when the receiver hung up.
fn read_source(
    source: usize,
    format: Format,
    reader: impl Read,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
) -> io::Result<bool> {
    let mut lines = LineReader::new(source, format);
    Ok(lines.read_available(reader, deliver, stop, pool, true)? != Ended::HungUp)
}

/// How a `read_available` call ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// End of the data for now; `bool`: whether any bytes came.
    End(bool),
    /// The receiver hung up.
    HungUp,
}

/// Cuts what a reader yields into batches of whole lines, keeping the
/// partial line and the line count between calls (a followed file grows).
struct LineReader {
    splitter: Splitter,
    /// Under `--input-format json`: where the values are (batches then hold
    /// whole values, not lines).
    values: Option<Values>,
    /// Source offset of the first carried byte (the end of the last delivered line).
    offset: u64,
    carry: Vec<u8>,
    /// Bytes read but not yet reported in a batch.
    unsent: u64,
    /// Device and inode of the file read (`Batch::file`).
    file: (u64, u64),
}

impl LineReader {
    fn new(source: usize, format: Format) -> LineReader {
        LineReader::resumed(source, format, (0, 0), 0, 0)
    }

    /// A reader that starts `offset` bytes and `line` lines into its source.
    fn resumed(
        source: usize,
        format: Format,
        file: (u64, u64),
        offset: u64,
        line: u64,
    ) -> LineReader {
        let mut splitter = Splitter::new(source);
        splitter.line_number = line;
        splitter.at_start = offset == 0;
        splitter.raw = format == Format::Raw;
        LineReader {
            offset,
            splitter,
            values: (format == Format::Json).then(|| Values::new(line, offset == 0)),
            carry: Vec::new(),
            unsent: 0,
            file,
        }
    }

    /// Reads until `reader` reports its end (or a signal), delivering whole
    /// lines. At the end, `final_line` delivers an unterminated last line
    /// (a file that is done) instead of keeping it for more data to come.
    fn read_available(
        &mut self,
        mut reader: impl io::Read,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        final_line: bool,
    ) -> io::Result<Ended> {
        let mut any = false;
        loop {
            if stop.load(Ordering::Relaxed) != 0 {
                return Ok(Ended::End(any));
            }
            // A recycled buffer is already initialised: only growing it zeroes memory.
            let mut data = pool.take();
            let filled = self.carry.len();
            if data.len() < filled + CHUNK {
                // Room for a usual carried-over tail too, so the buffer is not
                // grown (and copied) again on its next use.
                data.resize((filled + CHUNK).max(CHUNK + CHUNK / 4), 0);
            }
            data[..filled].copy_from_slice(&self.carry);
            self.carry.clear();
            let n = loop {
                match reader.read(&mut data[filled..filled + CHUNK]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            any |= n > 0;
            let valid = filled + n;
            self.unsent += n as u64;
            let at_end = n == 0;
            let cut = if let Some(values) = &mut self.values {
                let cut = values.scan(&data[..valid], at_end && final_line);
                if cut == 0 && values.items.is_empty() {
                    // A value longer than what we have: keep reading into it.
                    self.carry.extend_from_slice(&data[..valid]);
                    pool.give(data);
                    if at_end {
                        return Ok(Ended::End(any));
                    }
                    continue;
                }
                cut
            } else if at_end && final_line {
                valid
            } else {
                match memchr::memrchr(b'\n', &data[..valid]) {
                    Some(i) => i + 1,
                    None => {
                        // A line longer than what we have: keep reading into it.
                        self.carry.extend_from_slice(&data[..valid]);
                        pool.give(data);
                        if at_end {
                            return Ok(Ended::End(any));
                        }
                        continue;
                    }
                }
            };
            self.carry.extend_from_slice(&data[cut..valid]);
            let bytes = std::mem::take(&mut self.unsent);
            let mut batch = match &mut self.values {
                Some(values) => values.batch(self.splitter.source, data, cut, bytes),
                None => self.splitter.split(data, cut, bytes),
            };
            self.offset += cut as u64;
            batch.end_offset = self.offset;
            batch.file = self.file;
            if (!batch.lines.is_empty() || batch.bytes > 0) && !deliver(Message::Batch(batch)) {
                return Ok(Ended::HungUp);
            }
            if at_end {
                return Ok(Ended::End(any));
            }
        }
    }
}

/// Cuts buffers into lines, remembering line numbers across buffers.
struct Splitter {
    source: usize,
    line_number: u64,
    at_start: bool,
    /// `-R`: every line is kept as it is (blank ones, a CR, a BOM).
    raw: bool,
}

impl Splitter {
    fn new(source: usize) -> Splitter {
        Splitter {
            source,
            line_number: 0,
            at_start: true,
            raw: false,
        }
    }

    /// `data[..end]` holds whole lines only (the last may lack its newline at EOF).
    fn split(&mut self, data: Vec<u8>, end: usize, bytes: u64) -> Batch {
        if self.raw {
            return self.split_raw(data, end, bytes);
        }
        let mut lines = Vec::new();
        let mut start = 0;
        let data_end = end;
        if self.at_start && data_end > 0 {
            self.at_start = false;
            if data[..data_end].starts_with(b"\xEF\xBB\xBF") {
                start = 3;
            }
        }
        while start < data_end {
            let newline = memchr::memchr(b'\n', &data[start..data_end]).map(|i| start + i);
            let next = newline.map_or(data_end, |i| i + 1);
            let mut end = newline.unwrap_or(data_end);
            if end > start && data[end - 1] == b'\r' {
                end -= 1;
            }
            self.line_number += 1;
            let text = &data[start..end];
            // Most lines start with `{`: only a line starting with white space
            // needs the full look.
            let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r');
            if text.first().is_some_and(|b| !blank(b)) || !text.iter().all(blank) {
                lines.push(Line {
                    start,
                    end,
                    number: self.line_number,
                });
            }
            start = next;
        }
        Batch {
            source: self.source,
            data,
            lines,
            bytes,
            end_offset: 0,
            end_line: self.line_number,
            file: (0, 0),
        }
    }
}

impl Splitter {
    /// `split` for `-R`: every line is an event, as jq -R reads it: blank
    /// lines too, a CR before the newline and a BOM kept.
    fn split_raw(&mut self, data: Vec<u8>, end: usize, bytes: u64) -> Batch {
        let mut lines = Vec::new();
        let mut start = 0;
        while start < end {
            let newline = memchr::memchr(b'\n', &data[start..end]).map(|i| start + i);
            let line_end = newline.unwrap_or(end);
            self.line_number += 1;
            lines.push(Line {
                start,
                end: line_end,
                number: self.line_number,
            });
            start = line_end + 1;
        }
        Batch {
            source: self.source,
            data,
            lines,
            bytes,
            end_offset: 0,
            end_line: self.line_number,
            file: (0, 0),
        }
    }
}

/// One value `Values` found, `buf[start..end]`, or the malformed text from
/// where a value started to where scanning resumes.
#[derive(Debug)]
struct Item {
    start: usize,
    end: usize,
    /// The line of its first byte.
    line: u64,
    /// Malformed: handed on as it was, for the JSON parser to reject.
    bad: bool,
}

/// Where `Values` stands in the text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Between values, or between the tokens of a container.
    Structure,
    String,
    /// After a backslash in a string.
    Escape,
    /// In a number or a literal (`true`, `false`, `null`).
    Scalar,
    /// After a malformed value: looking for the line to resume at.
    Skip,
}

/// Finds the JSON values in a stream of them separated by white space, as
/// jq reads it (pretty-printed documents, `{"a":1}{"a":2}`, `[1,2] 3`), read
/// after read: the state carries over, so a value may span any number of
/// reads. It follows only the structure (strings, brackets, where a number
/// or literal ends); the values' own syntax is left to the JSON parser,
/// which fails a malformed one as an event. A structural error (a closing
/// bracket that does not match, a newline in a string, a value that never
/// ends, text that cannot start a value) ends the value there; scanning
/// resumes at the next line that starts a value (`{ [ " - 0-9 t f n`) no
/// deeper indented than the malformed value was, and the text in between is
/// the failed event.
struct Values {
    /// Scanned up to here in the buffer. Positions count from the buffer's
    /// start, which is the first carried byte; `batch` moves them back by
    /// what it hands on.
    pos: usize,
    /// Where the value being scanned starts, its line and column.
    start: Option<usize>,
    start_line: u64,
    start_column: usize,
    /// The closing brackets expected, innermost last.
    stack: Vec<u8>,
    state: State,
    /// Newlines before `pos`.
    lines: u64,
    /// Where `pos`'s line starts (before the buffer when negative).
    line_start: isize,
    /// At the start of the source: a UTF-8 BOM there is dropped, as jq does.
    at_start: bool,
    /// What `scan` found, for `batch`.
    items: Vec<Item>,
}

/// Bytes that end a number or literal.
fn ends_scalar(b: u8) -> bool {
    matches!(
        b,
        b' ' | b'\t' | b'\r' | b'\n' | b'{' | b'}' | b'[' | b']' | b'"' | b',' | b':'
    )
}

/// Bytes a JSON value can start with.
fn starts_value(b: u8) -> bool {
    matches!(
        b,
        b'{' | b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n'
    )
}

impl Values {
    fn new(lines: u64, at_start: bool) -> Values {
        Values {
            pos: 0,
            start: None,
            start_line: 0,
            start_column: 0,
            stack: Vec::new(),
            state: State::Structure,
            lines,
            line_start: 0,
            at_start,
            items: Vec::new(),
        }
    }

    /// Scans `buf` (the carried bytes, then what was read) from where the
    /// last call stopped. `last`: nothing more comes, so every value must end
    /// here. Returns where the values found end: the start of the value
    /// still open, or all of `buf`.
    fn scan(&mut self, buf: &[u8], last: bool) -> usize {
        if self.at_start {
            if buf.len() < 3 && !last && b"\xEF\xBB\xBF".starts_with(buf) {
                return 0;
            }
            self.at_start = false;
            if buf.starts_with(b"\xEF\xBB\xBF") {
                self.pos = 3;
            }
        }
        let mut i = self.run(buf, self.pos, last);
        if last {
            loop {
                match (self.start, self.state) {
                    (None, _) => break,
                    (Some(_), State::Scalar) if self.stack.is_empty() => {
                        self.state = State::Structure;
                        self.found(buf.len());
                    }
                    (Some(start), State::Skip) => {
                        self.state = State::Structure;
                        self.stack.clear();
                        self.start = None;
                        self.items.push(Item {
                            start,
                            end: trim_end(buf, start, buf.len()),
                            line: self.start_line,
                            bad: true,
                        });
                    }
                    (Some(start), _) => {
                        // The value never ends: it is malformed. Look for the
                        // line to resume at from its first line on.
                        self.state = State::Skip;
                        self.lines = self.start_line - 1;
                        self.line_start = start as isize - self.start_column as isize;
                        i = self.run(buf, start, last);
                    }
                }
            }
        }
        self.pos = i;
        self.start.unwrap_or(i)
    }

    /// A value ends at `end`.
    fn found(&mut self, end: usize) {
        let start = self.start.take().expect("a value was open");
        self.items.push(Item {
            start,
            end,
            line: self.start_line,
            bad: false,
        });
    }

    /// Scans `buf` from `i` until its end, or until it needs more bytes to
    /// know; returns where it stopped.
    fn run(&mut self, buf: &[u8], mut i: usize, last: bool) -> usize {
        while i < buf.len() {
            match self.state {
                State::String => match memchr::memchr3(b'"', b'\\', b'\n', &buf[i..]) {
                    None => i = buf.len(),
                    Some(k) => {
                        let j = i + k;
                        match buf[j] {
                            b'"' => {
                                i = j + 1;
                                self.state = State::Structure;
                                if self.stack.is_empty() {
                                    self.found(i);
                                }
                            }
                            b'\\' => {
                                i = j + 1;
                                self.state = State::Escape;
                            }
                            // A JSON string never holds a newline: it was
                            // not closed.
                            _ => {
                                i = j;
                                self.state = State::Skip;
                            }
                        }
                    }
                },
                State::Escape => {
                    i += 1;
                    self.state = State::String;
                }
                State::Scalar => match buf[i..].iter().position(|&b| ends_scalar(b)) {
                    Some(k) => {
                        i += k;
                        self.state = State::Structure;
                        if self.stack.is_empty() {
                            self.found(i);
                        }
                    }
                    None => i = buf.len(),
                },
                State::Skip => {
                    let Some(k) = memchr::memchr(b'\n', &buf[i..]) else {
                        i = buf.len();
                        break;
                    };
                    let newline = i + k;
                    let next = newline + 1;
                    let mut t = next;
                    while t < buf.len() && matches!(buf[t], b' ' | b'\t' | b'\r') {
                        t += 1;
                    }
                    if t == buf.len() && !last {
                        // The next line's start is not here yet: look again
                        // from this newline.
                        return newline;
                    }
                    self.lines += 1;
                    self.line_start = next as isize;
                    i = next;
                    if t < buf.len() && starts_value(buf[t]) && t - next <= self.start_column {
                        let start = self.start.take().expect("a value was open");
                        self.items.push(Item {
                            start,
                            end: trim_end(buf, start, newline),
                            line: self.start_line,
                            bad: true,
                        });
                        self.stack.clear();
                        self.state = State::Structure;
                    }
                }
                State::Structure => {
                    let b = buf[i];
                    match b {
                        b' ' | b'\t' | b'\r' => i += 1,
                        b'\n' => {
                            i += 1;
                            self.lines += 1;
                            self.line_start = i as isize;
                        }
                        _ => {
                            if self.start.is_none() {
                                self.start = Some(i);
                                self.start_line = self.lines + 1;
                                self.start_column = (i as isize - self.line_start) as usize;
                            }
                            match b {
                                b'{' | b'[' => {
                                    self.stack.push(if b == b'{' { b'}' } else { b']' });
                                    i += 1;
                                }
                                b'"' => {
                                    self.state = State::String;
                                    i += 1;
                                }
                                b'}' | b']' if self.stack.last() == Some(&b) => {
                                    self.stack.pop();
                                    i += 1;
                                    if self.stack.is_empty() {
                                        self.found(i);
                                    }
                                }
                                b',' | b':' if !self.stack.is_empty() => i += 1,
                                b'}' | b']' | b',' | b':' => self.state = State::Skip,
                                _ if self.stack.is_empty() && !starts_value(b) => {
                                    self.state = State::Skip
                                }
                                _ => self.state = State::Scalar,
                            }
                        }
                    }
                }
            }
        }
        i
    }

    /// The batch of the values found in `data[..cut]`, each made compact in
    /// place (white space outside strings dropped, so that it is one line
    /// like an NDJSON event, written byte for byte when no stage changes it);
    /// malformed text stays as it was. Positions move back by `cut`.
    fn batch(&mut self, source: usize, mut data: Vec<u8>, cut: usize, bytes: u64) -> Batch {
        let mut lines = Vec::with_capacity(self.items.len());
        let mut w = 0;
        for item in self.items.drain(..) {
            let start = w;
            if item.bad {
                data.copy_within(item.start..item.end, w);
                w += item.end - item.start;
            } else {
                w = compact(&mut data, item.start, item.end, w);
            }
            lines.push(Line {
                start,
                end: w,
                number: item.line,
            });
        }
        self.pos -= cut;
        self.line_start -= cut as isize;
        if let Some(start) = &mut self.start {
            *start -= cut;
        }
        let end_line = match self.start {
            Some(_) => self.start_line - 1,
            None => self.lines,
        };
        Batch {
            source,
            data,
            lines,
            bytes,
            end_offset: 0,
            end_line,
            file: (0, 0),
        }
    }
}

/// The JSON values in `text` as `--input-format json` reads them (for
/// `--slurpfile`): each with the line it starts on, made compact; malformed
/// text comes as it was, for the JSON parser to reject.
pub fn json_values(text: &[u8]) -> Vec<(u64, Vec<u8>)> {
    let mut values = Values::new(0, true);
    values.scan(text, true);
    let mut buf = text.to_vec();
    values
        .items
        .drain(..)
        .map(|item| {
            let end = match item.bad {
                true => item.end,
                false => compact(&mut buf, item.start, item.end, item.start),
            };
            (item.line, buf[item.start..end].to_vec())
        })
        .collect()
}

/// What a value of `--input-format json` that is not JSON is reported
/// with: its line is said apart, and a column would count in the value as
/// made compact, not in the file.
pub fn value_error(error: &crate::json::Error) -> String {
    match error {
        crate::json::Error::Syntax { reason, .. } => format!("invalid JSON: {reason}"),
        crate::json::Error::Utf8 { .. } => "invalid UTF-8".to_string(),
    }
}

/// `end` moved back over white space, not before `start`.
fn trim_end(buf: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(buf[end - 1], b' ' | b'\t' | b'\r' | b'\n') {
        end -= 1;
    }
    end
}

/// Copies `data[start..end]` to `data[to..]` (`to <= start`) without the
/// white space outside strings, and returns where the copy ends. One space
/// stays between two numbers or literals, so that text that was not JSON
/// does not become JSON (`[1 2]`, `tru e`).
fn compact(data: &mut [u8], start: usize, end: usize, to: usize) -> usize {
    let word = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'+' | b'-');
    let (mut i, mut w) = (start, to);
    let mut gap = false;
    while i < end {
        match data[i] {
            b' ' | b'\t' | b'\r' | b'\n' => {
                gap = true;
                i += 1;
            }
            b'"' => {
                // The string through its closing quote (or to the end).
                let mut j = i + 1;
                let j = loop {
                    match memchr::memchr2(b'"', b'\\', &data[j..end]) {
                        None => break end,
                        Some(k) if data[j + k] == b'"' => break j + k + 1,
                        Some(k) => j = (j + k + 2).min(end),
                    }
                };
                data.copy_within(i..j, w);
                w += j - i;
                i = j;
                gap = false;
            }
            b => {
                if gap && w > to && word(data[w - 1]) && word(b) {
                    // A space was skipped: `w < i`.
                    data[w] = b' ';
                    w += 1;
                }
                data[w] = b;
                w += 1;
                i += 1;
                gap = false;
            }
        }
    }
    w
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(u64, String)> {
        let mut s = Splitter::new(0);
        let b = s.split(input.to_vec(), input.len(), input.len() as u64);
        b.lines
            .iter()
            .map(|l| (l.number, String::from_utf8_lossy(b.line(l)).into_owned()))
            .collect()
    }

    #[test]
    fn splits_lines_and_drops_blanks_cr_and_bom() {
        let got = lines(b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \t\n{\"b\":2}\n{\"c\":3}");
        assert_eq!(
            got,
            vec![
                (1, "{\"a\":1}".into()),
                (4, "{\"b\":2}".into()),
                (5, "{\"c\":3}".into())
            ]
        );
    }

    #[test]
    fn line_numbers_continue_across_buffers() {
        let mut s = Splitter::new(0);
        let a = s.split(b"1\n\nxx".to_vec(), 3, 3);
        let b = s.split(b"2\n".to_vec(), 2, 2);
        assert_eq!(a.lines[0].number, 1);
        assert_eq!(b.lines[0].number, 3);
    }

    #[test]
    fn reader_handles_lines_longer_than_a_chunk() {
        let long = format!("\"{}\"", "x".repeat(CHUNK * 2 + 17));
        let input = format!("1\n{long}\n2");
        let mut messages = Vec::new();
        let stop = AtomicUsize::new(0);
        read_source(
            0,
            Format::Ndjson,
            input.as_bytes(),
            &mut |m| {
                messages.push(m);
                true
            },
            &stop,
            &Pool::default(),
        )
        .unwrap();
        let mut got = Vec::new();
        let mut bytes = 0;
        for m in messages {
            if let Message::Batch(b) = m {
                bytes += b.bytes;
                got.extend(b.lines.iter().map(|l| (l.number, b.line(l).len())));
            }
        }
        assert_eq!(got, vec![(1, 1), (2, long.len()), (3, 1)]);
        assert_eq!(bytes, input.len() as u64);
    }

    /// A reader that yields at most `step` bytes a read.
    struct Trickle<'a>(&'a [u8], usize);

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(self.1).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Events as `read_source` cuts them in `format`, `step` bytes a read.
    fn events(format: Format, input: &[u8], step: usize) -> (Vec<(u64, String)>, u64) {
        let mut got = Vec::new();
        let mut bytes = 0;
        let stop = AtomicUsize::new(0);
        let mut deliver = |m| {
            if let Message::Batch(b) = m {
                bytes += b.bytes;
                got.extend(
                    b.lines
                        .iter()
                        .map(|l| (l.number, String::from_utf8_lossy(b.line(l)).into_owned())),
                );
            }
            true
        };
        let reader = Trickle(input, step);
        read_source(0, format, reader, &mut deliver, &stop, &Pool::default()).unwrap();
        (got, bytes)
    }

    #[test]
    fn json_values_are_found_across_reads_and_made_compact() {
        let input = "\u{feff}{\"a\":1}{\"a\":2}[1,2] 3\n{\n  \"x\": [1,\n  2], \"s\": \"a \\\" b\\\\\"\n}\n\"s\" -1.5e3 true\nnull";
        let want = vec![
            (1, r#"{"a":1}"#.to_string()),
            (1, r#"{"a":2}"#.to_string()),
            (1, "[1,2]".to_string()),
            (1, "3".to_string()),
            (2, r#"{"x":[1,2],"s":"a \" b\\"}"#.to_string()),
            (6, r#""s""#.to_string()),
            (6, "-1.5e3".to_string()),
            (6, "true".to_string()),
            (7, "null".to_string()),
        ];
        for step in [1, 2, 3, 7, 1 << 20] {
            let (got, bytes) = events(Format::Json, input.as_bytes(), step);
            assert_eq!(got, want, "step {step}");
            assert_eq!(bytes, input.len() as u64);
        }
    }

    #[test]
    fn malformed_json_values_resume_at_a_line_that_starts_a_value() {
        let input = "{\"a\": [1, 2}\n{\"b\":2}\n{\n  \"c\": 1,\n  \"d\": [1,\n}\n  [1 2]\n] 4\n{\"e\":\n  1";
        let want = vec![
            (1, "{\"a\": [1, 2}".to_string()),
            (2, r#"{"b":2}"#.to_string()),
            (
                3,
                "{\n  \"c\": 1,\n  \"d\": [1,\n}\n  [1 2]\n] 4".to_string(),
            ),
            (9, "{\"e\":\n  1".to_string()),
        ];
        for step in [1, 5, 1 << 20] {
            assert_eq!(events(Format::Json, input.as_bytes(), step).0, want);
        }
    }

    #[test]
    fn raw_lines_keep_blank_lines_cr_and_bom() {
        let input = b"\xEF\xBB\xBFa\r\n\n  \nb";
        let (got, bytes) = events(Format::Raw, input, 3);
        let want: Vec<(u64, String)> = vec![
            (1, "\u{feff}a\r".into()),
            (2, "".into()),
            (3, "  ".into()),
            (4, "b".into()),
        ];
        assert_eq!(got, want);
        assert_eq!(bytes, input.len() as u64);
    }

    #[test]
    fn slurped_values_keep_their_lines() {
        let got = json_values(b"1 [2,\n 3]\n\n{\"a\": \"b c\"} x");
        let got: Vec<(u64, String)> = got
            .into_iter()
            .map(|(l, v)| (l, String::from_utf8(v).unwrap()))
            .collect();
        let want: Vec<(u64, String)> = vec![
            (1, "1".into()),
            (1, "[2,3]".into()),
            (4, r#"{"a":"b c"}"#.into()),
            (4, "x".into()),
        ];
        assert_eq!(got, want);
    }
}
