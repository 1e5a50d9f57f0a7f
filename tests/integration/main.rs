//! Integration tests, one binary so the AWS SDKs are linked once. They run against real
//! things: a private dockerd on a loop-mounted xfs, moto's server, the IMDSv2 test server.

mod harness;

mod check_cli;
mod harness_selftest;
