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
# (default 100k and 1M events; `just bench-startup 10000000` for 10M: ~9 GB of disk).
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

# Fuzzing (not in CI: needs nightly and takes minutes): seeds fuzz/corpus/ from fixtures/, then
# runs every cargo-fuzz target in fuzz/ for `seconds` each and prints executions and findings.
# `cargo install cargo-fuzz` once. `-a`: overflow checks and debug assertions on, as in tests.
# Crashes land in fuzz/artifacts/<target>/. docs/fuzzing.md.
fuzz seconds="60" sanitizer="address":
    #!/usr/bin/env bash
    set -uo pipefail
    export CARGO_INCREMENTAL=0
    bash fuzz/seed.sh >/dev/null
    targets=$(cd fuzz && cargo +nightly fuzz list)
    (cd fuzz && cargo +nightly fuzz build -a -s {{sanitizer}}) || exit 1
    logs=$(mktemp -d)
    trap 'rm -rf "$logs"' EXIT
    failed=0
    for target in $targets; do
        echo "== $target ({{seconds}} s)"
        (cd fuzz && cargo +nightly fuzz run -a -s {{sanitizer}} "$target" -- \
            -max_total_time={{seconds}} -print_final_stats=1) >"$logs/$target" 2>&1
        status=$?
        [ "$status" -ne 0 ] && failed=1
        tail -n 3 "$logs/$target" | grep -E "Done|#[0-9]+" || true
        echo "exit $status"
    done
    printf '\n%-18s %12s %10s %8s %8s  %s\n' target executions exec/s cov corpus finding
    for target in $targets; do
        log="$logs/$target"
        runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
        speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo "?")
        cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo "?")
        corp=$(grep -oE 'corp: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+' || echo "?")
        finding=$(grep -m1 -E 'panicked at|ERROR: libFuzzer|SUMMARY:' "$log" || echo none)
        printf '%-18s %12s %10s %8s %8s  %s\n' "$target" "$runs" "$speed" "$cov" "$corp" "$finding"
    done
    exit "$failed"

# Soak (not in CI: it takes `minutes`): a release hub on loopback with a temporary database, driven
# at a fixed `rate` of mixed signed Twilio/Meta webhooks and API commands by
# crates/http/examples/soak.rs, which samples the hub's RSS and open descriptors and fails when they
# grow (last third vs middle third of the run). docs/performance.md, "Soak".
soak minutes="30" rate="1000":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p wagate-cli -p wagate-http --bin wagate --example soak
    data=$(mktemp -d)
    rejected=$(mktemp -d)
    WAGATE_LOG=warn WAGATE_TWILIO_AUTH_TOKEN=12345 WAGATE_META_APP_SECRET=soak-meta \
      WAGATE_API_TOKEN=soak WAGATE_PUBLIC_URL=https://hub.example.com \
      WAGATE_REJECTED_DIR="$rejected" \
      target/release/wagate serve --listen 127.0.0.1:18081 --data "$data" --no-dispatch &
    hub=$!
    trap 'kill "$hub"; wait "$hub" || true; rm -rf "$data" "$rejected"' EXIT
    for _ in $(seq 50); do curl -sf http://127.0.0.1:18081/healthz >/dev/null && break; sleep 0.1; done
    target/release/examples/soak --hub http://127.0.0.1:18081 --public-url https://hub.example.com \
      --twilio-auth-token 12345 --meta-app-secret soak-meta --api-token soak --pid "$hub" \
      --minutes {{minutes}} --rate {{rate}}
    du -sh "$data" | sed 's/^/data folder after the soak: /'
