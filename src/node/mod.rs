//! The node model: the snapshots the daemon's loops publish (each loop owns its state and
//! publishes an immutable copy on a `watch`), the conditions derived from them, and the
//! `/status` document, one type that the health endpoint serializes and `nodewarden status`
//! deserializes. It depends on the domain modules (disk, GC, drain, agent) and on nothing that
//! serves or runs: the daemon's loops write their snapshots, the status loop combines them,
//! the health endpoint and the CLI read the result.

pub mod conditions;
pub mod snapshot;
pub mod status;

pub use snapshot::{DiskOutlook, DiskSnapshot};
