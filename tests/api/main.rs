//! API tests through real HTTP against the real `berth` binary.

#[path = "../common/mod.rs"]
mod common;

mod auth;
mod backends;
mod cloud;
mod persistence;
mod providers;
mod rclone;
mod telemetry;
