//! Where a source stands: what a batch reached, what a checkpoint records,
//! where a resumed source starts. Each kind of source has its own kind of
//! position; a file's is its device and inode, a byte offset and a line
//! count. A Kafka partition and offset, or the position in a second, joined
//! input, are further variants, with the checkpoint entry that keeps them.

/// A position in a source: where its last delivered line or value ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Position {
    /// In a file: its device and inode (both 0 for standard input, which
    /// is never resumed), the bytes before the position (after
    /// decompression, for a compressed file) and the lines before it.
    /// Under `--follow`, a source's lines may come from the file now under
    /// its name or from the one rotated away from it (`--rotate-wait`); the
    /// device and inode say which.
    File {
        dev: u64,
        ino: u64,
        offset: u64,
        line: u64,
    },
    /// In a Kafka partition (the batch's source says which): the offset of
    /// the next message, what a commit records.
    Kafka { offset: i64 },
    /// Nowhere: nothing read yet, or not from a source (what a stage
    /// emits on its own).
    #[default]
    Start,
}

impl Position {
    /// Whether `self` and `other` are positions in the same stream of bytes
    /// (the same file), so that one can replace the other.
    pub fn same_stream(&self, other: &Position) -> bool {
        match (self, other) {
            (
                Position::File { dev, ino, .. },
                Position::File {
                    dev: dev2,
                    ino: ino2,
                    ..
                },
            ) => dev == dev2 && ino == ino2,
            _ => false,
        }
    }
}
