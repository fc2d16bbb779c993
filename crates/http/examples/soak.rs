//! Soak driver: mixed webhooks and commands at a fixed rate against a running `wagate serve` on
//! loopback, for a bounded time, sampling the hub's resident memory and open file descriptors
//! from /proc and judging at the end whether they stayed flat. `just soak` starts the release hub
//! and runs this; not in CI (it takes minutes).
//!
//! ```sh
//! cargo run --release -p wagate-http --example soak -- --hub http://127.0.0.1:18081 \
//!     --public-url https://hub.example.com --twilio-auth-token 12345 \
//!     --meta-app-secret soak-meta --api-token soak --pid "$(pgrep -n wagate)" --minutes 30
//! ```
//!
//! Traffic, per 100 requests: 35 signed Twilio status callbacks (distinct `MessageSid`s), 20
//! signed Twilio inbound messages, 15 signed Meta webhooks (inbound texts and statuses), 10
//! opt-ins, 10 sends, 10 contact reads. Contacts come from a fixed population (`--contacts`):
//! the soak models a steady business, not an ever-growing one, so what must stay flat is what
//! grows with history alone. Sends alternate between dry runs (every rule evaluated, nothing
//! recorded) and sends to contacts never opted in (refused and recorded): with `--no-dispatch`
//! an allowed send would stay open work forever, and open work is allowed to cost memory.
//!
//! Signing uses the providers' own helpers (`twilio::compute_signature`,
//! `meta::compute_signature`), as the load example does.
//!
//! Flatness: the mean RSS of the last third of the samples may exceed the mean of the middle
//! third by at most `--rss-tolerance` percent (default 10), and open descriptors other than
//! sockets by at most `--fd-tolerance` (default 16). Sockets are held to a bound instead (the
//! in-flight limit plus some slack): how many are open at a sample follows the requests in flight
//! at that instant, so their mean is noise, not a trend. The first third is warm-up (allocator
//! arenas, sled's cache filling up to its configured size).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng, RngCore};
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::{meta, Secret};

const MINUTES_MAX: u64 = 24 * 60;
const RATE_MAX: u64 = 20_000;
const IN_FLIGHT_MAX: usize = 256;
/// Sockets a hub may hold beyond one per request in flight: its listener, and connections the
/// client has finished with but not yet closed.
const SOCKETS_SLACK: u64 = 64;

#[derive(Debug)]
struct Args {
    hub: String,
    public_url: String,
    twilio_auth_token: String,
    meta_app_secret: String,
    api_token: String,
    pid: u32,
    minutes: f64,
    rate: u64,
    sample_seconds: u64,
    contacts: u64,
    rss_tolerance: f64,
    fd_tolerance: f64,
}

