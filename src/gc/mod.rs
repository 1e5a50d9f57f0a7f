//! Garbage collection of Docker's disk: the inventory (plain data), the pure planner, the
//! last-use store fed by Docker's event stream, and the executor.

pub mod inventory;
pub mod plan;

pub use inventory::{Container, ContainerState, Image, Inventory, Usage, UsageMap};
pub use plan::{Action, GcPolicy, Kept, Plan, Step, plan};
