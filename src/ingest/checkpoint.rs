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
}

const VERSION: u32 = 1;

impl Checkpoint {
    pub fn capture(
        server: &str,
        files: Vec<FilePos>,
        p: &Pipeline,
        alerts_file: Option<(u64, u64)>,
    ) -> Self {
        Checkpoint {
            version: VERSION,
            server: server.to_string(),
            files,
            joiner: crate::detect::save_state(&p.joiner),
            engine: p.engine.save(),
            alerts_file_len: alerts_file.map(|f| f.0),
            alerts_file_ino: alerts_file.map(|f| f.1),
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

    pub fn to_bytes(&self) -> Vec<u8> {
        // Plain data: serialising it cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Reads a checkpoint saved by [`Checkpoint::to_bytes`]; `origin` names where it came
    /// from, for the error.
    pub fn from_bytes(bytes: &[u8], origin: &Path) -> Result<Checkpoint, CheckpointError> {
        let c: Checkpoint = rmp_serde::from_slice(bytes).map_err(|e| CheckpointError::Corrupt {
            path: origin.to_path_buf(),
            reason: e.to_string(),
        })?;
        if c.version != VERSION {
            return Err(CheckpointError::Corrupt {
                path: origin.to_path_buf(),
                reason: format!("version {} (this pgvigil writes {VERSION})", c.version),
            });
        }
        Ok(c)
    }
}
