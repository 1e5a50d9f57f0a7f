//! The node model: what the daemon's loops know about this node ([`NodeState`], written only
//! by them), the conditions derived from it, and the `/status` document, one type that the
//! health endpoint serializes and `nodewarden status` deserializes. It depends on the domain
//! modules (disk, GC, drain, agent) and on nothing that serves or runs: the daemon writes it,
//! the health endpoint and the CLI read it.

pub mod conditions;
pub mod state;
pub mod status;

pub use state::{NodeState, SharedState};