fn usage() -> &'static str {
    "usage: soak --hub http://127.0.0.1:PORT --public-url URL --twilio-auth-token T \
     --meta-app-secret S --api-token TOKEN --pid HUB_PID [--minutes M (default 30)] \
     [--rate REQ_PER_S (default 1000)] [--sample-seconds S (default 5)] \
     [--contacts N (default 5000)] [--rss-tolerance PERCENT (default 10)] \
     [--fd-tolerance COUNT (default 16)]"
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        hub: String::new(),
        public_url: String::new(),
        twilio_auth_token: String::new(),
        meta_app_secret: String::new(),
        api_token: String::new(),
        pid: 0,
        minutes: 30.0,
        rate: 1000,
        sample_seconds: 5,
        contacts: 5000,
        rss_tolerance: 10.0,
        fd_tolerance: 16.0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        fn number<T: std::str::FromStr>(flag: &str, raw: String) -> Result<T, String> {
            raw.parse().map_err(|_| format!("{flag}: not a number"))
        }
        match flag.as_str() {
            "--hub" => args.hub = value()?,
            "--public-url" => args.public_url = value()?,
            "--twilio-auth-token" => args.twilio_auth_token = value()?,
            "--meta-app-secret" => args.meta_app_secret = value()?,
            "--api-token" => args.api_token = value()?,
            "--pid" => args.pid = number(&flag, value()?)?,
            "--minutes" => args.minutes = number(&flag, value()?)?,
            "--rate" => args.rate = number(&flag, value()?)?,
            "--sample-seconds" => args.sample_seconds = number(&flag, value()?)?,
            "--contacts" => args.contacts = number(&flag, value()?)?,
            "--rss-tolerance" => args.rss_tolerance = number(&flag, value()?)?,
            "--fd-tolerance" => args.fd_tolerance = number(&flag, value()?)?,
            "-h" | "--help" => return Err(usage().into()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    args.hub = args.hub.trim_end_matches('/').to_owned();
    args.public_url = args.public_url.trim_end_matches('/').to_owned();
    let loopback = ["http://127.0.0.1:", "http://localhost:"]
        .iter()
        .any(|prefix| args.hub.starts_with(prefix));
    if !loopback {
        return Err(format!("--hub must be a loopback URL\n{}", usage()));
    }
    for (name, value) in [
        ("--public-url", &args.public_url),
        ("--twilio-auth-token", &args.twilio_auth_token),
        ("--meta-app-secret", &args.meta_app_secret),
        ("--api-token", &args.api_token),
    ] {
        if value.is_empty() {
            return Err(format!("{name} is required\n{}", usage()));
        }
    }
    if args.pid == 0 {
        return Err(format!("--pid is required\n{}", usage()));
    }
    if !(args.minutes > 0.0 && args.minutes <= MINUTES_MAX as f64) {
        return Err(format!("--minutes must be in (0, {MINUTES_MAX}]"));
    }
    if !(1..=RATE_MAX).contains(&args.rate) {
        return Err(format!("--rate must be 1..={RATE_MAX}"));
    }
    args.sample_seconds = args.sample_seconds.max(1);
    args.contacts = args.contacts.clamp(1, 1_000_000);
    Ok(args)
}

/// The kinds of request the soak sends, in the order of the per-100 mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    TwilioStatus,
    TwilioInbound,
    MetaWebhook,
    OptIn,
    Send,
    ContactRead,
}

impl Kind {
    fn pick(n: u64) -> Self {
        match n % 100 {
            0..35 => Self::TwilioStatus,
            35..55 => Self::TwilioInbound,
            55..70 => Self::MetaWebhook,
            70..80 => Self::OptIn,
            80..90 => Self::Send,
            _ => Self::ContactRead,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::TwilioStatus => "twilio status",
            Self::TwilioInbound => "twilio inbound",
            Self::MetaWebhook => "meta webhook",
            Self::OptIn => "opt-in",
            Self::Send => "send",
            Self::ContactRead => "contact read",
        }
    }
}

/// Builds request number `n`: everything that differs between requests comes from `n` and the
/// run's random prefix, so SIDs and wamids never repeat.
struct Traffic {
    args: Args,
    /// The published consent wording every opt-in cites.
    wording: String,
    run: u64,
    twilio: Secret,
    meta: Secret,
}

impl Traffic {
    /// A contact of the fixed population (Swiss test numbers `+4179…`).
    fn contact(&self, n: u64) -> String {
        format!("+4179{:07}", n % self.args.contacts)
    }

    /// A number outside the population, never opted in: sends to it are refused.
    fn stranger(&self, n: u64) -> String {
        format!("+4178{:07}", n % self.args.contacts)
    }

