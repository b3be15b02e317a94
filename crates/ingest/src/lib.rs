//! Reading logs into detection. [`pipeline`] runs files through a server's parser, the
//! session joiner, enrichment and the detectors (`pgvigil analyze`), and [`output`] prints
//! what it found.
//!
//! Following logs live (`pgvigil run`): [`tail`] finds and reads the files as PostgreSQL writes
//! them, across rotation; [`stdin`] reads a stream piped in, [`journal`] the systemd journal;
//! [`checkpoint`] saves file positions together with the pipeline state they produced, so a
//! restart (even after `kill -9`) neither loses nor double-counts lines; [`pace`] keeps the
//! store's writes in proportion to the log.

pub mod checkpoint;
pub mod journal;
pub mod output;
pub mod pace;
pub mod pipeline;
pub mod stdin;
pub mod tail;

/// Where to start reading a file that was already there when pgvigil first started (no
/// checkpoint yet). Files that appear later are always read from their beginning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}
