//! pgvigil: threat detection for PostgreSQL.
//!
//! The workspace is laid out as its pipeline, one crate per stage (`crates/`), and this crate
//! holds what ties them into one program: the configuration file and the command line. It
//! names each stage's crate under the name it has always had here (`pgvigil::detect`,
//! `pgvigil::store`, …).
//!
//! ```text
//! sources (log parsers, session joiner) ──► model::event ──► enrich ──► detect (profiles,
//! one detector per alert family, dedup) ──► model::alert ──► store ──► notify / server
//!      ▲                                                        (api, console)
//! ingest (pipeline, log follower, checkpoints)     proxy (inline guard)     scan (posture)
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

// The shared vocabulary.
pub use model::{alert, duration, event, evidence, gzfile, place, policy, rng, sample, secret};
pub use model::{setting, sql, suppression};

// The stages, in pipeline order.
pub use detect::profile;
pub use ingest::{output, pipeline};
pub use server::{api, console};
pub use store::health;
pub use {detect, enrich, ingest, notify, proxy, scan, server, sources, store, tls};

pub mod config;
#[doc(hidden)]
pub mod fuzzing;
