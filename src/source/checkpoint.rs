//! `--checkpoint FILE`: for each input file, where processing finished, so
//! that a later run resumes there. A file is known by its device and inode
//! (which survive a rename) and a fingerprint of its first bytes (which tells
//! a reused inode or a rewritten file from the one read before). The file is
//! replaced atomically (temporary file, fsync, rename) and only after the
//! output it accounts for was flushed, so a crash at any moment loses nothing:
//! the next run re-reads at most what came after the last checkpoint.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

/// How many leading bytes make a file's fingerprint.
const FINGERPRINT_BYTES: usize = 1024;

/// Which file: device and inode, and a hash of its first bytes.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    /// FNV-1a of the first `fingerprint_len` bytes, in hex.
    pub fingerprint: String,
    pub fingerprint_len: u64,
}

/// How far one file was processed.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The name it was read under (for people; files are matched by `FileId`).
    pub path: String,
    #[serde(flatten)]
    pub id: FileId,
    /// Bytes after the last processed line (after decompression, for a compressed file).
    pub offset: u64,
    /// Lines before `offset`, so line numbers go on where they stopped.
    pub line: u64,
}

#[derive(Serialize, Deserialize, Default, Debug)]
pub struct Checkpoint {
    pub version: u32,
    pub files: Vec<Entry>,
}

impl FileId {
    /// Identifies an open file, reading its first bytes without moving its cursor.
    pub fn of(file: &File) -> io::Result<FileId> {
        let meta = file.metadata()?;
        let (len, fingerprint) = prefix_hash(file, FINGERPRINT_BYTES)?;
        Ok(FileId {
            dev: meta.dev(),
            ino: meta.ino(),
            fingerprint,
            fingerprint_len: len as u64,
        })
    }
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
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "evq: --checkpoint {}: not a checkpoint file: {e}",
                    path.display()
                )
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Checkpoint {
                version: 1,
                files: Vec::new(),
            }),
            Err(e) => Err(format!(
                "evq: --checkpoint {}: {}",
                path.display(),
                crate::report::status::io_error_text(&e)
            )),
        }
    }

    /// Where to resume `file`: the entry of the same file (device, inode and
    /// the same first bytes) when the file still reaches its offset; `None`
    /// for a new, rewritten or truncated file, which is read from its start.
    pub fn resume(&self, file: &File, id: &FileId) -> Option<&Entry> {
        let entry = self
            .files
            .iter()
            .find(|e| e.id.dev == id.dev && e.id.ino == id.ino)?;
        let (len, hash) = prefix_hash(file, entry.id.fingerprint_len as usize).ok()?;
        let size = file.metadata().ok()?.len();
        let same = len as u64 == entry.id.fingerprint_len && hash == entry.id.fingerprint;
        // A compressed file's offset counts decompressed bytes, so it can pass the size.
        (same && (size >= entry.offset || compressed(file))).then_some(entry)
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
    magic[..n].starts_with(&[0x1f, 0x8b]) || magic[..n].starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_recognised_after_a_rename_and_not_after_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("app.log");
        std::fs::write(&a, "one\ntwo\n").unwrap();
        let id = FileId::of(&File::open(&a).unwrap()).unwrap();
        let cp = Checkpoint {
            version: 1,
            files: vec![Entry {
                path: "app.log".into(),
                id: id.clone(),
                offset: 4,
                line: 1,
            }],
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
        let f = File::open(&b).unwrap();
        assert_eq!(
            cp.resume(&f, &FileId::of(&f).unwrap()).map(|e| e.offset),
            Some(4)
        );
        // Truncated below the offset: from the start.
        std::fs::write(&b, "on").unwrap();
        let f = File::open(&b).unwrap();
        assert_eq!(cp.resume(&f, &FileId::of(&f).unwrap()), None);
        // Rewritten with other first bytes: from the start.
        std::fs::write(&b, "ONE\ntwo\nthree\n").unwrap();
        let f = File::open(&b).unwrap();
        assert_eq!(cp.resume(&f, &FileId::of(&f).unwrap()), None);
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
