//! Compressed input: gzip and zstd files and standard input are read
//! transparently, detected by their first bytes; a truncated or corrupt
//! stream is an I/O error naming the file (exit 4), never a hang or a panic.

use crate::common;

const PLAIN: &str = "fixtures/app.ndjson";

fn plain() -> Vec<u8> {
    common::read(&common::root().join(PLAIN))
}

#[test]
fn gzip_and_zstd_files_read_like_the_plain_file() {
    for file in ["app.ndjson.gz", "app.ndjson.zst", "two-members.ndjson.gz"] {
        let path = common::fixture(&format!("compressed/{file}"));
        let out = common::run(&["--stats=json", &path], b"");
        assert_eq!(common::status(&out), 0, "{file}: {}", common::stderr(&out));
        assert!(out.stdout == plain(), "{file}: output differs from {PLAIN}");
        let stats = common::stats_json(&out);
        // Bytes and lines count the decompressed data.
        assert_eq!(stats["bytes_read"], plain().len() as u64, "{file}");
        assert_eq!(stats["inputs"][0]["lines"], 40, "{file}");
    }
}

#[test]
fn compressed_standard_input_is_read_too() {
    for file in ["app.ndjson.gz", "app.ndjson.zst"] {
        let bytes =
            common::read(&common::root().join(common::fixture(&format!("compressed/{file}"))));
        let out = common::run(&["-f", ".level == \"error\""], &bytes);
        let expected = common::run(&["-f", ".level == \"error\"", PLAIN], b"");
        assert_eq!(common::status(&out), 0, "{file}");
        assert_eq!(out.stdout, expected.stdout, "{file}");
    }
}

#[test]
fn detection_is_by_content_not_name() {
    let dir = common::tempdir();
    let gz_named_plain = dir.path().join("events.ndjson");
    std::fs::copy(
        common::root().join("fixtures/compressed/app.ndjson.gz"),
        &gz_named_plain,
    )
    .unwrap();
    let plain_named_gz = dir.path().join("events.ndjson.gz");
    std::fs::copy(common::root().join(PLAIN), &plain_named_gz).unwrap();
    for path in [&gz_named_plain, &plain_named_gz] {
        let out = common::run(&[path.to_str().unwrap()], b"");
        assert_eq!(common::status(&out), 0, "{}", path.display());
        assert!(out.stdout == plain(), "{}", path.display());
    }
}

#[test]
fn truncated_streams_are_errors_naming_the_file() {
    for (file, reason) in [
        ("truncated.ndjson.gz", "incomplete deflate stream"),
        ("truncated.ndjson.zst", "incomplete frame"),
    ] {
        let path = common::fixture(&format!("compressed/{file}"));
        let out = common::run(&[&path, PLAIN], b"");
        assert_eq!(common::status(&out), 4, "{file}");
        assert_eq!(common::stderr(&out), format!("evq: {path}: {reason}\n"));
        // What came before the cut is written, then the next input whole.
        let text = common::stdout(&out);
        let plain = String::from_utf8(plain()).unwrap();
        let (from_truncated, rest) = text.split_at(text.len() - plain.len());
        assert_eq!(rest, plain, "{file}: the next input is read whole");
        // (A zstd block decodes only whole, so this small frame yields nothing.)
        assert!(
            plain.starts_with(from_truncated),
            "{file}: a prefix of whole lines"
        );
        if file.ends_with(".gz") {
            assert!(
                !from_truncated.is_empty(),
                "{file}: lines before the cut are written"
            );
        }
    }
}

#[test]
fn corrupt_streams_are_errors() {
    let dir = common::tempdir();
    let mut gz = common::read(&common::root().join("fixtures/compressed/app.ndjson.gz"));
    let n = gz.len();
    gz[n - 8] ^= 0xff; // the CRC
    let mut zst = common::read(&common::root().join("fixtures/compressed/app.ndjson.zst"));
    let n = zst.len();
    zst[n / 2] ^= 0xff;
    for (name, bytes) in [("bad.gz", gz), ("bad.zst", zst)] {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let out = common::run(&[path.to_str().unwrap()], b"");
        assert_eq!(common::status(&out), 4, "{name}");
        assert!(
            common::stderr(&out).starts_with(&format!("evq: {}: ", path.display())),
            "{}",
            common::stderr(&out)
        );
        assert!(!common::stderr(&out).contains("panicked"));
    }
    // A lone gzip magic number on stdin: an error, not a hang.
    let out = common::run(&[], b"\x1f\x8b");
    assert_eq!(common::status(&out), 4);
    assert_eq!(
        common::stderr(&out),
        "evq: <stdin>: unexpected end of file\n"
    );
}
