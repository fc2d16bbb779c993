//! Load generator for the hub's webhook ingest: pre-signs N distinct Twilio status callbacks,
//! fires them at a running `wagate serve` over loopback with C concurrent connections, and
//! reports requests/s and latency percentiles. Bounded in count and time; 127.0.0.1 only.
//!
//! ```sh
//! WAGATE_TWILIO_AUTH_TOKEN=12345 WAGATE_API_TOKEN=t WAGATE_PUBLIC_URL=https://hub.example.com \
//!     target/release/wagate serve --listen 127.0.0.1:8080 --data /tmp/wagate-load
//! cargo run --release -p wagate-http --example load -- \
//!     --hub http://127.0.0.1:8080 --public-url https://hub.example.com --auth-token 12345 \
//!     -n 200000 -c 64
//! ```
//!
//! Every callback has its own `MessageSid`, so each is a new, signed, de-duplicated (the key is
//! looked up and stored), durably appended event (`UnmatchedStatusReceived`). `--duplicates`
//! fires the same callbacks a second time (the de-duplication path: nothing appended).

use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::Secret;

const N_MAX: usize = 2_000_000;
const C_MAX: usize = 1024;
const SECONDS_MAX: u64 = 600;

#[derive(Debug)]
struct Args {
    hub: String,
    public_url: String,
    auth_token: String,
    count: usize,
    concurrency: usize,
    seconds_max: u64,
    duplicates: bool,
}

fn usage() -> &'static str {
    "usage: load --hub http://127.0.0.1:PORT --public-url URL --auth-token TOKEN \
     [-n COUNT (default 100000)] [-c CONCURRENCY (default 64)] [--seconds-max S (default 120)] \
     [--duplicates]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        hub: String::new(),
        public_url: String::new(),
        auth_token: String::new(),
        count: 100_000,
        concurrency: 64,
        seconds_max: 120,
        duplicates: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--hub" => args.hub = value()?,
            "--public-url" => args.public_url = value()?,
            "--auth-token" => args.auth_token = value()?,
            "-n" => args.count = value()?.parse().map_err(|_| "-n: not a number")?,
            "-c" => args.concurrency = value()?.parse().map_err(|_| "-c: not a number")?,
            "--seconds-max" => {
                args.seconds_max = value()?
                    .parse()
                    .map_err(|_| "--seconds-max: not a number")?
            }
            "--duplicates" => args.duplicates = true,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    let hub = args.hub.trim_end_matches('/').to_owned();
    let loopback = ["http://127.0.0.1:", "http://localhost:"]
        .iter()
        .any(|prefix| hub.starts_with(prefix));
    if !loopback {
        return Err(format!(
            "--hub must be http://127.0.0.1:PORT (got {hub:?})\n{}",
            usage()
        ));
    }
    args.hub = hub;
    if args.public_url.is_empty() || args.auth_token.is_empty() {
        return Err(usage().into());
    }
    args.public_url = args.public_url.trim_end_matches('/').to_owned();
    if args.count == 0 || args.count > N_MAX {
        return Err(format!("-n must be 1..={N_MAX}"));
    }
    if args.concurrency == 0 || args.concurrency > C_MAX {
        return Err(format!("-c must be 1..={C_MAX}"));
    }
    args.seconds_max = args.seconds_max.clamp(1, SECONDS_MAX);
    Ok(args)
}

/// One pre-signed request: form body and `X-Twilio-Signature`.
struct Signed {
    body: bytes::Bytes,
    signature: String,
}

fn presign(args: &Args) -> Vec<Signed> {
    let secret = Secret::new(args.auth_token.clone());
    let url = format!("{}/webhooks/twilio/status", args.public_url);
    // A random run prefix keeps SIDs distinct across runs against the same data directory.
    let run = rand::thread_rng().next_u64();
    (0..args.count)
        .map(|n| {
            let body = format!(
                "MessageSid=SM{run:016x}{n:016x}&MessageStatus=delivered&SmsStatus=delivered\
                 &To=whatsapp%3A%2B41790000001&From=whatsapp%3A%2B15555550100\
                 &AccountSid=AC3f9d2c41b7e85a06d1c4f0e9a2b7d315&ApiVersion=2010-04-01"
            );
            let signature = compute_signature(
                &secret,
                SigningAlgorithm::HmacSha1,
                &url,
                &SortedParams::from_form(body.as_bytes()),
            );
            Signed {
                body: bytes::Bytes::from(body),
                signature,
            }
        })
        .collect()
}