    fn request(&self, client: &reqwest::Client, n: u64, kind: Kind) -> reqwest::RequestBuilder {
        let hub = &self.args.hub;
        let contact = self.contact(n / 7);
        match kind {
            Kind::TwilioStatus => {
                let body = format!(
                    "MessageSid=SM{:016x}{n:016x}&MessageStatus=delivered&SmsStatus=delivered\
                     &To=whatsapp%3A{}&From=whatsapp%3A%2B15555550100\
                     &AccountSid=AC3f9d2c41b7e85a06d1c4f0e9a2b7d315&ApiVersion=2010-04-01",
                    self.run,
                    contact.replace('+', "%2B"),
                );
                self.twilio_form(client, "/webhooks/twilio/status", body)
            }
            Kind::TwilioInbound => {
                let body = format!(
                    "MessageSid=SM{:016x}{n:016x}&SmsMessageSid=SM{:016x}{n:016x}&NumMedia=0\
                     &MessageType=text&WaId={}&SmsStatus=received&Body=soak+message+{n}\
                     &To=whatsapp%3A%2B15555550100&From=whatsapp%3A{}\
                     &AccountSid=AC3f9d2c41b7e85a06d1c4f0e9a2b7d315&ApiVersion=2010-04-01",
                    self.run,
                    self.run,
                    contact.trim_start_matches('+'),
                    contact.replace('+', "%2B"),
                );
                self.twilio_form(client, "/webhooks/twilio/inbound", body)
            }
            Kind::MetaWebhook => {
                let value = if n % 2 == 0 {
                    format!(
                        r#""contacts":[{{"profile":{{"name":"Soak"}},"wa_id":"{wa}"}}],"messages":[{{"from":"{wa}","id":"wamid.soak{run:016x}{n:016x}","timestamp":"1795598102","type":"text","text":{{"body":"soak {n}"}}}}]"#,
                        wa = contact.trim_start_matches('+'),
                        run = self.run,
                    )
                } else {
                    format!(
                        r#""statuses":[{{"id":"wamid.soak{run:016x}{n:016x}","status":"delivered","timestamp":"1795598102","recipient_id":"{wa}"}}]"#,
                        wa = contact.trim_start_matches('+'),
                        run = self.run,
                    )
                };
                let body = format!(
                    r#"{{"object":"whatsapp_business_account","entry":[{{"id":"102938475610293","changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":"15555550100","phone_number_id":"109876543210987"}},{value}}},"field":"messages"}}]}}]}}"#
                );
                let signature = meta::compute_signature(&self.meta, body.as_bytes());
                client
                    .post(format!("{hub}/webhooks/meta"))
                    .header("Content-Type", "application/json")
                    .header("X-Hub-Signature-256", signature)
                    .body(body)
            }
            Kind::OptIn => client
                .post(format!("{hub}/v1/contacts/{contact}/opt-in"))
                .bearer_auth(&self.args.api_token)
                .header("Content-Type", "application/json")
                .body(format!(
                    r#"{{"source":"web_form","evidence":"https://example.com/forms/{n}","recorded_by":"soak","wording_version":"{}"}}"#,
                    self.wording
                )),
            Kind::Send => {
                let (to, query) = if n % 2 == 0 {
                    (contact, "?dry_run=true")
                } else {
                    (self.stranger(n), "")
                };
                client
                    .post(format!("{hub}/v1/messages{query}"))
                    .bearer_auth(&self.args.api_token)
                    .header("Content-Type", "application/json")
                    .body(format!(
                        r#"{{"to":"{to}","workflow":"appointment_scheduling","template":{{"content_sid":"HX0123456789abcdef0123456789abcdef","variables":{{"1":"Tuesday"}}}}}}"#
                    ))
            }
            Kind::ContactRead => client
                .get(format!("{hub}/v1/contacts/{contact}"))
                .bearer_auth(&self.args.api_token),
        }
    }

    fn twilio_form(
        &self,
        client: &reqwest::Client,
        path: &str,
        body: String,
    ) -> reqwest::RequestBuilder {
        let signature = compute_signature(
            &self.twilio,
            SigningAlgorithm::HmacSha1,
            &format!("{}{path}", self.args.public_url),
            &SortedParams::from_form(body.as_bytes()),
        );
        client
            .post(format!("{}{path}", self.args.hub))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("X-Twilio-Signature", signature)
            .body(body)
    }
}

/// Answers by kind and status (`0` = the request failed before an answer).
#[derive(Debug, Default)]
struct Tally {
    answers: parking_lot::Mutex<BTreeMap<(Kind, u16), u64>>,
    first_error: parking_lot::Mutex<Option<String>>,
}

impl Tally {
    fn record(&self, kind: Kind, status: u16) {
        *self.answers.lock().entry((kind, status)).or_default() += 1;
    }
}

/// One sample of the hub process.
#[derive(Debug, Clone, Copy)]
struct Sample {
    seconds: f64,
    rss_kib: u64,
    /// Open descriptors that are not sockets: files, sled's segments, pipes, eventfds.
    files: u64,
    /// Open sockets: the listener and the client's connections, whose number at the moment of
    /// the sample follows how many requests are in flight.
    sockets: u64,
}

