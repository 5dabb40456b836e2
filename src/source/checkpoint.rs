//! `--checkpoint FILE`: for each input file, where processing finished, so
//! that a later run resumes there. A file is known by its device and inode
//! (which survive a rename) and a fingerprint of its first bytes (which tells
//! a reused inode or a rewritten file from the one read before). The file is
//! replaced atomically (temporary file, fsync, rename) and only after the
//! output it accounts for was flushed, so a crash at any moment loses nothing:
//! the next run re-reads at most what came after the last checkpoint.

use super::position::Position;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// How many leading bytes make a file's fingerprint.
const FINGERPRINT_BYTES: usize = 1024;

/// How far one file was processed: its name and position, and the
/// fingerprint of its first bytes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(from = "Record", into = "Record")]
pub struct Entry {
    /// The name it was read under (for people; files are matched by the
    /// device and inode of `at`, and `fingerprint`).
    pub path: String,
    /// Where processing finished: a `Position::File` (its offset counts
    /// bytes after decompression, for a compressed file; its line, the lines
    /// before the offset, so line numbers go on where they stopped).
    pub at: Position,
    fingerprint: Fingerprint,
}

/// FNV-1a of a file's first `len` bytes, in hex.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Fingerprint {
    hash: String,
    len: u64,
}

/// An entry as the checkpoint file holds it, field for field.
#[derive(Serialize, Deserialize)]
struct Record {
    path: String,
    #[serde(flatten)]
    id: FileId,
    offset: u64,
    line: u64,
}

/// Which file: device and inode, and a hash of its first bytes.
#[derive(Serialize, Deserialize)]
struct FileId {
    dev: u64,
    ino: u64,
    fingerprint: String,
    fingerprint_len: u64,
}

impl From<Record> for Entry {
    fn from(r: Record) -> Entry {
        Entry {
            path: r.path,
            at: Position::File {
                dev: r.id.dev,
                ino: r.id.ino,
                offset: r.offset,
                line: r.line,
            },
            fingerprint: Fingerprint {
                hash: r.id.fingerprint,
                len: r.id.fingerprint_len,
            },
        }
    }
}

impl From<Entry> for Record {
    fn from(e: Entry) -> Record {
        let (dev, ino, offset, line) = match e.at {
            Position::File {
                dev,
                ino,
                offset,
                line,
            } => (dev, ino, offset, line),
            // Kafka offsets go to the consumer group, not into the file.
            Position::Start | Position::Kafka { .. } => (0, 0, 0, 0),
        };
        Record {
            path: e.path,
            id: FileId {
                dev,
                ino,
                fingerprint: e.fingerprint.hash,
                fingerprint_len: e.fingerprint.len,
            },
            offset,
            line,
        }
    }
}

/// The checkpoint format this evq writes: 2 adds the chain and the state
/// of its stateful stage to version 1's file positions; 3 adds a
/// percentile's few values kept as they are (`{"few": [...]}`). All are read.
pub const VERSION: u32 = 3;

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Checkpoint {
    pub version: u32,
    /// What the chain that wrote it is (its stages and options as the stats
    /// show them); none in version 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<String>,
    pub files: Vec<Entry>,
    /// The state of the chain's stateful stage and its event time, taken
    /// with the positions in `files`: the state of exactly the events
    /// before them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<serde_json::Value>,
}

