//! pgvigil: threat detection for PostgreSQL.
//!
//! The crate is laid out as its pipeline:
//!
//! ```text
//! sources (stderr / csvlog / jsonlog parsers, session joiner) ──► event ──► detect (one file
//! per alert family, dedup into alerts) ──► alert ──► output (table, JSON lines, alert file)
//!      ▲
//! ingest (follow files across rotation, checkpoints) for `pgvigil run`
//! ```
//!
//! ```no_run
//! use pgvigil::{pipeline, sources::file::Hints, detect::registry::DetectConfig};
//! let (files, _errors, _skipped) = pipeline::discover(&["/var/log/postgresql".into()], &Hints::default());
//! let mut p = pipeline::Pipeline::new("db1", &DetectConfig::default());
//! for f in &files {
//!     p.read_file(f, &mut |_| {}).ok();
//! }
//! p.finish();
//! for alert in p.take_alerts() {
//!     println!("{} {}", alert.alert_type.as_str(), alert.display_name);
//! }
//! ```

pub mod alert;
pub mod api;
pub mod config;
pub mod console;
pub mod corpus;
pub mod detect;
pub mod duration;
pub mod enrich;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod gzfile;
pub mod health;
pub mod ingest;
pub mod notify;
pub mod output;
pub mod pipeline;
pub mod place;
pub mod policy;
pub mod profile;
pub mod proxy;
pub mod scan;
pub mod secret;
pub mod server;
pub mod setting;
pub mod sim;
pub mod sources;
pub mod sql;
pub mod store;
pub mod suppression;
pub mod tls;
