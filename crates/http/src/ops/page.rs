//! The ops page's HTML, rendered with maud (every interpolated value is escaped by the
//! template engine). No JavaScript: forms post, charts are inline SVG, the layout is one column
//! on a phone and wraps on a wide screen.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use wagate_app::{OpsCounts, Stage, StoreStats};

use super::review::{decisions_for, ReviewItemView};
use super::sessions::Session;
use crate::api::{SenderView, TemplateView};

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0;padding:0 1rem 2rem;color:#1b1f24;background:#f6f7f9}
header{display:flex;flex-wrap:wrap;align-items:center;justify-content:space-between;gap:.5rem}
h1{font-size:1.3rem}h2{font-size:1.05rem;margin:0 0 .5rem}
main{display:grid;gap:1rem;grid-template-columns:repeat(auto-fit,minmax(min(100%,26rem),1fr))}
section{background:#fff;border:1px solid #d8dde3;border-radius:6px;padding:.75rem;overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.25rem .4rem;border-bottom:1px solid #eceff2;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#5b6570}.bad{color:#a1260d}.ok{color:#1d6b35}
form.inline{display:inline}button{font:inherit;padding:.2rem .6rem}
input[type=text],input[type=password]{font:inherit;padding:.35rem;width:100%;max-width:22rem;box-sizing:border-box}
.notice{background:#fff4d6;border:1px solid #e8cf7a;padding:.5rem;border-radius:4px}
svg{max-width:100%;height:auto}
#funnel,#campaigns,#review{grid-column:1/-1}
:target{outline:2px solid #2e86c1}
";

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

/// The sign-in form: the person's API token, posted with the sign-in CSRF token.
pub fn sign_in(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "wagate ops: sign in",
        html! {
            h1 { "wagate ops" }
            section {
                h2 { "Sign in" }
                p.muted { "With an operator or auditor API token. The token is exchanged for a session cookie and not kept in the browser." }
                @if let Some(error) = error {
                    p.notice.bad id="sign-in-error" { (error) }
                }
                form method="post" action="/ops/sign-in" {
                    input type="hidden" name="csrf" value=(csrf);
                    label for="token" { "API token" } br;
                    input type="password" id="token" name="token" autocomplete="current-password" required;
                    p { button type="submit" id="sign-in" { "Sign in" } }
                }
            }
        },
    )
}

/// Everything the dashboard shows.
#[derive(Debug)]
pub struct Dashboard {
    pub counts: OpsCounts,
    /// The cost ledger by month (`super::costs`).
    pub costs: wagate_app::CostReport,
    /// The newest campaigns and their progress (`super::campaigns`).
    pub campaigns: super::campaigns::CampaignsPanel,
    pub review: Vec<ReviewItemView>,
    /// Resolved items older than those listed (the page keeps to the recent ones).
    pub review_older_resolved: usize,
    pub templates: Vec<TemplateView>,
    pub senders: Vec<SenderView>,
    pub store: StoreStats,
    pub notice: Option<String>,
}

pub fn dashboard(data: &Dashboard, session: &Session) -> Markup {
    layout(
        "wagate ops",
        html! {
            header {
                h1 { "wagate ops" }
                div {
                    span.muted { "Signed in as " (session.name) " (" (session.role.as_str()) ") " }
                    form.inline method="post" action="/ops/sign-out" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        button type="submit" { "Sign out" }
                    }
                }
            }
            @if let Some(notice) = &data.notice {
                p.notice id="notice" { (notice) }
            }
            main {
                (refusals(&data.counts))
                (funnel(&data.counts))
                (portfolios(&data.counts))
                (super::campaigns::section(&data.campaigns))
                (super::costs::section(&data.costs))
                (review(&data.review, data.review_older_resolved, session))
                (configuration(&data.templates, &data.senders))
                (store(&data.store, &data.counts))
            }
        },
    )
}

fn refusals(counts: &OpsCounts) -> Markup {
    let rules: std::collections::BTreeSet<&&str> = counts.refusals_7d.keys().collect();
    html! {
        section id="refusals" {
            h2 { "Refusals by rule" }
            (hourly_chart(&counts.refusals_hourly))
            @if rules.is_empty() {
                p.muted { "No refusals in the last 7 days." }
            } @else {
                table {
                    thead { tr { th { "Rule" } th.n { "24 h" } th.n { "7 days" } } }
                    tbody {
                        @for rule in rules {
                            tr data-rule=(rule) {
                                td { code { (rule) } }
                                td.n.last-24h { (counts.refusals_24h.get(*rule).copied().unwrap_or(0)) }
                                td.n.last-7d { (counts.refusals_7d.get(*rule).copied().unwrap_or(0)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Refusals per hour over the last 24 h as an SVG bar chart (oldest on the left).
fn hourly_chart(hourly: &[u64]) -> Markup {
    const WIDTH: u64 = 240;
    const HEIGHT: u64 = 48;
    let max = hourly.iter().copied().max().unwrap_or(0).max(1);
    let bar = WIDTH / hourly.len().max(1) as u64;
    html! {
        svg viewBox={"0 0 " (WIDTH) " " (HEIGHT + 12)} width="480" role="img"
            aria-label="Refusals per hour over the last 24 hours" {
            title { "Refusals per hour, last 24 h (oldest left)" }
            line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) stroke="#b8c0c8" stroke-width="0.5" {}
            @for (index, count) in hourly.iter().enumerate() {
                @let height = count * HEIGHT / max;
                rect x=(index as u64 * bar + 1) y=(HEIGHT - height) width=(bar - 2) height=(height) fill="#c0392b" {
                    title { (count) " refused, " (hourly.len() - index) " h ago" }
                }
            }
            text x="0" y=(HEIGHT + 10) font-size="8" fill="#5b6570" { "−24 h" }
            text x=(WIDTH) y=(HEIGHT + 10) font-size="8" fill="#5b6570" text-anchor="end" { "now" }
        }
    }
}

fn funnel(counts: &OpsCounts) -> Markup {
    html! {
        section id="funnel" {
            h2 { "Send funnel" }
            p.muted { "requested → allowed → claimed → sent → delivered → read; refused and failed branch off." }
            @if counts.funnel.is_empty() {
                p.muted { "No sends yet." }
            } @else {
                (funnel_chart(counts))
                table {
                    thead { tr {
                        th { "Workflow" } th { "Template" }
                        @for stage in Stage::ALL { th.n { (stage.as_str()) } }
                    } }
                    tbody {
                        @for row in &counts.funnel {
                            tr data-workflow=(row.workflow) data-template=(row.template) {
                                td { (row.workflow) } td { code { (row.template) } }
                                @for stage in Stage::ALL {
                                    td class={ "n " (stage.as_str()) } { (row.count(stage)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Every row's stages summed, as horizontal SVG bars in funnel order.
fn funnel_chart(counts: &OpsCounts) -> Markup {
    const BAR: u64 = 12;
    const LABEL: u64 = 70;
    const WIDTH: u64 = 200;
    let totals = Stage::ALL.map(|stage| {
        let total: u64 = counts.funnel.iter().map(|row| row.count(stage)).sum();
        (stage, total)
    });
    let max = totals
        .iter()
        .map(|(_, total)| *total)
        .max()
        .unwrap_or(0)
        .max(1);
    let height = BAR * totals.len() as u64;
    html! {
        svg viewBox={"0 0 " (LABEL + WIDTH + 40) " " (height)} width="520" role="img"
            aria-label="Messages at each stage of the send funnel" {
            title { "Send funnel, all workflows and templates" }
            @for (index, (stage, total)) in totals.iter().enumerate() {
                @let y = index as u64 * BAR;
                @let width = total * WIDTH / max;
                @let colour = match stage { Stage::Refused | Stage::Failed => "#c0392b", _ => "#2e86c1" };
                text x="0" y=(y + 9) font-size="9" fill="#1b1f24" { (stage.as_str()) }
                rect x=(LABEL) y=(y + 2) width=(width) height=(BAR - 3) fill=(colour) {}
                text x=(LABEL + width + 3) y=(y + 9) font-size="9" fill="#5b6570" { (total) }
            }
        }
    }
}

fn portfolios(counts: &OpsCounts) -> Markup {
    html! {
        section id="messaging-limits" {
            h2 { "Messaging-limit usage (moving 24 h)" }
            @if counts.portfolios.is_empty() {
                p.muted { "No portfolio has reached anyone yet." }
            }
            @for usage in &counts.portfolios {
                p {
                    strong { (usage.portfolio) } ": " (usage.used) " of "
                    @match usage.limit { Some(limit) => { (limit) }, None => { "unlimited" } }
                    " unique recipients"
                }
                @if let Some(limit) = usage.limit {
                    @let filled = (usage.used as u64 * 200).div_ceil(u64::from(limit.max(1))).min(200);
                    svg viewBox="0 0 200 10" width="400" role="img"
                        aria-label={ (usage.used) " of " (limit) } {
                        rect x="0" y="0" width="200" height="10" fill="#e3e7eb" {}
                        rect x="0" y="0" width=(filled) height="10"
                            fill=(if filled >= 180 { "#c0392b" } else { "#2e86c1" }) {}
                    }
                }
            }
        }
    }
}

fn review(items: &[ReviewItemView], older_resolved: usize, session: &Session) -> Markup {
    html! {
        section id="review" {
            h2 { "Review queue" }
            @if items.is_empty() {
                p.muted { "Nothing needs a person: the review queue is empty." }
            } @else {
                table {
                    thead { tr {
                        th { "Reason" } th { "What" } th { "State" } th { "Contact" } th { "Message" } th { "Raised" }
                        @if session.is_operator() { th { "Resolve" } }
                    } }
                    tbody {
                        @for item in items {
                            // The anchor alerts link to (`/ops#review-{id}`).
                            tr id={ "review-" (item.id) } data-review-id=(item.id) data-state=(item.state) {
                                td { code { (item.reason) } }
                                td { (item.title) @if !item.detail.is_empty() { br; small.muted { (item.detail) } } }
                                td.state { (item.state) }
                                td { (item.contact.as_deref().unwrap_or("—")) }
                                td { (item.message_id.as_deref().unwrap_or("—")) }
                                td { (item.raised_at) }
                                @if session.is_operator() {
                                    td {
                                        @if item.state == "open" {
                                            form method="post" action={ "/ops/review/" (item.id) "/resolve" } {
                                                input type="hidden" name="csrf" value=(session.csrf);
                                                input type="text" name="note" placeholder="note" aria-label="note";
                                                @for decision in decisions_for(&item.reason) {
                                                    button type="submit" name="decision" value=(decision) { (decision) }
                                                    " "
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if older_resolved > 0 {
                p.muted { (older_resolved) " older resolved items are not listed here: " code { "GET /v1/review?state=resolved" } " or " code { "wagate review" } " has them all." }
            }
        }
    }
}

fn configuration(templates: &[TemplateView], senders: &[SenderView]) -> Markup {
    html! {
        section id="configuration" {
            h2 { "Templates" }
            @if templates.is_empty() { p.muted { "No templates registered." } }
            @else {
                table {
                    thead { tr { th { "Template" } th { "Name" } th { "Status" } } }
                    tbody {
                        @for template in templates {
                            @let status = template.status.as_deref().unwrap_or("unregistered");
                            tr {
                                td { code { (template.content_sid) } }
                                td { (template.name.as_deref().unwrap_or("—")) }
                                td class=(if status == "approved" { "ok" } else { "bad" }) { (status) }
                            }
                        }
                    }
                }
            }
            h2 { "Senders" }
            @if senders.is_empty() { p.muted { "No senders registered." } }
            @else {
                table {
                    thead { tr { th { "Sender" } th { "Portfolio" } th { "Status" } } }
                    tbody {
                        @for sender in senders {
                            tr {
                                td { (sender.address) }
                                td { (sender.portfolio.as_deref().unwrap_or("—")) }
                                td class=(if sender.may_send { "ok" } else { "bad" }) {
                                    @if let Some(reason) = &sender.suspended { "suspended: " (reason) }
                                    @else if sender.may_send { "may send" }
                                    @else { "not authorized" }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn store(stats: &StoreStats, counts: &OpsCounts) -> Markup {
    html! {
        section id="store" {
            h2 { "Store" }
            p {
                @if stats.failed {
                    strong.bad { "failed: writes are refused (see docs/storage.md)" }
                } @else {
                    strong.ok { "healthy" }
                }
            }
            table {
                tbody {
                    tr { td { "Log head position" } td.n { (stats.head_position) } }
                    tr { td { "Group commits since start" } td.n { (stats.commits) } }
                    tr { td { "Requests committed since start" } td.n { (stats.committed_requests) } }
                    tr { td { "Claims awaiting their outcome" } td.n { (counts.claims_awaiting_outcome) } }
                    @for (outcome, count) in &counts.dispatch {
                        tr { td { "Dispatch outcome: " (outcome) } td.n { (count) } }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use wagate_domain::Role;

    use super::*;
    use crate::ops::sessions::Sessions;

    fn with_one_item(role: Role) -> String {
        let sessions = Sessions::default();
        let id = sessions.start("someone".into(), role);
        let session = sessions.get(&id).expect("session");
        let data = Dashboard {
            counts: OpsCounts::default(),
            costs: wagate_app::CostReport::default(),
            campaigns: Default::default(),
            review: vec![ReviewItemView {
                id: "r1".into(),
                reason: "opt_out_request".into(),
                state: "open".into(),
                title: "Possible opt-out in free text".into(),
                detail: "<i>stop</i>".into(),
                contact: Some("<b>+41790000001</b>".into()),
                message_id: None,
                raised_at: "2026-11-25T09:00:00Z".into(),
            }],
            review_older_resolved: 3,
            templates: Vec::new(),
            senders: Vec::new(),
            store: StoreStats {
                commits: 0,
                committed_requests: 0,
                head_position: 0,
                packed_position: 0,
                keys_packed: 0,
                prepare_us: 0,
                apply_us: 0,
                flush_us: 0,
                sync_us: 0,
                failed: false,
            },
            notice: None,
        };
        let page = dashboard(&data, &session).into_string();
        assert!(page.contains("&lt;b&gt;+41790000001&lt;/b&gt;"), "escaped");
        assert!(!page.contains("<b>") && !page.contains("<i>"));
        assert!(page.contains("id=\"review-r1\""), "the alerts' anchor");
        assert!(page.contains("3 older resolved items"), "said, not listed");
        if role == Role::Operator {
            assert!(page.contains(&format!("value=\"{}\"", session.csrf)));
        }
        page
    }

    #[test]
    fn operators_get_resolve_buttons_with_their_csrf_token_and_auditors_none() {
        let operator = with_one_item(Role::Operator);
        assert!(operator.contains("action=\"/ops/review/r1/resolve\""));
        for decision in decisions_for("opt_out_request") {
            assert!(operator.contains(&format!("name=\"decision\" value=\"{decision}\"")));
        }
        let auditor = with_one_item(Role::Auditor);
        assert!(
            auditor.contains("data-review-id=\"r1\""),
            "auditors see the item"
        );
        assert!(!auditor.contains("/resolve"), "but no button");
    }
}
