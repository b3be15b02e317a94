//! The vocabulary every stage of pgvigil shares, with no I/O of its own: what the parsers
//! produce ([`event`]), what detection raises ([`alert`]), where an address is ([`place`]),
//! the per-server security alert [`policy`] and [`suppression`] rules, the SQL lexer ([`sql`])
//! that events and detectors read statements with, and small settings types ([`duration`],
//! [`setting`], [`secret`]).

pub mod alert;
pub mod duration;
pub mod event;
pub mod gzfile;
pub mod place;
pub mod policy;
pub mod rng;
pub mod sample;
pub mod secret;
pub mod setting;
pub mod sql;
pub mod suppression;
