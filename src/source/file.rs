//! Files: opening one (at the position a checkpoint gives, announced with
//! `Message::Opened`), reading a FIFO or a device as a stream, and
//! decompressing gzip and zstd by content. `follow` opens files here too.

use super::batch::Message;
use super::checkpoint::Checkpoint;
use super::position::Position;
use super::read::{Ended, LineReader};
use super::{Format, Origin};
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::sync::atomic::AtomicUsize;

/// Reads the file at `path` to its end. `Ok(false)` when the receiver hung up.
pub(super) fn read(
    index: usize,
    format: Format,
    path: &Path,
    checkpoint: Option<&Checkpoint>,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &super::Pool,
) -> io::Result<bool> {
    match open(index, format, path, checkpoint, deliver)? {
        Some((reader, mut lines)) => {
            Ok(lines.read_available(reader, deliver, stop, pool, true)? != Ended::HungUp)
        }
        None => Ok(false),
    }
}

/// Opens a file for reading, decompressed, and with a checkpoint at the
/// position where the last run stopped (announced with `Message::Opened`).
/// `None` when the receiver hung up.
pub(super) fn open(
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
pub(super) fn identity(file: &File) -> io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Where to start reading `file`, as (offset, lines before): where the
/// checkpoint says its last run stopped (announced with `Message::Opened`),
/// or its start. `None` when the receiver hung up.
pub(super) fn position(
    index: usize,
    path: &Path,
    file: &File,
    checkpoint: Option<&Checkpoint>,
    deliver: &mut dyn FnMut(Message) -> bool,
) -> io::Result<Option<(u64, u64)>> {
    let Some(checkpoint) = checkpoint else {
        return Ok(Some((0, 0)));
    };
    let entry = checkpoint.start(path.display().to_string(), file)?;
    let (offset, line) = match entry.at {
        Position::File { offset, line, .. } => (offset, line),
        Position::Start | Position::Kafka { .. } => (0, 0),
    };
    Ok(deliver(Message::Opened {
        source: index,
        entry,
    })
    .then_some((offset, line)))
}

/// Size in bytes of a regular, uncompressed file (for the progress bar,
/// which counts bytes after decompression); `None` for anything else.
pub(super) fn size(origin: &Origin) -> Option<u64> {
    let Origin::File(path) = origin else {
        return None;
    };
    let meta = std::fs::metadata(path).ok()?;
    if !meta.is_file() {
        // A pipe or device: opening it here would consume its data.
        return None;
    }
    let mut magic = [0; 4];
    let n = File::open(path).and_then(|mut f| f.read(&mut magic)).ok()?;
    (meta.is_file() && compression(&magic[..n]).is_none()).then_some(meta.len())
}

/// The compression a stream's first bytes announce.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Compression {
    Gzip,
    Zstd,
}

pub(super) fn compression(magic: &[u8]) -> Option<Compression> {
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
pub(crate) fn decompressed<'a>(mut reader: impl Read + 'a) -> io::Result<Box<dyn Read + 'a>> {
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

/// Reads standard input (decompressed) to its end. `Ok(false)` when the
/// receiver hung up.
pub(super) fn read_stdin(
    index: usize,
    format: Format,
    deliver: &mut dyn FnMut(Message) -> bool,
    stop: &AtomicUsize,
    pool: &super::Pool,
) -> io::Result<bool> {
    decompressed(io::stdin().lock())
        .and_then(|r| super::read::read_source(index, format, r, deliver, stop, pool))
}
