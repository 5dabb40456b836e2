//! `--follow` (`-F`): reads every file to its end, then keeps reading each
//! as it grows, like `tail -F`, through rotation (`--rotate-wait`) and
//! truncation. Each followed file is polled in turn (`Followed::poll`); an
//! idle round sleeps `--follow-interval`.

use super::batch::{Message, Pool};
use super::checkpoint::Checkpoint;
use super::file::{compression, identity, open, position, read_stdin};
use super::read::{Ended, LineReader};
use super::{Format, Origin, Source};
use std::fs::File;
use std::io::{self, Read};
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

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
/// read once, not followed. The first of `sources` is source number `first`.
pub fn follow_all(
    sources: &[Source],
    first: usize,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &Pool,
    follow: &Follow,
    checkpoint: Option<&Checkpoint>,
) {
    let mut followed: Vec<Followed> = sources
        .iter()
        .enumerate()
        .map(|(i, s)| Followed::new(first + i, s))
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
    origin: Origin,
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
        Followed {
            index,
            origin: source.origin.clone(),
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
    /// needed, and looks for rotation and truncation. Standard input is
    /// read to its end once.
    fn poll_current(
        &mut self,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        rotate_wait: Duration,
        checkpoint: Option<&Checkpoint>,
    ) -> io::Result<Option<bool>> {
        if self.done {
            return Ok(Some(false));
        }
        let path = match &self.origin {
            Origin::File(path) => path.clone(),
            Origin::Stdin => {
                // A stream already: read it to its end.
                self.done = true;
                let ok = read_stdin(self.index, self.format, deliver, stop, pool)?;
                return Ok(ok.then_some(true));
            }
            Origin::Kafka(..) => unreachable!("a Kafka input is read by its consumers"),
            Origin::Null => {
                // Refused by the plan (`-n` has no input to follow); as read_all.
                self.done = true;
                return Ok(deliver(Message::Batch(super::null_batch(self.index))).then_some(true));
            }
        };
        if self.file.is_none()
            && let ControlFlow::Break(polled) =
                self.open_current(&path, deliver, stop, pool, checkpoint)?
        {
            return Ok(polled);
        }
        let file = self.file.as_mut().expect("opened above");
        let progressed = match self
            .lines
            .read_available(&mut *file, deliver, stop, pool, false)?
        {
            Ended::HungUp => return Ok(None),
            Ended::End(any) => any,
        };
        self.look_for_rotation(&path, progressed, deliver, stop, pool, rotate_wait)
    }

    /// Opens the file under the path, where the checkpoint says, to follow
    /// it. `Break` ends the poll with its result: the file is not there (yet),
    /// or it is compressed and was read once to its end, or the receiver
    /// hung up (`None`).
    fn open_current(
        &mut self,
        path: &Path,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        checkpoint: Option<&Checkpoint>,
    ) -> io::Result<ControlFlow<Option<bool>>> {
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if self.reported => {
                return if e.kind() == io::ErrorKind::NotFound {
                    Ok(ControlFlow::Break(Some(false)))
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
                open(self.index, self.format, path, checkpoint, deliver)?
            else {
                return Ok(ControlFlow::Break(None));
            };
            let ended = lines.read_available(reader, deliver, stop, pool, true)?;
            return Ok(ControlFlow::Break((ended != Ended::HungUp).then_some(true)));
        }
        let Some((offset, line)) = position(self.index, path, &file, checkpoint, deliver)? else {
            return Ok(ControlFlow::Break(None));
        };
        io::Seek::seek(&mut file, io::SeekFrom::Start(offset))?;
        let id = identity(&file)?;
        self.id = Some(id);
        self.lines = LineReader::resumed(self.index, self.format, id, offset, line);
        self.file = Some(file);
        Ok(ControlFlow::Continue(()))
    }

    /// At the end of what is in the open file: has it been replaced under
    /// the path (rotation) or cut (truncation)? `progressed`: whether this
    /// poll read anything so far.
    fn look_for_rotation(
        &mut self,
        path: &Path,
        progressed: bool,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        rotate_wait: Duration,
    ) -> io::Result<Option<bool>> {
        use std::os::unix::fs::MetadataExt;
        let file = self.file.as_mut().expect("open");
        let position = io::Seek::stream_position(file)?;
        match std::fs::metadata(path) {
            Ok(meta) if Some((meta.dev(), meta.ino())) != self.id => {
                self.rotate(deliver, stop, pool, rotate_wait)
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

    /// Rotated: the new file is read from its start on the next poll; the
    /// old one goes on being read for `rotate_wait`, with its partial last
    /// line. A file rotated before is done now (its last line too).
    fn rotate(
        &mut self,
        deliver: &mut dyn FnMut(Message) -> bool,
        stop: &AtomicUsize,
        pool: &Pool,
        rotate_wait: Duration,
    ) -> io::Result<Option<bool>> {
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
            lines: std::mem::replace(&mut self.lines, LineReader::new(self.index, self.format)),
            until: Instant::now() + rotate_wait,
        });
        Ok(Some(true))
    }
}
