//! Checkpoints: file positions and the pipeline state they produced. The store saves one in
//! the same transaction as the alerts it produced, so they always agree.

use crate::pipeline::Pipeline;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: not a pgvigil checkpoint ({reason}); move it away to start afresh")]
    Corrupt { path: PathBuf, reason: String },
}

/// Where one file was read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePos {
    pub path: PathBuf,
    pub dev: u64,
    pub ino: u64,
    /// Bytes consumed: everything before is in the state below.
    pub offset: u64,
    /// Line number of the next line (for messages).
    pub line: u64,
    /// The file's first bytes: an inode number can be reused by a new file.
    pub head: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub server: String,
    pub files: Vec<FilePos>,
    pub joiner: Vec<u8>,
    pub engine: Vec<(String, Vec<u8>)>,
    /// Length of the alerts file when this checkpoint was taken: alerts written after it are
    /// cut on restart and raised again from the re-read lines, so the file has each update
    /// once.
    pub alerts_file_len: Option<u64>,
    /// The alerts file's inode then: a file rotated away since is not the one to cut.
    #[serde(default)]
    pub alerts_file_ino: Option<u64>,
    /// Following the systemd journal: the cursor of the last entry in this state.
    #[serde(default)]
    pub journal_cursor: Option<String>,
}

const VERSION: u32 = 1;
/// Starts a compressed checkpoint (MessagePack never starts so: 0xFF is not a map).
const MAGIC: &[u8] = b"\xffpgvigil-z1\n";

impl Checkpoint {
    /// The state as a whole, each part serialised in memory: what [`Checkpoint::save`] writes
    /// part by part, kept to check that both give the same bytes.
    #[cfg(test)]
    pub fn capture(
        server: &str,
        files: Vec<FilePos>,
        journal_cursor: Option<String>,
        p: &Pipeline,
        alerts_file: Option<(u64, u64)>,
    ) -> Self {
        Checkpoint {
            version: VERSION,
            server: server.to_string(),
            files,
            joiner: detect::save_state(&p.joiner),
            engine: p.engine.save_parts().collect(),
            alerts_file_len: alerts_file.map(|f| f.0),
            alerts_file_ino: alerts_file.map(|f| f.1),
            journal_cursor,
        }
    }

    /// Puts the saved state back into a fresh pipeline.
    pub fn restore_into(&self, p: &mut Pipeline, path: &Path) -> Result<(), CheckpointError> {
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason,
        };
        p.joiner = rmp_serde::from_slice(&self.joiner).map_err(|e| corrupt(e.to_string()))?;
        p.engine
            .restore(&self.engine)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(())
    }

    /// Compressed: detector state is repetitive (addresses, role names, field names) and
    /// shrinks about six times, which is that much less written at every checkpoint.
    pub fn to_bytes(&self) -> Vec<u8> {
        compressed(self)
    }

    /// A checkpoint of `p`'s state, compressed as [`Checkpoint::to_bytes`] writes it, with the
    /// state serialised straight into the compressor one part at a time: after a storm of
    /// attackers, holding the whole state serialised (twice: each part, then the whole) took
    /// `run` from 200 to 300 MB at every checkpoint.
    pub fn save(
        server: &str,
        files: &[FilePos],
        journal_cursor: Option<&str>,
        p: &Pipeline,
        alerts_file: Option<(u64, u64)>,
    ) -> Vec<u8> {
        compressed(&Streamed {
            version: VERSION,
            server,
            files,
            joiner: Part(&p.joiner),
            engine: EngineParts(&p.engine),
            alerts_file_len: alerts_file.map(|f| f.0),
            alerts_file_ino: alerts_file.map(|f| f.1),
            journal_cursor,
        })
    }

    /// Reads a checkpoint saved by [`Checkpoint::to_bytes`]; `origin` names where it came
    /// from, for the error.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Checkpoint, CheckpointError> {
        use std::io::Read;
        let corrupt = |reason: String| CheckpointError::Corrupt {
            path: origin.to_path_buf(),
            reason,
        };
        // Checkpoints written before compression are plain MessagePack.
        let c: Checkpoint = match bytes.strip_prefix(MAGIC) {
            Some(z) => {
                let mut z = flate2::read::ZlibDecoder::new(z);
                let c = rmp_serde::from_read(&mut z).map_err(|e| corrupt(e.to_string()))?;
                // Nothing may follow: a checkpoint cut short or run together is not this one.
                let mut rest = [0u8; 1];
                match z.read(&mut rest) {
                    Ok(0) => c,
                    Ok(_) => return Err(corrupt("data after its end".into())),
                    Err(e) => return Err(corrupt(e.to_string())),
                }
            }
            None => rmp_serde::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?,
        };
        if c.version != VERSION {
            return Err(CheckpointError::Corrupt {
                path: origin.to_path_buf(),
                reason: format!("version {} (this pgvigil writes {VERSION})", c.version),
            });
        }
        Ok(c)
    }
}

/// MessagePack of `value`, through zlib, after [`MAGIC`].
fn compressed<T: Serialize>(value: &T) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(MAGIC.to_vec(), flate2::Compression::fast());
    // Plain data into memory: neither serialising nor writing can fail. MessagePack comes
    // a byte or two at a time, which the compressor takes slowly: it goes in by the block.
    let mut w = std::io::BufWriter::with_capacity(256 << 10, &mut z);
    let _ = rmp_serde::encode::write_named(&mut w, value);
    let _ = w.flush();
    drop(w);
    z.finish().unwrap_or_default()
}

