//! A small Prometheus registry: the handful of series `GET /metrics` serves, in the text
//! exposition format (version 0.0.4).
//!
//! - `wagate_http_requests_total{route, verdict}`: requests by matched route and verdict
//!   (`ok`, `duplicate`, `forbidden`, `malformed`, `too_large`, `unauthorized`, `invalid`,
//!   `not_found`, `refused`, `conflict`, `unavailable`, `error`, …);
//! - `wagate_http_request_duration_seconds{route}`: latency histogram;
//! - `wagate_refusals_total{rule}`: sends and claims refused, by compliance rule;
//! - `wagate_events_appended_total{source}`: events appended by webhooks and by commands;
//! - `wagate_webhook_duplicates_total{provider}`: webhook de-duplication hits;
//! - `wagate_webhook_items_rejected_total{provider}`: items of a batch that could not be used;
//! - `wagate_log_head_position`, `wagate_store_commits_total`,
//!   `wagate_store_committed_requests_total`, `wagate_store_writer_seconds_total{stage}`
//!   (prepare, apply, flush, sync): the store's own counters.
//! - `wagate_store_packed_position`: the last log position packed into blocks (sled).
//! - `wagate_store_keys_packed_total`: idempotency keys moved into blocks since start (sled).
//! - `wagate_store_failed`: 1 once the store is in the failed state (see docs/storage.md).
//!
//! From the hub's counts projection (the numbers of the ops page; a reader of the log restored
//! from its own snapshot at start, so they survive a restart), see [`render_counts`]: `wagate_refusals_recorded{rule, window}`,
//! `wagate_send_funnel_total{workflow, template, stage}`, `wagate_dispatch_outcomes_total{outcome}`,
//! `wagate_dispatch_retries_total`, `wagate_dispatch_in_doubt_expired_total`,
//! `wagate_dispatch_claims_awaiting_outcome`,
//! `wagate_messaging_limit_used{portfolio}`, `wagate_messaging_limit{portfolio}`,
//! `wagate_review_items{reason, state}`. From the cost ledger, see [`render_costs`]:
//! `wagate_cost_total{currency, part}`, `wagate_cost_unpriced_messages_total`.
//!
//! Anything any crate records through the `metrics` facade (`metrics::counter!(…)`) is rendered
//! after these by the process-wide Prometheus recorder ([`facade`]), among them
//! `wagate_alerts_sent_total`, `wagate_alerts_failed_total` and
//! `wagate_aggregate_cache_entries` (aggregates in the hub's load cache).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use parking_lot::Mutex;
use wagate_app::{format_micros, CostReport, OpsCounts, Stage, StoreStats};

use crate::ops::review::ReviewItemView;

/// Histogram bucket upper bounds, seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Histogram {
    /// Count per bucket (not cumulative); the last slot is +Inf.
    buckets: [u64; BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let index = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        self.buckets[index] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct RouteStats {
    verdicts: BTreeMap<&'static str, u64>,
    latency: Histogram,
}

#[derive(Debug, Default)]
pub struct Metrics {
    routes: Mutex<BTreeMap<String, RouteStats>>,
    refusals: Mutex<BTreeMap<&'static str, u64>>,
    duplicates: Mutex<BTreeMap<&'static str, u64>>,
    items_rejected: Mutex<BTreeMap<&'static str, u64>>,
    appended_webhook: AtomicU64,
    appended_command: AtomicU64,
}

/// Where appended events came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Webhook,
    Command,
}

impl Metrics {
    pub fn request(&self, route: &str, verdict: &'static str, latency: Duration) {
        let mut routes = self.routes.lock();
        let stats = match routes.get_mut(route) {
            Some(stats) => stats,
            None => routes.entry(route.to_owned()).or_default(),
        };
        *stats.verdicts.entry(verdict).or_default() += 1;
        stats.latency.observe(latency.as_secs_f64());
    }

    pub fn refusal(&self, rule: &'static str) {
        *self.refusals.lock().entry(rule).or_default() += 1;
    }

    pub fn duplicate(&self, provider: &'static str) {
        *self.duplicates.lock().entry(provider).or_default() += 1;
    }

    pub fn item_rejected(&self, provider: &'static str, count: u64) {
        if count > 0 {
            *self.items_rejected.lock().entry(provider).or_default() += count;
        }
    }

    pub fn appended(&self, source: Source, events: usize) {
        let counter = match source {
            Source::Webhook => &self.appended_webhook,
            Source::Command => &self.appended_command,
        };
        counter.fetch_add(events as u64, Ordering::Relaxed);
    }

