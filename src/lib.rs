//! nodewarden: a per-instance daemon for Amazon ECS container instances. It bootstraps the ECS
//! agent from userdata, keeps Docker's data on a filesystem of its own, garbage-collects before
//! the disk fills, and drains the instance before the disk is exhausted.
//!
//! Decisions are pure functions over plain data (`settings`, `userdata`); I/O lives at the
//! edges (`imds`, `http`, Docker, AWS, systemd).

pub mod cli;
/// One module per command.
pub mod commands;
/// The standard environment variables, parsed in one place.
pub mod environment;
/// Host paths under `--root`.
pub mod host_paths;
/// Settings: raw → merged → validated.
pub mod settings;
/// EC2 userdata decoding (plain, gzip, multipart MIME).
pub mod userdata;
