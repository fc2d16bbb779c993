//! `wagate demo`: a hub on a temporary database with the sandbox provider (the real
//! `wagate serve`, started as a child of this process on 127.0.0.1), driven through the whole
//! compliance story over its HTTP API and signed webhooks, then audited. Nothing is left behind:
//! the child is killed and the temporary directory removed, whatever happens.

use std::collections::BTreeMap;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{bail, Context as _};
use serde::Serialize;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::time::{sleep, timeout, Instant};
use wagate_api as api;
use wagate_providers::twilio::{compute_signature, SigningAlgorithm, SortedParams};
use wagate_providers::Secret;

use crate::audit;
use crate::client::{Answer, HubClient};

const SENDER: &str = "whatsapp:+15550001111";
const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";
const LEA: &str = "+41790000001";
const MAX: &str = "+41790000002";

#[derive(Debug, clap::Args)]
#[command(
    after_help = "The demo starts `wagate serve` on 127.0.0.1 (a free port) with a temporary database \
and the sandbox provider, walks through the scenario, audits the log, then stops the hub and removes \
the database. Exit 0 when every step turned out as expected, 1 otherwise."
)]
pub struct DemoArgs {
    /// Longest wait for the hub to start and for each message to reach its status, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    timeout: u64,
    /// After the scenario, keep the hub running (until Ctrl-C) to look at it on the ops page.
    #[arg(long)]
    keep: bool,
}

/// The `wagate serve` child, killed when dropped.
struct Hub {
    child: Child,
    url: String,
    public_url: String,
    api_token: String,
    agent_token: String,
    auditor_token: String,
    twilio_token: String,
}

impl Hub {
    async fn start(data: &std::path::Path, wait: Duration) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find the wagate binary itself")?;
        let mut command = Command::new(exe);
        command
            .arg("serve")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--data")
            .arg(data)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // The demo runs on its own settings: no credentials (sandbox mode), default workflows.
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("WAGATE_") {
                command.env_remove(&key);
            }
        }
        command.env("WAGATE_LOG", "warn");
        let mut child = command.spawn().context("cannot start `wagate serve`")?;
        let stdout = child
            .stdout
            .take()
            .context("no stdout from `wagate serve`")?;
        let stderr = child
            .stderr
            .take()
            .context("no stderr from `wagate serve`")?;
        // Keep the hub's warnings (shown if it fails) without letting its pipe fill up.
        let errors = tokio::spawn(async move {
            let mut lines = BufReader::new(stderr).lines();
            let mut kept: Vec<String> = Vec::new();
            while let Ok(Some(line)) = lines.next_line().await {
                if kept.len() < 50 {
                    kept.push(line);
                }
            }
            kept
        });
        let mut lines = BufReader::new(stdout).lines();
        let mut settings: BTreeMap<String, String> = BTreeMap::new();
        let read = timeout(wait, async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = line.strip_prefix("wagate listening on ") {
                    settings.insert("url".into(), url.trim().into());
                } else if let Some((key, value)) = line.split_once(": ") {
                    settings.insert(key.trim().into(), value.trim().into());
                }
                let ready = [
                    "url",
                    "public url",
                    "api token",
                    "agent token",
                    "auditor token",
                    "sandbox twilio auth token",
                ]
                .iter()
                .all(|key| settings.contains_key(*key));
                if ready {
                    return Ok::<bool, std::io::Error>(true);
                }
            }
            Ok(false)
        })
        .await;
        let started = matches!(read, Ok(Ok(true)));
        if !started {
            let _ = child.start_kill();
            let _ = child.wait().await;
            let log = errors.await.unwrap_or_default().join("\n");
            bail!(
                "`wagate serve` did not start{}{}",
                if read.is_err() {
                    format!(" within {} s", wait.as_secs())
                } else {
                    String::new()
                },
                if log.is_empty() {
                    String::new()
                } else {
                    format!(":\n{log}")
                }
            );
        }
        // Keep reading stdout so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        let take = |key: &str| settings.get(key).cloned().unwrap_or_default();
        Ok(Self {
            url: take("url"),
            public_url: take("public url"),
            api_token: take("api token"),
            agent_token: take("agent token"),
            auditor_token: take("auditor token"),
            twilio_token: take("sandbox twilio auth token"),
            child,
        })
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

struct Demo {
    /// The operator's client (consent, templates, senders).
    client: HubClient,
    /// The outreach agent's: it sends, and is refused anything an operator does.
    agent: HubClient,
    agent_token: String,
    /// The auditor's: read-only.
    auditor: HubClient,
    http: reqwest::Client,
    hub_url: String,
    public_url: String,
    twilio_token: Secret,
    wait: Duration,
    step: u32,
}

