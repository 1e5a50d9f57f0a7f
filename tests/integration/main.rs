//! Integration tests, one binary so the AWS SDKs are linked once. They run against real
//! things: a private dockerd on a loop-mounted xfs, moto's server, the IMDSv2 test server.

#![allow(clippy::unwrap_used)] // All of this crate is test code.

mod harness;

mod agent;
mod check_cli;
mod disk;
mod drain;
mod fleet;
mod gc;
mod harness_selftest;
mod health;
mod incident;
mod offender;
mod packaging;
