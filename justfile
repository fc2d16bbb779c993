# wagate's everyday commands. The README's two commands need only cargo; these mirror them.

# Run the hub on its embedded defaults (sled in ./wagate-data, the sandbox provider).
serve:
    cargo run --release -p wagate-cli -- serve

# Walk through the whole scenario on a temporary hub, then clean up.
demo:
    cargo run --release -p wagate-cli -- demo

# Every test: unit, property (CI case counts), integration and end-to-end.
test:
    cargo test --workspace

# Property tests with many more cases (PROPTEST_CASES raises every proptest).
proptest-deep cases="10000":
    PROPTEST_CASES={{cases}} cargo test --release -p wagate-proptests -p wagate-sim

# What CI runs: formatting, clippy with warnings as errors, and the tests.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --all-targets -- -D warnings

# Benchmarks: the store (group commit, replay vs raw sled) and the dispatcher.
bench:
    cargo bench -p wagate-store

# Load generator against a hub started on loopback: signed, distinct status callbacks.
load requests="200000" concurrency="256":
    cargo run --release -p wagate-http --example load -- --requests {{requests}} --concurrency {{concurrency}}

# The full CI script, as CI runs it.
ci:
    bash .ci/run