pub async fn run(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let wait = Duration::from_secs(args.timeout.max(1));
    let dir = tempfile::Builder::new()
        .prefix("wagate-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    println!("wagate demo: a hub with the sandbox provider on a temporary database");
    let hub = Hub::start(&dir.path().join("data"), wait).await?;
    println!(
        "  hub listening on {} (data in {})",
        hub.url,
        dir.path().display()
    );
    let scenario = async {
        let demo = Demo {
            client: HubClient::new(&hub.url, Some(hub.api_token.clone()))?,
            agent: HubClient::new(&hub.url, Some(hub.agent_token.clone()))?,
            agent_token: hub.agent_token.clone(),
            auditor: HubClient::new(&hub.url, Some(hub.auditor_token.clone()))?,
            http: reqwest::Client::new(),
            hub_url: hub.url.clone(),
            public_url: hub.public_url.clone(),
            twilio_token: Secret::new(hub.twilio_token.clone()),
            wait,
            step: 0,
        };
        demo.scenario().await
    };
    // Ctrl-C stops the scenario but not the clean-up.
    let result = tokio::select! {
        result = scenario => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if result.is_ok() {
        point_at_ops_page(&hub, args.keep).await;
    }
    hub.stop().await;
    let path = dir.path().to_path_buf();
    let removed = dir.close();
    match (&result, removed) {
        (_, Err(error)) => eprintln!("warning: could not remove {}: {error}", path.display()),
        (Ok(()), Ok(())) => println!(
            "\nhub stopped, {} removed: nothing left behind",
            path.display()
        ),
        (Err(_), Ok(())) => {}
    }
    result?;
    Ok(ExitCode::SUCCESS)
}

/// The demo's last words: where the ops page is and how to sign in. With `keep`, the demo's hub
/// stays up (its tokens printed, they die with it) until Ctrl-C.
async fn point_at_ops_page(hub: &Hub, keep: bool) {
    let ops = format!("{}/ops", hub.url.trim_end_matches('/'));
    println!("\nThe ops page shows all of this for people: refusals by rule, the send funnel, limits, the review queue.");
    if keep {
        // Listening before the lines that invite the interrupt: a Ctrl-C sent as soon as they are
        // read must not be missed (`ctrl_c()` only listens once first polled).
        let interrupted = interrupt();
        println!("  open {ops}");
        println!(
            "  sign in with the operator token {} (or the auditor token {}, read-only)",
            hub.api_token, hub.auditor_token
        );
        println!("  the hub keeps running until Ctrl-C, then it stops and its data is removed");
        interrupted.await;
    } else {
        // This hub stops now, so its address would lead nowhere: say how to get one that stays.
        println!("  `wagate demo --keep` keeps the demo's hub up and prints its page ({ops}) and a token;");
        println!(
            "  on your own hub (`wagate serve`) open http://HOST:PORT/ops and sign in with the"
        );
        println!("  operator token (WAGATE_API_TOKEN) or the auditor's (WAGATE_AUDITOR_TOKEN)");
    }
}

/// A future that completes on the next Ctrl-C (SIGINT), listening from the moment it is made.
#[cfg(unix)]
fn interrupt() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{signal, SignalKind};
    let listener = signal(SignalKind::interrupt());
    async move {
        match listener {
            Ok(mut listener) => {
                listener.recv().await;
            }
            Err(error) => {
                eprintln!("warning: cannot listen for Ctrl-C ({error}); stopping the hub now")
            }
        }
    }
}

#[cfg(not(unix))]
fn interrupt() -> impl std::future::Future<Output = ()> {
    async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            eprintln!("warning: cannot wait for Ctrl-C ({error}); stopping the hub now");
        }
    }
}

impl Demo {
    fn step(&mut self, text: &str) {
        self.step += 1;
        println!("\n{:>2}. {text}", self.step);
    }

    fn outcome(text: impl AsRef<str>) {
        println!("    ✓ {}", text.as_ref());
    }

    async fn post<B: Serialize>(
        &self,
        segments: &[&str],
        body: &B,
        what: &str,
    ) -> anyhow::Result<Answer> {
        self.client.post(segments, &[], &[], body, what).await
    }

    async fn ok<B: Serialize>(
        &self,
        segments: &[&str],
        body: &B,
        what: &str,
    ) -> anyhow::Result<Value> {
        match self.post(segments, body, what).await? {
            Answer::Ok(body) => Ok(body),
            Answer::Refused(refusal) => bail!(
                "{what} was refused unexpectedly: {}: {}",
                refusal.rule,
                refusal.message
            ),
        }
    }