fn sample(pid: u32, started: Instant) -> Result<Sample, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("cannot read /proc/{pid}/status (has the hub exited?): {e}"))?;
    let rss_kib = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| format!("no VmRSS line in /proc/{pid}/status"))?;
    let (mut files, mut sockets) = (0, 0);
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map_err(|e| format!("cannot list /proc/{pid}/fd: {e}"))?
    {
        // A descriptor closed between the listing and the readlink is simply not counted.
        let Ok(target) = entry.and_then(|entry| std::fs::read_link(entry.path())) else {
            continue;
        };
        if target.to_string_lossy().starts_with("socket:") {
            sockets += 1;
        } else {
            files += 1;
        }
    }
    Ok(Sample {
        seconds: started.elapsed().as_secs_f64(),
        rss_kib,
        files,
        sockets,
    })
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let (sum, count) = values.fold((0.0, 0u32), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        f64::NAN
    } else {
        sum / f64::from(count)
    }
}

/// Compares the last third of the samples with the middle third; `Err` names what grew.
fn judge(samples: &[Sample], args: &Args) -> Result<String, String> {
    if samples.len() < 6 {
        return Err(format!(
            "only {} samples: run longer or sample more often to judge flatness",
            samples.len()
        ));
    }
    let third = samples.len() / 3;
    let middle = &samples[third..2 * third];
    let last = &samples[samples.len() - third..];
    let rss = |s: &[Sample]| mean(s.iter().map(|x| x.rss_kib as f64 / 1024.0));
    let files = |s: &[Sample]| mean(s.iter().map(|x| x.files as f64));
    let (rss_mid, rss_last) = (rss(middle), rss(last));
    let (files_mid, files_last) = (files(middle), files(last));
    let rss_growth = (rss_last / rss_mid - 1.0) * 100.0;
    // Sockets are judged against a bound, not a trend: their count at a sample is the
    // connections open at that instant, which the client's in-flight limit bounds.
    let sockets_max = samples.iter().map(|x| x.sockets).max().unwrap_or(0);
    let sockets_bound = IN_FLIGHT_MAX as u64 + SOCKETS_SLACK;
    let summary = format!(
        "RSS mean {rss_mid:.1} MiB (middle third) -> {rss_last:.1} MiB (last third), {rss_growth:+.1} % \
         (tolerance {:.1} %); open files {files_mid:.1} -> {files_last:.1} (tolerance +{:.0}); \
         sockets at most {sockets_max} (bound {sockets_bound})",
        args.rss_tolerance, args.fd_tolerance
    );
    if rss_growth > args.rss_tolerance
        || files_last - files_mid > args.fd_tolerance
        || sockets_max > sockets_bound
    {
        Err(summary)
    } else {
        Ok(summary)
    }
}

