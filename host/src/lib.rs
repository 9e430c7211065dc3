//! `cross-domain-sync`: the skill host of `/gold.cross-domain-sync`.
//!
//! Read `ARCHITECTURE.md` first. In one line: front ends (`cli`) turn
//! arguments into a validated request (`request`), the `pipeline` runs each
//! entity type through its sandboxed plugin (`plugin`), the pure `merge` core,
//! and the journalled `store`, then writes the sync `record` and the `audit`
//! trail.

pub mod audit;
pub mod base;
pub mod cards;
pub mod cli;
pub mod config;
pub mod conflict_log;
pub mod error;
pub mod exchange;
pub mod faults;
pub mod fields;
pub mod generate;
pub mod install;
pub mod mcp;
pub mod memory;
pub mod plugin;
pub mod raw;
pub mod record;
pub mod request;
pub mod review;
pub mod scaffold;
pub mod schema;
pub mod store;
pub mod strict;
pub mod sync;
pub mod trial;
pub mod validate;
pub mod vdir;

/// The pure merge core, a crate of its own so that it cannot do I/O.
pub use cds_merge as merge;
pub use error::{Code, Error, Result};