#[derive(Debug, Default)]
struct Outcome {
    latencies_us: Vec<u32>,
    ok: usize,
    failed: usize,
    first_failure: Option<String>,
}

async fn fire(args: &Args, requests: Arc<Vec<Signed>>, label: &str) -> Result<(), String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let url = format!("{}/webhooks/twilio/status", args.hub);
    let next = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + Duration::from_secs(args.seconds_max);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency {
        let (client, url, next, requests) =
            (client.clone(), url.clone(), next.clone(), requests.clone());
        tasks.spawn(async move {
            let mut outcome = Outcome::default();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= requests.len() || Instant::now() > deadline {
                    break;
                }
                let request = &requests[index];
                let sent = Instant::now();
                let result = client
                    .post(&url)
                    .header("Content-Type", "application/x-www-form-urlencoded")
                    .header("X-Twilio-Signature", &request.signature)
                    .body(request.body.clone())
                    .send()
                    .await;
                let latency = sent.elapsed();
                match result {
                    Ok(response) if response.status().is_success() => {
                        // Drain the (empty) body so the connection is reused.
                        let _ = response.bytes().await;
                        outcome.ok += 1;
                        outcome
                            .latencies_us
                            .push(u32::try_from(latency.as_micros()).unwrap_or(u32::MAX));
                    }
                    Ok(response) => {
                        outcome.failed += 1;
                        outcome
                            .first_failure
                            .get_or_insert_with(|| format!("HTTP {}", response.status()));
                    }
                    Err(error) => {
                        outcome.failed += 1;
                        outcome
                            .first_failure
                            .get_or_insert_with(|| error.to_string());
                    }
                }
            }
            outcome
        });
    }
    let mut all = Outcome::default();
    while let Some(result) = tasks.join_next().await {
        let outcome = result.map_err(|e| e.to_string())?;
        all.latencies_us.extend(outcome.latencies_us);
        all.ok += outcome.ok;
        all.failed += outcome.failed;
        if all.first_failure.is_none() {
            all.first_failure = outcome.first_failure;
        }
    }
    let elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    let percentile = |p: f64| -> f64 {
        if all.latencies_us.is_empty() {
            return f64::NAN;
        }
        let rank = ((all.latencies_us.len() as f64) * p).ceil() as usize;
        let index = rank.clamp(1, all.latencies_us.len()) - 1;
        f64::from(all.latencies_us[index]) / 1000.0
    };
    println!(
        "{label}: {} ok, {} failed in {:.2} s = {:.0} req/s; latency ms p50 {:.2}, p90 {:.2}, p99 {:.2}, max {:.2} (c={})",
        all.ok,
        all.failed,
        elapsed.as_secs_f64(),
        all.ok as f64 / elapsed.as_secs_f64(),
        percentile(0.50),
        percentile(0.90),
        percentile(0.99),
        percentile(1.0),
        args.concurrency,
    );
    if let Some(failure) = all.first_failure {
        println!("{label}: first failure: {failure}");
    }
    if all.ok + all.failed < requests.len() {
        println!(
            "{label}: stopped at --seconds-max after {} of {} requests",
            all.ok + all.failed,
            requests.len()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("cannot start the runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signing = Instant::now();
    let requests = Arc::new(presign(&args));
    println!(
        "pre-signed {} distinct status callbacks in {:.2} s",
        requests.len(),
        signing.elapsed().as_secs_f64()
    );
    let result = runtime.block_on(async {
        fire(&args, requests.clone(), "distinct").await?;
        if args.duplicates {
            fire(&args, requests.clone(), "duplicates").await?;
        }
        Ok::<(), String>(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("{error}");
            ExitCode::FAILURE
        }
    }
}
