//! The ops page's Campaigns section: each recent campaign's state and progress (issue 18), from
//! the same views as `GET /v1/campaigns/{id}`.

use crate::api::CampaignView;
use maud::{html, Markup};

/// How many campaigns the page lists: the newest; older ones are counted, not listed (the API
/// lists them all).
pub(crate) const SHOWN: usize = 20;

/// The campaigns the page shows, newest first, and how many older ones it leaves out.
#[derive(Debug, Default)]
pub struct CampaignsPanel {
    pub shown: Vec<CampaignView>,
    pub older: usize,
}

/// Reads the newest campaigns from the hub. Only the listed ones are loaded: a campaign's view
/// reads its rows' messages, so loading them all would make the page as slow as the history.
pub(super) fn panel(hub: &wagate_app::Hub) -> wagate_app::Result<CampaignsPanel> {
    let ids = hub.campaign_ids()?;
    let older = ids.len().saturating_sub(SHOWN);
    let shown = ids
        .into_iter()
        .rev()
        .take(SHOWN)
        .map(|id| {
            hub.campaign_view(id)
                .map(|view| crate::campaigns::view(&view))
        })
        .collect::<wagate_app::Result<_>>()?;
    Ok(CampaignsPanel { shown, older })
}

/// The section: one row per campaign with its state, rows and counts.
pub(super) fn section(panel: &CampaignsPanel) -> Markup {
    html! {
        section id="campaigns" {
            h2 { "Campaigns" }
            @if panel.shown.is_empty() {
                p.muted { "No campaigns yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Campaign" } th { "State" } th { "Template" } th.n { "Rows" }
                        th.n { "Allowed" } th.n { "Refused" } th.n { "Sent" } th.n { "Delivered" }
                        th.n { "Read" } th.n { "Failed" } th.n { "Withdrawn" } th.n { "Queued" }
                    } }
                    tbody {
                        @for campaign in &panel.shown {
                            @let counts = &campaign.counts;
                            tr data-campaign=(campaign.id) data-state=(campaign.state) {
                                td { code { (campaign.id) } br; span.muted { (campaign.created_at) } }
                                td { (campaign.state) }
                                td { (campaign.template) }
                                td.n { (campaign.rows) }
                                td.n { (counts.allowed) }
                                td.n title=(refused_title(campaign)) { (counts.refused) }
                                td.n { (counts.sent) }
                                td.n { (counts.delivered) }
                                td.n { (counts.read) }
                                td.n { (counts.failed) }
                                td.n { (counts.withdrawn) }
                                td.n { (counts.queued) }
                            }
                        }
                    }
                }
                @if panel.older > 0 {
                    p.muted { (panel.older) " older campaigns are not listed here (GET /v1/campaigns lists them all)." }
                }
            }
        }
    }
}

/// The refusals by rule, as the refused cell's tooltip ("consent: 2, window: 1").
fn refused_title(campaign: &CampaignView) -> String {
    campaign
        .refused_by_rule
        .iter()
        .map(|(rule, n)| format!("{rule}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use crate::api::CampaignCountsView;

    use super::*;

    fn campaign(id: &str, state: &str) -> CampaignView {
        CampaignView {
            id: id.into(),
            state: state.into(),
            sender: "whatsapp:+15550000001".into(),
            workflow: "deals".into(),
            template: "<b>deal</b>".into(),
            on_limit: "wait".into(),
            rows: 10,
            created_at: "2026-12-01T09:00:00.000Z".into(),
            counts: CampaignCountsView {
                allowed: 7,
                refused: 3,
                sent: 6,
                delivered: 5,
                read: 4,
                failed: 1,
                withdrawn: 2,
                queued: 0,
            },
            refused_by_rule: [("consent".to_owned(), 3)].into(),
        }
    }

    #[test]
    fn campaigns_in_the_given_order_with_their_counts_escaped() {
        let panel = CampaignsPanel {
            shown: vec![campaign("c-new", "running"), campaign("c-old", "cancelled")],
            older: 4,
        };
        let page = section(&panel).into_string();
        let new = page.find("data-campaign=\"c-new\"").expect("the newest");
        let old = page.find("data-campaign=\"c-old\"").expect("the older");
        assert!(new < old, "newest first");
        assert!(page.contains("data-state=\"cancelled\""));
        for n in [
            "<td class=\"n\">7</td>",
            "<td class=\"n\">2</td>",
            "<td class=\"n\">10</td>",
        ] {
            assert!(page.contains(n), "{n} in {page}");
        }
        assert!(page.contains("title=\"consent: 3\""));
        assert!(page.contains("&lt;b&gt;deal&lt;/b&gt;") && !page.contains("<b>"));
        assert!(page.contains("4 older campaigns"));
        assert!(!page.contains("<script"));
        let empty = section(&CampaignsPanel::default()).into_string();
        assert!(empty.contains("No campaigns yet."));
    }
}
