//! End-to-end tests of the `wagate` binary: each starts the real binary (on 127.0.0.1 when it
//! needs a hub) and checks what a person would see.

mod audit;
mod consent;
mod demo;
mod endpoints;
mod explain;
mod export;
mod golden_log;
mod import;
mod ops;
mod postgres_export;
mod postgres_import;
mod support;
