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

# Dependency checks: advisories (the RustSec snapshot in .ci/advisory-db), licences, sources,
# duplicate versions (shown as warnings here).
deny:
    DENY_LOG_LEVEL=warn bash .ci/deny

# Benchmarks: the store (group commit, replay vs raw sled).
bench:
    cargo bench -p wagate-store

# Start-up time and RSS of a hub against its log's size, with and without snapshots
# (default 100k and 1M events; `just bench-startup 10000000` for 10M: ~25 GB of disk).
bench-startup *sizes:
    cargo bench -p wagate-app --bench startup -- {{sizes}}

# Load generator: starts a release hub on loopback with a temporary database, fires signed,
# distinct Twilio status callbacks at it (then the same again, as duplicates), stops it, and
# prints the data folder's size per appended callback.
load requests="100000" concurrency="64":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p wagate-cli --bin wagate
    cargo build --release -p wagate-http --example load
    data=$(mktemp -d)
    WAGATE_LOG=warn WAGATE_TWILIO_AUTH_TOKEN=12345 WAGATE_API_TOKEN=load \
      WAGATE_PUBLIC_URL=https://hub.example.com \
      target/release/wagate serve --listen 127.0.0.1:18080 --data "$data" --no-dispatch &
    hub=$!
    trap 'kill "$hub"; wait "$hub" || true; rm -rf "$data" "$data.rejected"' EXIT
    for _ in $(seq 50); do curl -sf http://127.0.0.1:18080/healthz >/dev/null && break; sleep 0.1; done
    target/release/examples/load --hub http://127.0.0.1:18080 --public-url https://hub.example.com \
      --auth-token 12345 -n {{requests}} -c {{concurrency}} --duplicates
    # Stop the hub (it flushes on the way out) before measuring its folder.
    kill "$hub"; wait "$hub" || true
    trap 'rm -rf "$data" "$data.rejected"' EXIT
    bytes=$(du -sb "$data" | cut -f1)
    echo "data folder after the load: $bytes bytes, $((bytes / {{requests}})) bytes per callback"

# Bytes on disk per appended status callback and keys written per webhook, at the store level
# (crates/store/examples/disk.rs; data in a temporary folder under target/tmp, removed after).
disk events="100000" concurrency="64":
    mkdir -p target/tmp
    cargo run --release -p wagate-store --example disk -- --events {{events}} --concurrency {{concurrency}} --dir target/tmp

# Dispatch throughput measurement (in-process hub, zero-latency fake provider), by hand.
bench-dispatch:
    cargo test --release -p wagate-dispatch --test driver -- --ignored --nocapture

# The full CI script, as CI runs it.
ci:
    bash .ci/run
