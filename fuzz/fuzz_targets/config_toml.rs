//! The `--config` TOML file, through the binary's own parser (`wagate_cli::parse_config_file`).
//! Any text must give an answer, never a panic; an error must not quote the file's lines (they
//! may hold secrets), so it is a single line.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(message) = wagate_cli::parse_config_file(text) {
        assert!(
            !message.contains('\n'),
            "multi-line config error: {message}"
        );
    }
});