    /// The text exposition, with the store's counters.
    pub fn render(&self, store: &StoreStats) -> String {
        let mut out = String::with_capacity(4096);
        // Writing to a String cannot fail: the results are ignored below for that reason.
        let _ = writeln!(
            out,
            "# HELP wagate_http_requests_total HTTP requests by matched route and verdict.\n\
             # TYPE wagate_http_requests_total counter"
        );
        let routes = self.routes.lock();
        for (route, stats) in routes.iter() {
            for (verdict, count) in &stats.verdicts {
                let _ = writeln!(
                    out,
                    "wagate_http_requests_total{{route=\"{}\",verdict=\"{verdict}\"}} {count}",
                    escape(route)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP wagate_http_request_duration_seconds HTTP request latency by matched route.\n\
             # TYPE wagate_http_request_duration_seconds histogram"
        );
        for (route, stats) in routes.iter() {
            let route = escape(route);
            let mut cumulative = 0;
            for (bound, count) in BUCKETS.iter().zip(stats.latency.buckets.iter()) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "wagate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "wagate_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                stats.latency.count
            );
            let _ = writeln!(
                out,
                "wagate_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                stats.latency.sum
            );
            let _ = writeln!(
                out,
                "wagate_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                stats.latency.count
            );
        }
        drop(routes);
        labelled(
            &mut out,
            "wagate_refusals_total",
            "Sends and claims refused, by compliance rule.",
            "rule",
            &self.refusals.lock(),
        );
        labelled(
            &mut out,
            "wagate_webhook_duplicates_total",
            "Webhook events recognised as already recorded.",
            "provider",
            &self.duplicates.lock(),
        );
        labelled(
            &mut out,
            "wagate_webhook_items_rejected_total",
            "Webhook items that could not be used (written to the webhook rejection log).",
            "provider",
            &self.items_rejected.lock(),
        );
        let _ = writeln!(
            out,
            "# HELP wagate_events_appended_total Events appended to the log through this server.\n\
             # TYPE wagate_events_appended_total counter\n\
             wagate_events_appended_total{{source=\"webhook\"}} {}\n\
             wagate_events_appended_total{{source=\"command\"}} {}",
            self.appended_webhook.load(Ordering::Relaxed),
            self.appended_command.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP wagate_log_head_position The durable log head.\n\
             # TYPE wagate_log_head_position gauge\n\
             wagate_log_head_position {}\n\
             # HELP wagate_store_commits_total Group commits (one fsync each) since start.\n\
             # TYPE wagate_store_commits_total counter\n\
             wagate_store_commits_total {}\n\
             # HELP wagate_store_committed_requests_total Requests answered by those commits.\n\
             # TYPE wagate_store_committed_requests_total counter\n\
             wagate_store_committed_requests_total {}\n\
             # HELP wagate_store_packed_position The last log position packed into blocks \
             (sled; docs/storage.md, \"Packing\").\n\
             # TYPE wagate_store_packed_position gauge\n\
             wagate_store_packed_position {}\n\
             # HELP wagate_store_keys_packed_total Idempotency keys moved into blocks since start \
             (sled; docs/storage.md, \"Packing idempotency keys\").\n\
             # TYPE wagate_store_keys_packed_total counter\n\
             wagate_store_keys_packed_total {}",
            store.head_position,
            store.commits,
            store.committed_requests,
            store.packed_position,
            store.keys_packed
        );
        let _ = writeln!(
            out,
            "# HELP wagate_store_failed 1 once a write failed and the store refuses further \
             writes (wagate serve then exits), else 0.\n\
             # TYPE wagate_store_failed gauge\n\
             wagate_store_failed {}",
            u8::from(store.failed)
        );
        let _ = writeln!(
            out,
            "# HELP wagate_store_writer_seconds_total Store writer time by stage since start.\n\
             # TYPE wagate_store_writer_seconds_total counter"
        );
        for (stage, micros) in [
            ("prepare", store.prepare_us),
            ("apply", store.apply_us),
            ("flush", store.flush_us),
            ("sync", store.sync_us),
        ] {
            let _ = writeln!(
                out,
                "wagate_store_writer_seconds_total{{stage=\"{stage}\"}} {}",
                micros as f64 / 1e6
            );
        }
        out
    }
}

/// The series built from the counts projection and the review queue, appended to `out`
/// (`review` is `None` when the queue could not be read: its series are left out).
pub fn render_counts(out: &mut String, counts: &OpsCounts, review: Option<&[ReviewItemView]>) {
    let _ = writeln!(
        out,
        "# HELP wagate_refusals_recorded Refusals recorded in the log by rule, over the last 24 h \
         or 7 days.\n# TYPE wagate_refusals_recorded gauge"
    );
    for (window, rules) in [("24h", &counts.refusals_24h), ("7d", &counts.refusals_7d)] {
        for (rule, count) in rules {
            let _ = writeln!(
                out,
                "wagate_refusals_recorded{{rule=\"{}\",window=\"{window}\"}} {count}",
                escape(rule)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP wagate_send_funnel_total Messages that reached each stage of the send funnel, by \
         workflow and template.\n# TYPE wagate_send_funnel_total counter"
    );
    for row in &counts.funnel {
        for stage in Stage::ALL {
            let _ = writeln!(
                out,
                "wagate_send_funnel_total{{workflow=\"{}\",template=\"{}\",stage=\"{}\"}} {}",
                escape(&row.workflow),
                escape(&row.template),
                stage.as_str(),
                row.count(stage)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP wagate_dispatch_outcomes_total Dispatch outcomes recorded in the log.\n\
         # TYPE wagate_dispatch_outcomes_total counter"
    );
    for (outcome, count) in &counts.dispatch {
        let _ = writeln!(
            out,
            "wagate_dispatch_outcomes_total{{outcome=\"{outcome}\"}} {count}"
        );
    }
    let outcome = |name: &str| counts.dispatch.get(name).copied().unwrap_or(0);
    let _ = writeln!(
        out,
        "# HELP wagate_dispatch_retries_total Failed attempts with a retry scheduled.\n\
         # TYPE wagate_dispatch_retries_total counter\n\
         wagate_dispatch_retries_total {}\n\
         # HELP wagate_dispatch_in_doubt_expired_total Claims that expired in doubt.\n\
         # TYPE wagate_dispatch_in_doubt_expired_total counter\n\
         wagate_dispatch_in_doubt_expired_total {}\n\
         # HELP wagate_dispatch_claims_awaiting_outcome Claims with no outcome recorded yet (in \
         doubt once past the in-doubt timeout).\n\
         # TYPE wagate_dispatch_claims_awaiting_outcome gauge\n\
         wagate_dispatch_claims_awaiting_outcome {}",
        outcome("retry_scheduled"),
        outcome("in_doubt_expired"),
        counts.claims_awaiting_outcome
    );
    let _ = writeln!(
        out,
        "# HELP wagate_messaging_limit_used Unique recipients reached outside a window in the \
         moving 24 h, by portfolio.\n# TYPE wagate_messaging_limit_used gauge"
    );
    for usage in &counts.portfolios {
        let _ = writeln!(
            out,
            "wagate_messaging_limit_used{{portfolio=\"{}\"}} {}",
            escape(usage.portfolio.as_str()),
            usage.used
        );
    }
    let _ = writeln!(
        out,
        "# HELP wagate_messaging_limit The portfolio's messaging limit (absent: unlimited).\n\
         # TYPE wagate_messaging_limit gauge"
    );
    for usage in &counts.portfolios {
        if let Some(limit) = usage.limit {
            let _ = writeln!(
                out,
                "wagate_messaging_limit{{portfolio=\"{}\"}} {limit}",
                escape(usage.portfolio.as_str())
            );
        }
    }
    let Some(review) = review else {
        return;
    };
    let mut items: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    for item in review {
        *items.entry((&item.reason, &item.state)).or_default() += 1;
    }
    let _ = writeln!(
        out,
        "# HELP wagate_review_items Review queue items by reason and state.\n\
         # TYPE wagate_review_items gauge"
    );
    for ((reason, state), count) in items {
        let _ = writeln!(
            out,
            "wagate_review_items{{reason=\"{}\",state=\"{}\"}} {count}",
            escape(reason),
            escape(state)
        );
    }
}

/// The process-wide recorder of the `metrics` facade, installed on first use, so any crate can
/// record with `metrics::counter!` and `/metrics` shows it. When another recorder was installed
/// first (an embedding program's), facade metrics go there and this handle renders nothing.
pub fn facade() -> &'static PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => handle,
            Err(error) => {
                tracing::warn!(%error, "the metrics facade already has a recorder");
                PrometheusBuilder::new().build_recorder().handle()
            }
        };
        // Shown at 0 before the first alert, so an alert rule can rely on the series.
        metrics::describe_counter!("wagate_alerts_sent_total", "Alerts delivered.");
        metrics::describe_counter!(
            "wagate_alerts_failed_total",
            "Alert deliveries that failed."
        );
        metrics::describe_gauge!(
            wagate_app::CACHE_ENTRIES_GAUGE,
            "Aggregates held by the hub's load cache (bounded; docs/performance.md, \"Soak\")."
        );
        metrics::counter!("wagate_alerts_sent_total").increment(0);
        metrics::counter!("wagate_alerts_failed_total").increment(0);
        handle
    })
}

fn labelled(
    out: &mut String,
    name: &str,
    help: &str,
    label: &str,
    values: &BTreeMap<&'static str, u64>,
) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
    for (value, count) in values {
        let _ = writeln!(out, "{name}{{{label}=\"{}\"}} {count}", escape(value));
    }
}

/// Label values escape `\`, `"` and newlines.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The cost ledger's totals (`report`: any grouping; only its totals are read): what delivered
/// messages cost since the log began, per currency and part (`provider`, `fee`), and how many
/// delivered messages had no rate.
pub fn render_costs(out: &mut String, report: &CostReport) {
    let _ = writeln!(
        out,
        "# HELP wagate_cost_total What delivered messages cost (the price table's rates), per \
         currency and part.\n# TYPE wagate_cost_total counter"
    );
    let mut unpriced = 0;
    for total in &report.totals {
        unpriced += total.sums.unpriced;
        let Some(currency) = &total.currency else {
            continue;
        };
        for (part, micros) in [
            ("provider", total.sums.provider_micros),
            ("fee", total.sums.fee_micros),
        ] {
            let _ = writeln!(
                out,
                "wagate_cost_total{{currency=\"{}\",part=\"{part}\"}} {}",
                escape(currency),
                format_micros(micros)
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP wagate_cost_unpriced_messages_total Delivered messages the price table has no \
         rate for.\n# TYPE wagate_cost_unpriced_messages_total counter\n\
         wagate_cost_unpriced_messages_total {unpriced}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_totals_per_currency_and_part_and_the_unpriced_count() {
        let row = |currency: Option<&str>, unpriced, provider_micros| wagate_app::CostGroup {
            key: String::new(),
            currency: currency.map(str::to_owned),
            sums: wagate_app::CostSums {
                messages: 2,
                billable: 2,
                unpriced,
                provider_micros,
                fee_micros: 10_000,
            },
        };
        let report = CostReport {
            position: 1,
            groups: Vec::new(),
            totals: vec![row(Some("USD"), 0, 150_000), row(None, 2, 0)],
        };
        let mut out = String::new();
        render_costs(&mut out, &report);
        assert!(out.contains("wagate_cost_total{currency=\"USD\",part=\"provider\"} 0.150000"));
        assert!(out.contains("wagate_cost_total{currency=\"USD\",part=\"fee\"} 0.010000"));
        assert!(out.contains("wagate_cost_unpriced_messages_total 2"));
    }

    #[test]
    fn renders_counters_and_cumulative_histograms() {
        let metrics = Metrics::default();
        metrics.request("/healthz", "ok", Duration::from_micros(300));
        metrics.request("/healthz", "ok", Duration::from_millis(3));
        metrics.request("/healthz", "error", Duration::from_secs(20));
        metrics.refusal("opted_out");
        metrics.appended(Source::Webhook, 2);
        let text = metrics.render(&StoreStats {
            commits: 1,
            committed_requests: 2,
            head_position: 5,
            packed_position: 4,
            keys_packed: 3,
            prepare_us: 0,
            apply_us: 1_500_000,
            flush_us: 0,
            sync_us: 0,
            failed: true,
        });
        for line in [
            "wagate_http_requests_total{route=\"/healthz\",verdict=\"ok\"} 2",
            "wagate_http_requests_total{route=\"/healthz\",verdict=\"error\"} 1",
            "wagate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.0005\"} 1",
            "wagate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"0.005\"} 2",
            "wagate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"10\"} 2",
            "wagate_http_request_duration_seconds_bucket{route=\"/healthz\",le=\"+Inf\"} 3",
            "wagate_http_request_duration_seconds_count{route=\"/healthz\"} 3",
            "wagate_refusals_total{rule=\"opted_out\"} 1",
            "wagate_events_appended_total{source=\"webhook\"} 2",
            "wagate_log_head_position 5",
            "wagate_store_packed_position 4",
            "wagate_store_keys_packed_total 3",
            "wagate_store_failed 1",
            "wagate_store_writer_seconds_total{stage=\"apply\"} 1.5",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line}\n{text}");
        }
    }
}
