//! The binary's library face: only the parsing entry points that tools outside the binary need
//! (the fuzz targets in `fuzz/`). Not a stable API. The binary keeps its own module tree
//! (main.rs); the files below are compiled into both, so the fuzzer runs the binary's own code.

// Only `parse` and the two file errors are used from here; the rest serves the binary.
#[allow(dead_code)]
#[path = "settings/error.rs"]
mod error;
#[allow(dead_code)]
#[path = "settings/file.rs"]
mod file;

use std::path::Path;

use error::ConfigError;

/// Parses the text of a `--config` TOML file exactly as `wagate serve` and `wagate dispatch`
/// do; the error is the one they print (it names the key and the byte, never the line's text).
#[doc(hidden)]
pub fn parse_config_file(text: &str) -> Result<(), String> {
    file::parse(text, Path::new("fuzz.toml"))
        .map(drop)
        .map_err(|e| e.to_string())
}
