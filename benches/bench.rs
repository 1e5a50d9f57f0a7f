#![allow(clippy::unwrap_used)]
#[path = "../tests/integration/harness/mod.rs"]
mod harness;
fn main() {}
