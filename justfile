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

# Ingest and dispatch on PostgreSQL against sled, in the same run (docs/performance.md, "sled and
# PostgreSQL"): a private PostgreSQL server (initdb into a temporary folder, a Unix socket only,
# fsync on as in production; as the `postgres` user when run as root), then the load generator
# against one sled hub, one PostgreSQL hub, and two PostgreSQL hubs on one database (two
# generators, half the callbacks each, at the same time), then the dispatch-rate measurement on
# sled and on PostgreSQL. Everything is removed at the end.
load-pg requests="20000" concurrency="64":
    #!/usr/bin/env bash
    set -euo pipefail
    cargo build --release -p wagate-cli -p wagate-http --bin wagate --example load
    cargo test --release -p wagate-dispatch --test driver --no-run
    bin=${WAGATE_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)}
    pg=$(mktemp -d); chmod 755 "$pg"
    as=(); [ "$(id -u)" = 0 ] && { chown postgres: "$pg"; as=(runuser -u postgres --); }
    hubs=(); dirs=("$pg")
    cleanup() {
      for hub in "${hubs[@]}"; do kill "$hub" 2>/dev/null || true; wait "$hub" 2>/dev/null || true; done
      "${as[@]}" "$bin/pg_ctl" stop -m fast -D "$pg/data" >/dev/null 2>&1 || true
      rm -rf "${dirs[@]}"
    }
    trap cleanup EXIT
    "${as[@]}" "$bin/initdb" -D "$pg/data" -U postgres -A trust -E UTF8 >/dev/null
    "${as[@]}" "$bin/pg_ctl" start -w -D "$pg/data" -l "$pg/server.log"       -o "-k $pg -c listen_addresses='' -c max_connections=100" >/dev/null
    url() { echo "postgres://postgres@$(echo "$pg" | sed 's|/|%2F|g'):5432/$1"; }
    serve() { # port, then serve's store flags
      local port=$1; shift
      # Another process on the port would take the load instead of this hub.
      if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "port $port is in use: stop what listens there first" >&2; exit 1
      fi
      local data; data=$(mktemp -d); dirs+=("$data" "$data.rejected")
      WAGATE_LOG=warn WAGATE_TWILIO_AUTH_TOKEN=12345 WAGATE_API_TOKEN=load         WAGATE_PUBLIC_URL=https://hub.example.com         target/release/wagate serve --listen "127.0.0.1:$port" --data "$data" --no-dispatch "$@" &
      hubs+=($!)
      for _ in $(seq 100); do
        kill -0 "${hubs[-1]}" 2>/dev/null || { echo "the hub on port $port exited" >&2; exit 1; }
        curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && return; sleep 0.1
      done
      echo "the hub on port $port did not start" >&2; exit 1
    }
    load() { # port, requests
      target/release/examples/load --hub "http://127.0.0.1:$1" --public-url https://hub.example.com         --auth-token 12345 -n "$2" -c {{concurrency}} --duplicates
    }
    stop_hubs() { for hub in "${hubs[@]}"; do kill "$hub"; wait "$hub" || true; done; hubs=(); }
    echo "== ingest, one hub on sled"
    serve 18290; load 18290 {{requests}}; stop_hubs
    for db in ingest1 ingest2 dispatch; do "${as[@]}" "$bin/createdb" -h "$pg" -U postgres "$db"; done
    echo "== ingest, one hub on PostgreSQL"
    serve 18291 --store "$(url ingest1)"; load 18291 {{requests}}; stop_hubs
    echo "== ingest, two hubs on one PostgreSQL database (each generator half the callbacks)"
    serve 18292 --store "$(url ingest2)"; serve 18293 --store "$(url ingest2)"
    load 18292 $(({{requests}} / 2)) | sed 's/^/hub 1: /' &
    first=$!
    load 18293 $(({{requests}} / 2)) | sed 's/^/hub 2: /'
    wait "$first"; stop_hubs
    echo "== dispatch, sled"
    cargo test --release -q -p wagate-dispatch --test driver -- --ignored --nocapture measure_unthrottled_dispatch_rate 2>&1 | grep -E "^(store|[0-9]+ messages|all |thread .* panicked)"
    echo "== dispatch, PostgreSQL"
    WAGATE_BENCH_STORE_URL="$(url dispatch)"       cargo test --release -q -p wagate-dispatch --test driver -- --ignored --nocapture measure_unthrottled_dispatch_rate 2>&1 | grep -E "^(store|[0-9]+ messages|all |thread .* panicked)"

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