    /// The agent records an opt-in: the hub must answer 403 `forbidden` and append nothing.
    /// Returns the role the hub named and the log's head (unchanged).
    async fn agent_opt_in_is_forbidden(&self, contact: &str) -> anyhow::Result<(String, u64)> {
        let before = self.head().await?;
        let url = self
            .agent
            .url(&["v1", "contacts", contact, "opt-in"], &[])?;
        let response = self
            .http
            .post(url)
            .bearer_auth(&self.agent_token)
            .json(&api::OptInRequest {
                source: "api".into(),
                evidence: "the agent says so".into(),
                recorded_by: "agent".into(),
                wording_version: Some("v1".into()),
                evidence_at: None,
            })
            .send()
            .await
            .context("POST /v1/contacts/…/opt-in")?;
        let status = response.status();
        let body: api::ErrorBody = response
            .json()
            .await
            .context("unexpected answer to the agent's opt-in")?;
        if status != reqwest::StatusCode::FORBIDDEN || body.error.code != "forbidden" {
            bail!(
                "the agent's opt-in was answered {status} {}, not 403 forbidden",
                body.error.code
            );
        }
        let after = self.head().await?;
        if after != before {
            bail!("the refused opt-in appended {} event(s)", after - before);
        }
        Ok((body.error.required_role.unwrap_or_default(), after))
    }

    /// The log's durable head (`/healthz`).
    async fn head(&self) -> anyhow::Result<u64> {
        let health: Value = self
            .http
            .get(format!("{}/healthz", self.hub_url))
            .send()
            .await
            .context("GET /healthz")?
            .json()
            .await
            .context("unexpected answer to GET /healthz")?;
        health["head"]
            .as_u64()
            .context("/healthz names no head position")
    }

    /// A send that must be queued; returns the message id.
    async fn send_queued(&self, body: &api::SendMessageRequest) -> anyhow::Result<String> {
        let answer = match self
            .agent
            .post(&["v1", "messages"], &[], &[], body, "POST /v1/messages")
            .await?
        {
            Answer::Ok(body) => body,
            Answer::Refused(refusal) => bail!(
                "POST /v1/messages was refused unexpectedly: {}: {}",
                refusal.rule,
                refusal.message
            ),
        };
        let sent: api::SendMessageResponse =
            serde_json::from_value(answer).context("unexpected answer to POST /v1/messages")?;
        Ok(sent.message_id)
    }

    /// A send that must be refused by `rule`; returns the hub's sentence.
    async fn send_refused(
        &self,
        body: &api::SendMessageRequest,
        rule: &str,
    ) -> anyhow::Result<String> {
        match self
            .agent
            .post(&["v1", "messages"], &[], &[], body, "POST /v1/messages")
            .await?
        {
            Answer::Refused(refusal) if refusal.rule == rule => Ok(refusal.message),
            Answer::Refused(refusal) => bail!(
                "expected a refusal by {rule}, got {}: {}",
                refusal.rule,
                refusal.message
            ),
            Answer::Ok(body) => {
                bail!("expected a refusal by {rule}, but the send was queued: {body}")
            }
        }
    }

    async fn message(&self, id: &str) -> anyhow::Result<api::MessageResponse> {
        let what = format!("GET /v1/messages/{id}");
        match self.client.get(&["v1", "messages", id], &what).await? {
            Answer::Ok(body) => {
                serde_json::from_value(body).with_context(|| format!("unexpected answer to {what}"))
            }
            Answer::Refused(refusal) => bail!("{what} refused: {}", refusal.message),
        }
    }

    async fn contact(&self, number: &str) -> anyhow::Result<api::ContactResponse> {
        let what = format!("GET /v1/contacts/{number}");
        match self.client.get(&["v1", "contacts", number], &what).await? {
            Answer::Ok(body) => {
                serde_json::from_value(body).with_context(|| format!("unexpected answer to {what}"))
            }
            Answer::Refused(refusal) => bail!("{what} refused: {}", refusal.message),
        }
    }