/// FNV-1a of up to `limit` leading bytes of `file`: (bytes hashed, hex hash).
fn prefix_hash(file: &File, limit: usize) -> io::Result<(usize, String)> {
    let mut buf = vec![0; limit];
    let mut n = 0;
    while n < limit {
        match file.read_at(&mut buf[n..], n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in &buf[..n] {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    Ok((n, format!("{hash:016x}")))
}

impl Checkpoint {
    /// Reads a checkpoint; a missing file is an empty checkpoint (a first run).
    pub fn load(path: &Path) -> Result<Checkpoint, String> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let loaded: Checkpoint = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "evq: --checkpoint {}: not a checkpoint file: {e}",
                        path.display()
                    )
                })?;
                if loaded.version > VERSION {
                    return Err(format!(
                        "evq: --checkpoint {}: written in format {} by a newer evq (this one reads up to {VERSION})",
                        path.display(),
                        loaded.version
                    ));
                }
                Ok(loaded)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Checkpoint {
                version: VERSION,
                ..Default::default()
            }),
            Err(e) => Err(format!(
                "evq: --checkpoint {}: {}",
                path.display(),
                crate::report::status::io_error_text(&e)
            )),
        }
    }

    /// Where to start reading `file`, named `path`: where the last run
    /// stopped in the same file (device, inode and the same first bytes)
    /// when the file still reaches that offset; its start for a new,
    /// rewritten or truncated file.
    pub fn start(&self, path: String, file: &File) -> io::Result<Entry> {
        let meta = file.metadata()?;
        let (len, hash) = prefix_hash(file, FINGERPRINT_BYTES)?;
        let mut entry = Entry {
            path,
            at: Position::File {
                dev: meta.dev(),
                ino: meta.ino(),
                offset: 0,
                line: 0,
            },
            fingerprint: Fingerprint {
                hash,
                len: len as u64,
            },
        };
        if let Some(resumed) = self.resume(file, &entry.at) {
            entry.at = resumed;
        }
        Ok(entry)
    }

    /// Where the last run stopped in `file`, whose start is `start` (see `start`).
    fn resume(&self, file: &File, start: &Position) -> Option<Position> {
        let entry = self.files.iter().find(|e| e.at.same_stream(start))?;
        let Position::File { offset, .. } = entry.at else {
            return None;
        };
        let (len, hash) = prefix_hash(file, entry.fingerprint.len as usize).ok()?;
        let size = file.metadata().ok()?.len();
        let same = len as u64 == entry.fingerprint.len && hash == entry.fingerprint.hash;
        // A compressed file's offset counts decompressed bytes, so it can pass the size.
        (same && (size >= offset || compressed(file))).then_some(entry.at)
    }

    /// Replaces the checkpoint atomically: temporary file, fsync, rename,
    /// fsync of the directory.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        let dir = path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = path.with_extension("evq-tmp");
        let mut file = File::create(&tmp)?;
        serde_json::to_writer(&mut file, self)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        File::open(dir)?.sync_all()
    }
}

fn compressed(file: &File) -> bool {
    let mut magic = [0; 4];
    let n = file.read_at(&mut magic, 0).unwrap_or(0);
    super::file::compression(&magic[..n]).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_recognised_after_a_rename_and_not_after_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("app.log");
        std::fs::write(&a, "one\ntwo\n").unwrap();
        let mut entry = Checkpoint::default()
            .start("app.log".into(), &File::open(&a).unwrap())
            .unwrap();
        let Position::File { offset, line, .. } = &mut entry.at else {
            panic!("a file's position")
        };
        (*offset, *line) = (4, 1);
        let cp = Checkpoint {
            version: VERSION,
            files: vec![entry],
            ..Default::default()
        };
        let path = dir.path().join("cp.json");
        cp.save(&path).unwrap();
        let cp = Checkpoint::load(&path).unwrap();
        // Renamed and grown: the same file.
        let b = dir.path().join("app.log.1");
        std::fs::rename(&a, &b).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&b)
            .unwrap()
            .write_all(b"three\n")
            .unwrap();
        let offset = |f: &File| match cp.start("b".into(), f).unwrap().at {
            Position::File { offset, .. } => offset,
            Position::Start | Position::Kafka { .. } => panic!("a file's position"),
        };
        assert_eq!(offset(&File::open(&b).unwrap()), 4);
        // Truncated below the offset: from the start.
        std::fs::write(&b, "on").unwrap();
        assert_eq!(offset(&File::open(&b).unwrap()), 0);
        // Rewritten with other first bytes: from the start.
        std::fs::write(&b, "ONE\ntwo\nthree\n").unwrap();
        assert_eq!(offset(&File::open(&b).unwrap()), 0);
    }

    #[test]
    fn a_missing_checkpoint_is_empty_and_a_bad_one_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(
            Checkpoint::load(&dir.path().join("none.json"))
                .unwrap()
                .files
                .is_empty()
        );
        std::fs::write(dir.path().join("bad.json"), "garbage").unwrap();
        assert!(
            Checkpoint::load(&dir.path().join("bad.json"))
                .unwrap_err()
                .contains("not a checkpoint file")
        );
    }
}
