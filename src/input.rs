//! Input: reads each source in turn on a reader thread and hands the executor
//! batches of complete lines cut from large buffers, each line with its source
//! and line number. No allocation per line; blank lines, a trailing CR and a
//! UTF-8 BOM at the start of a file are dropped here.

use crate::checkpoint::{Checkpoint, Entry, FileId};
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

/// One input named on the command line.
#[derive(Clone, Debug)]
pub struct Source {
    /// How the source is named in stats and dead-letter records: the path, or `-`.
    pub name: String,
    /// The file to open, or `None` for standard input.
    pub path: Option<PathBuf>,
}

impl Source {
    pub fn new(arg: &std::path::Path) -> Source {
        if arg.as_os_str() == "-" {
            Source {
                name: "-".into(),
                path: None,
            }
        } else {
            Source {
                name: arg.to_string_lossy().into_owned(),
                path: Some(arg.to_path_buf()),
            }
        }
    }

    /// How the source is named in messages on standard error.
    pub fn display(&self) -> &str {
        if self.path.is_none() {
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
        let result = match &source.path {
            None => decompressed(io::stdin().lock())
                .and_then(|r| read_source(index, r, deliver, stop, pool)),
            Some(path) => open(index, path, checkpoint, deliver).and_then(|opened| match opened {
                Some((reader, mut lines)) => {
                    Ok(lines.read_available(reader, deliver, stop, pool, true)? != Ended::HungUp)
                }
                None => Ok(false),
            }),
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

/// Opens a file for reading, decompressed, and with a checkpoint at the
/// position where the last run stopped (announced with `Message::Opened`).
/// `None` when the receiver hung up.
fn open(
    index: usize,
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
            LineReader::resumed(index, id, 0, line),
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
    Ok(Some((reader, LineReader::resumed(index, id, offset, line))))
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
            lines: LineReader::new(index),
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
                .and_then(|r| read_source(self.index, r, deliver, stop, pool))?;
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
                let Some((reader, mut lines)) = open(self.index, &path, checkpoint, deliver)?
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
            self.lines = LineReader::resumed(self.index, id, offset, line);
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
                    lines: std::mem::replace(&mut self.lines, LineReader::new(self.index)),
                    until: Instant::now() + rotate_wait,
                });
                Ok(Some(true))
            }
            Ok(meta) if meta.len() < position => {
                // Truncated: read again from the start, counting lines anew.
                io::Seek::rewind(file)?;
                self.lines = LineReader::resumed(self.index, self.lines.file, 0, 0);
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
    reader: impl Read,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
) -> io::Result<bool> {
    let mut lines = LineReader::new(source);
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
    /// Source offset of the first carried byte (the end of the last delivered line).
    offset: u64,
    carry: Vec<u8>,
    /// Bytes read but not yet reported in a batch.
    unsent: u64,
    /// Device and inode of the file read (`Batch::file`).
    file: (u64, u64),
}

impl LineReader {
    fn new(source: usize) -> LineReader {
        LineReader::resumed(source, (0, 0), 0, 0)
    }

    /// A reader that starts `offset` bytes and `line` lines into its source.
    fn resumed(source: usize, file: (u64, u64), offset: u64, line: u64) -> LineReader {
        let mut splitter = Splitter::new(source);
        splitter.line_number = line;
        splitter.at_start = offset == 0;
        LineReader {
            offset,
            splitter,
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
            let cut = if at_end && final_line {
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
            let mut batch = self
                .splitter
                .split(data, cut, std::mem::take(&mut self.unsent));
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
}

impl Splitter {
    fn new(source: usize) -> Splitter {
        Splitter {
            source,
            line_number: 0,
            at_start: true,
        }
    }

    /// `data[..end]` holds whole lines only (the last may lack its newline at EOF).
    fn split(&mut self, data: Vec<u8>, end: usize, bytes: u64) -> Batch {
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
}