    /// Polls the message until it reaches `target` (printing each status it passes), bounded.
    async fn follow(&self, id: &str, target: &str) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.wait;
        let mut seen = String::new();
        loop {
            let message = self.message(id).await?;
            if message.status != seen {
                println!("    … {}", message.status);
                seen = message.status.clone();
            }
            if message.status == target {
                return Ok(());
            }
            if matches!(
                message.status.as_str(),
                "failed" | "undelivered" | "canceled"
            ) {
                let error = message
                    .last_error
                    .map(|e| format!(" ({}: {})", e.provider, e.message))
                    .unwrap_or_default();
                bail!(
                    "message {id} ended {}{error} instead of {target}",
                    message.status
                );
            }
            if Instant::now() >= deadline {
                let hint = if message.attempts == 0 {
                    ": no dispatcher claimed it (is the dispatcher running inside `wagate serve`?)"
                } else {
                    ""
                };
                bail!(
                    "message {id} is still {} after {} s, not {target}{hint}",
                    message.status,
                    self.wait.as_secs()
                );
            }
            sleep(Duration::from_millis(100)).await;
        }
    }

    /// Posts an inbound WhatsApp message to the hub's Twilio webhook, signed as Twilio signs.
    async fn inbound(&self, from: &str, body: &str) -> anyhow::Result<()> {
        let sid = format!("SM{}", uuid::Uuid::now_v7().simple());
        let wa_id = from.trim_start_matches('+');
        let pairs: Vec<(&str, String)> = vec![
            ("SmsMessageSid", sid.clone()),
            ("NumMedia", "0".into()),
            ("ProfileName", "Demo Contact".into()),
            ("MessageType", "text".into()),
            ("SmsSid", sid.clone()),
            ("WaId", wa_id.into()),
            ("SmsStatus", "received".into()),
            ("Body", body.into()),
            ("To", SENDER.into()),
            ("NumSegments", "1".into()),
            ("MessageSid", sid),
            ("AccountSid", format!("AC{}", "0".repeat(32))),
            ("From", format!("whatsapp:{from}")),
            ("ApiVersion", "2010-04-01".into()),
        ];
        let path = "/webhooks/twilio/inbound";
        let signed_url = format!("{}{path}", self.public_url.trim_end_matches('/'));
        let signature = compute_signature(
            &self.twilio_token,
            SigningAlgorithm::HmacSha1,
            &signed_url,
            &SortedParams::from_pairs(pairs.iter().map(|(k, v)| (*k, v.clone()))),
        );
        let url = format!("{}{path}", self.hub_url.trim_end_matches('/'));
        let response = self
            .http
            .post(&url)
            .header("X-Twilio-Signature", signature)
            .form(&pairs)
            .send()
            .await
            .with_context(|| format!("cannot post the inbound webhook to {url}"))?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            bail!("the hub answered {status} to the signed inbound webhook: {text}");
        }
        Ok(())
    }

    async fn scenario(mut self) -> anyhow::Result<()> {
        self.step(&format!(
            "An operator registers the sender {SENDER} (sandbox) and authorizes it"
        ));
        self.ok(
            &["v1", "senders"],
            &api::RegisterSenderRequest {
                address: SENDER.into(),
                provider: "sandbox".into(),
                portfolio: None,
                meta_phone_number_id: None,
                upgraded: None,
                rate_per_second: None,
            },
            "POST /v1/senders",
        )
        .await?;
        let sender = self
            .ok(
                &["v1", "senders", SENDER, "authorize"],
                &api::AuthorizeSenderRequest {
                    by: Some("ops@example.com".into()),
                },
                "POST /v1/senders/…/authorize",
            )
            .await?;
        let sender: api::SenderView = serde_json::from_value(sender)?;
        if !sender.may_send {
            bail!("the sender still may not send after its authorization");
        }
        Self::outcome("authorized by ops@example.com: it may send");

        self.step(&format!(
            "The template {TEMPLATE} (viewing_reminder, utility, placeholders 1 and 2) is registered, then approved"
        ));
        self.ok(
            &["v1", "templates"],
            &api::RegisterTemplateRequest {
                content_sid: Some(TEMPLATE.into()),
                name: "viewing_reminder".into(),
                language: "en".into(),
                category: "utility".into(),
                placeholders: vec!["1".into(), "2".into()],
                ..Default::default()
            },
            "POST /v1/templates",
        )
        .await?;
        let template = self
            .ok(
                &["v1", "templates", TEMPLATE, "status"],
                &api::TemplateStatusRequest {
                    status: "approved".into(),
                    reason: Some("approved by Meta".into()),
                },
                "POST /v1/templates/…/status",
            )
            .await?;
        let template: api::TemplateView = serde_json::from_value(template)?;
        Self::outcome(format!(
            "status {}",
            template.status.as_deref().unwrap_or("unknown")
        ));

        self.step(&format!("Lea ({LEA}) opts in through the web form"));
        // The form's consent text, published first: every opt-in cites a published wording.
        let wording = self
            .ok(
                &["v1", "consent", "wordings"],
                &api::PublishWordingRequest {
                    business: "Acme Homes".into(),
                    language: "en".into(),
                    text: "I agree to receive WhatsApp messages from Acme Homes about my \
                           viewings."
                        .into(),
                },
                "POST /v1/consent/wordings",
            )
            .await?;
        let wording: api::ConsentWordingView = serde_json::from_value(wording)?;
        self.ok(
            &["v1", "contacts", LEA, "opt-in"],
            &api::OptInRequest {
                source: "web_form".into(),
                evidence: "https://example.com/forms/viewing?id=123".into(),
                recorded_by: "website".into(),
                wording_version: Some(wording.version),
                evidence_at: None,
            },
            "POST /v1/contacts/…/opt-in",
        )
        .await?;
        let lea = self.contact(LEA).await?;
        Self::outcome(format!(
            "consent {} (receipt: web_form, wording v1)",
            lea.consent.state
        ));

        self.step(&format!(
            "The agent tries to record Max's ({MAX}) opt-in itself, with the agent token"
        ));
        let (required_role, appended) = self.agent_opt_in_is_forbidden(MAX).await?;
        Self::outcome(format!(
            "403 forbidden: consent is the {required_role}'s to record; nothing appended \
             ({appended} events before and after)"
        ));

        self.step("The agent sends Lea the viewing reminder template (appointment_scheduling)");
        let template_send = api::SendMessageRequest {
            to: LEA.into(),
            from: None,
            workflow: Some("appointment_scheduling".into()),
            template: Some(api::TemplateContentRequest {
                id: None,
                media: Vec::new(),
                content_sid: Some(TEMPLATE.into()),
                variables: [("1", "Lea"), ("2", "Thu 10:00")]
                    .map(|(key, value)| (key.to_owned(), value.to_owned()))
                    .into(),
            }),
            text: None,
            media: None,
            interactive: None,
        };
        let first = self.send_queued(&template_send).await?;
        println!("    queued as message {first}; the dispatcher hands it to the sandbox, which calls back:");
        self.follow(&first, "read").await?;
        Self::outcome("delivered and read");

        self.step(&format!(
            "The agent tries a freeform reply to Max ({MAX}), who never wrote"
        ));
        let reply = api::SendMessageRequest {
            to: MAX.into(),
            from: None,
            workflow: Some("lead_qualification".into()),
            template: None,
            text: Some("Hi Max, the flat is still available.".into()),
            media: None,
            interactive: None,
        };
        let sentence = self.send_refused(&reply, "window_closed").await?;
        Self::outcome(format!("refused by window_closed: {sentence}"));

        self.step(
            "Max writes \"Is the flat on Bahnhofstrasse still available?\" (signed Twilio webhook)",
        );
        self.inbound(MAX, "Is the flat on Bahnhofstrasse still available?")
            .await?;
        let max = self.contact(MAX).await?;
        Self::outcome(format!(
            "recorded; the 24 h window is open until {}",
            max.window_open_until.as_deref().unwrap_or("?")
        ));

        self.step("The agent's freeform reply to Max, now inside the window");
        let second = self.send_queued(&reply).await?;
        println!("    queued as message {second}:");
        self.follow(&second, "delivered").await?;
        Self::outcome("allowed and delivered");

        self.step("Lea replies STOP (signed Twilio webhook)");
        self.inbound(LEA, "STOP").await?;
        let lea = self.contact(LEA).await?;
        if lea.consent.state != "opted_out" {
            bail!(
                "Lea's consent is {} after STOP, not opted_out",
                lea.consent.state
            );
        }
        Self::outcome("Lea is opted out (source keyword)");

        self.step("The agent tries the template again");
        let sentence = self.send_refused(&template_send, "opted_out").await?;
        Self::outcome(format!("refused by opted_out: {sentence}"));

        self.step("Lea changes her mind and sends START (signed Twilio webhook)");
        self.inbound(LEA, "START").await?;
        let lea = self.contact(LEA).await?;
        if lea.consent.state != "opted_in" {
            bail!(
                "Lea's consent is {} after START, not opted_in",
                lea.consent.state
            );
        }
        Self::outcome("Lea is opted in again (source keyword)");
        let again = self.send_queued(&template_send).await?;
        println!("    the template is allowed again, queued as message {again}:");
        self.follow(&again, "delivered").await?;
        Self::outcome("dispatched and delivered");

        self.step("An auditor replays the whole log and checks every invariant");
        let summary = audit::audit_hub(&self.auditor).await?;
        for line in audit::render(&format!("hub {}", self.auditor.base()), &summary).lines() {
            println!("    {line}");
        }
        if !summary.is_clean() {
            bail!("the audit found {} violation(s)", summary.violations_total);
        }
        Self::outcome("nothing wrong");
        Ok(())
    }
}