/// A sender and an approved template, so that sends are evaluated against every rule rather than
/// refused for want of a sender. Answers other than 2xx stop the soak: the hub is not the one
/// `just soak` starts.
/// Registers the sender and template and publishes the consent wording the opt-ins cite;
/// answers the wording's version.
async fn setup(client: &reqwest::Client, args: &Args) -> Result<String, String> {
    let hub = &args.hub;
    let steps = [
        (
            format!("{hub}/v1/senders"),
            r#"{"address":"whatsapp:+15555550100","provider":"twilio"}"#,
        ),
        (
            format!("{hub}/v1/senders/whatsapp:+15555550100/authorize"),
            r#"{"by":"soak"}"#,
        ),
        (
            format!("{hub}/v1/templates"),
            r#"{"content_sid":"HX0123456789abcdef0123456789abcdef","name":"soak_reminder","language":"en","category":"utility","placeholders":["1"]}"#,
        ),
        (
            format!("{hub}/v1/templates/HX0123456789abcdef0123456789abcdef/status"),
            r#"{"status":"approved"}"#,
        ),
    ];
    for (url, body) in steps {
        let response = client
            .post(&url)
            .bearer_auth(&args.api_token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| format!("setup {url}: {e}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            return Err(format!("setup {url}: HTTP {status}: {text}"));
        }
    }
    let url = format!("{hub}/v1/consent/wordings");
    let response = client
        .post(&url)
        .bearer_auth(&args.api_token)
        .header("Content-Type", "application/json")
        .body(r#"{"business":"Soak Homes","language":"en","text":"I agree to receive WhatsApp messages from Soak Homes."}"#)
        .send()
        .await
        .map_err(|e| format!("setup {url}: {e}"))?;
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    if !status.is_success() {
        return Err(format!("setup {url}: HTTP {status}: {text}"));
    }
    let wording: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| format!("setup {url}: {e}"))?;
    wording["version"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| format!("setup {url}: no version in {text}"))
}

async fn run(args: Args) -> Result<bool, String> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(IN_FLIGHT_MAX)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let wording = setup(&client, &args).await?;
    let traffic = Arc::new(Traffic {
        wording,
        run: rand::thread_rng().next_u64(),
        twilio: Secret::new(args.twilio_auth_token.clone()),
        meta: Secret::new(args.meta_app_secret.clone()),
        args,
    });
    let args = &traffic.args;
    let tally = Arc::new(Tally::default());
    let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_MAX));
    let behind = Arc::new(AtomicU64::new(0));
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    let started = Instant::now();
    let mut samples = vec![sample(args.pid, started)?];
    println!(
        "soak: {} req/s for {:.1} min against {} (pid {}); sampling every {} s",
        args.rate, args.minutes, args.hub, args.pid, args.sample_seconds
    );
    println!("    t_s   rss_MiB  files  sockets  sent_req/s  behind");

    // A 10 ms tick issues whatever the fixed rate owes by now, so the rate holds on average
    // even when a tick is late; a request with no free in-flight slot is counted as "behind"
    // (the hub is not keeping up) rather than queued, so the offered rate never bursts.
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut issued: u64 = 0;
    let mut next_sample = Duration::from_secs(args.sample_seconds);
    let mut issued_at_sample = 0u64;
    let mut rng = rand::thread_rng();
    while started.elapsed() < duration {
        tick.tick().await;
        let owed = (started.elapsed().as_secs_f64() * args.rate as f64) as u64;
        while issued < owed {
            let n = issued;
            issued += 1;
            // Shuffle the mix so kinds interleave instead of arriving in blocks of 35.
            let kind = Kind::pick(rng.gen_range(0..100));
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                behind.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            let request = traffic.request(&client, n, kind);
            let tally = tally.clone();
            tokio::spawn(async move {
                let status = match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        // Drain the body so the connection is reused.
                        let _ = response.bytes().await;
                        status
                    }
                    Err(error) => {
                        tally
                            .first_error
                            .lock()
                            .get_or_insert_with(|| error.to_string());
                        0
                    }
                };
                tally.record(kind, status);
                drop(permit);
            });
        }
        if started.elapsed() >= next_sample {
            let s = sample(args.pid, started)?;
            let sent = (issued - issued_at_sample) as f64 / args.sample_seconds as f64;
            issued_at_sample = issued;
            println!(
                "{:7.0} {:9.1} {:6} {:8} {:11.0} {:7}",
                s.seconds,
                s.rss_kib as f64 / 1024.0,
                s.files,
                s.sockets,
                sent,
                behind.load(Ordering::Relaxed)
            );
            samples.push(s);
            next_sample += Duration::from_secs(args.sample_seconds);
        }
    }
    // Let the requests in flight finish before the verdict.
    let _ = permits.acquire_many(IN_FLIGHT_MAX as u32).await;

    println!("answers by kind and status (0 = no answer):");
    let mut non_2xx = 0u64;
    for ((kind, status), count) in tally.answers.lock().iter() {
        println!("  {:<15} {status:>3}  {count}", kind.name());
        // A refused send (422) is the expected answer for a stranger or a dry run's refusal.
        let expected = (200..300).contains(status) || (*kind == Kind::Send && *status == 422);
        if !expected {
            non_2xx += count;
        }
    }
    if let Some(error) = tally.first_error.lock().as_ref() {
        println!("first transport error: {error}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "offered {issued} requests in {elapsed:.0} s = {:.0} req/s; {} not sent (hub behind); \
         {non_2xx} unexpected answers",
        issued as f64 / elapsed,
        behind.load(Ordering::Relaxed)
    );
    match judge(&samples, args) {
        Ok(summary) => {
            println!("flat: {summary}");
            Ok(non_2xx == 0)
        }
        Err(summary) => {
            println!("NOT FLAT: {summary}");
            Ok(false)
        }
    }
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
    match runtime.block_on(run(args)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::FAILURE
        }
    }
}