/// [`Checkpoint`]'s fields, in its order, borrowed from where they live.
#[derive(Serialize)]
struct Streamed<'a> {
    version: u32,
    server: &'a str,
    files: &'a [FilePos],
    joiner: Part<'a, sources::session::SessionJoiner>,
    engine: EngineParts<'a>,
    alerts_file_len: Option<u64>,
    alerts_file_ino: Option<u64>,
    journal_cursor: Option<&'a str>,
}

/// A state saved as its MessagePack bytes, serialised when written.
struct Part<'a, T>(&'a T);

impl<T: Serialize> Serialize for Part<'_, T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        detect::save_state(self.0).serialize(s)
    }
}

/// The engine's parts, each serialised, written and dropped in turn.
struct EngineParts<'a>(&'a detect::Engine);

impl Serialize for EngineParts<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let parts = self.0.save_parts();
        let mut seq = s.serialize_seq(Some(parts.len()))?;
        for part in parts {
            seq.serialize_element(&part)?;
        }
        seq.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Checkpoint {
        Checkpoint {
            version: VERSION,
            server: "db1".into(),
            files: vec![FilePos {
                path: "/var/log/postgresql/postgresql.log".into(),
                dev: 2049,
                ino: 131_077,
                offset: 4096,
                line: 57,
                head: b"2026-11-30 10:00:00.000 UTC [4242] LOG:  ".to_vec(),
            }],
            joiner: b"joiner state ".repeat(500),
            engine: vec![("brute_force".into(), b"203.0.113.7 app ".repeat(2000))],
            alerts_file_len: Some(1234),
            alerts_file_ino: Some(99),
            journal_cursor: Some("s=33b4;i=3b3;b=1394".into()),
        }
    }

    #[test]
    fn a_checkpoint_is_stored_compressed_and_read_back_whole() {
        let c = sample();
        let bytes = c.to_bytes();
        let plain = rmp_serde::to_vec_named(&c).unwrap();
        assert!(
            bytes.len() * 4 < plain.len(),
            "{} of {}",
            bytes.len(),
            plain.len()
        );
        let back = Checkpoint::from_bytes(&bytes, Path::new("store")).unwrap();
        assert_eq!(back.files, c.files);
        assert_eq!(back.joiner, c.joiner);
        assert_eq!(back.engine, c.engine);
        assert_eq!(back.alerts_file_len, Some(1234));
        assert_eq!(back.journal_cursor, c.journal_cursor);
    }

    #[test]
    fn a_checkpoint_written_part_by_part_is_the_same_checkpoint() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../examples/logs/postgresql-15-main.log");
        let log = std::fs::read(&path).unwrap();
        let lf = sources::file::decide(&path, &log, &Default::default(), log.len() as u64, 2026);
        let mut p = Pipeline::new("db1", &Default::default());
        p.read_file(&lf, &mut |_| {}).unwrap();
        let files = sample().files;
        let whole = Checkpoint::capture("db1", files.clone(), Some("s=1".into()), &p, Some((7, 9)));
        let state: usize = whole.engine.iter().map(|(_, b)| b.len()).sum();
        assert!(state > 10_000, "only {state} bytes of state");
        let streamed = Checkpoint::save("db1", &files, Some("s=1"), &p, Some((7, 9)));
        assert_eq!(streamed, whole.to_bytes());
        let back = Checkpoint::from_bytes(&streamed, Path::new("store")).unwrap();
        assert_eq!(back.engine, whole.engine);
        assert_eq!(back.joiner, whole.joiner);
    }

    #[test]
    fn a_checkpoint_from_before_the_journal_reads_without_a_cursor() {
        #[derive(serde::Serialize)]
        struct Before {
            version: u32,
            server: String,
            files: Vec<FilePos>,
            joiner: Vec<u8>,
            engine: Vec<(String, Vec<u8>)>,
            alerts_file_len: Option<u64>,
            alerts_file_ino: Option<u64>,
        }
        let c = sample();
        let old = Before {
            version: c.version,
            server: c.server.clone(),
            files: c.files.clone(),
            joiner: c.joiner.clone(),
            engine: c.engine.clone(),
            alerts_file_len: c.alerts_file_len,
            alerts_file_ino: c.alerts_file_ino,
        };
        let back =
            Checkpoint::from_bytes(&rmp_serde::to_vec_named(&old).unwrap(), Path::new("store"))
                .unwrap();
        assert_eq!(back.files, c.files);
        assert_eq!(back.journal_cursor, None);
    }

    #[test]
    fn a_checkpoint_from_before_compression_still_reads() {
        let c = sample();
        let plain = rmp_serde::to_vec_named(&c).unwrap();
        let back = Checkpoint::from_bytes(&plain, Path::new("store")).unwrap();
        assert_eq!(back.files, c.files);
        assert_eq!(back.engine, c.engine);
    }

    #[test]
    fn a_damaged_checkpoint_is_named_not_misread() {
        let mut bytes = sample().to_bytes();
        let n = bytes.len();
        bytes.truncate(n / 2);
        let e = Checkpoint::from_bytes(&bytes, Path::new("/var/lib/pgvigil/pgvigil.db"))
            .err()
            .unwrap();
        assert!(e.to_string().contains("/var/lib/pgvigil/pgvigil.db"), "{e}");
    }
}
