//! The ops page's Costs section: what delivered messages cost per month, from the cost ledger
//! (`Hub::costs`, the same source as `GET /v1/costs`).

use maud::{html, Markup};
use wagate_app::{format_micros, CostReport};

/// The section: one row per month and currency, then the totals per currency.
pub(super) fn section(report: &CostReport) -> Markup {
    html! {
        section id="costs" {
            h2 { "Costs by month" }
            @if report.groups.is_empty() {
                p.muted { "No delivered messages yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Month" } th.n { "Messages" } th.n { "Unpriced" }
                        th.n { "Provider" } th.n { "Fee" } th.n { "Total" } th { "Currency" }
                    } }
                    tbody {
                        @for (label, row) in report.groups.iter().map(|g| (g.key.as_str(), g))
                            .chain(report.totals.iter().map(|g| ("Total", g))) {
                            tr data-month=(label) {
                                td { (label) }
                                td.n { (row.sums.messages) }
                                td.n { (row.sums.unpriced) }
                                td.n { (format_micros(row.sums.provider_micros)) }
                                td.n { (format_micros(row.sums.fee_micros)) }
                                td.n.total { (format_micros(row.sums.total_micros())) }
                                td { (row.currency.as_deref().unwrap_or("unpriced")) }
                            }
                        }
                    }
                }
                @if report.totals.iter().any(|t| t.sums.unpriced > 0) {
                    p.muted { "Unpriced messages have no rate in the price table; their cost is not in the sums (docs/costs.md)." }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use wagate_app::{CostGroup, CostSums};

    use super::*;

    #[test]
    fn months_then_totals_with_exact_amounts() {
        let row = |key: &str| CostGroup {
            key: key.into(),
            currency: Some("USD".into()),
            sums: CostSums {
                messages: 3,
                billable: 3,
                unpriced: 0,
                provider_micros: 409_500,
                fee_micros: 15_000,
            },
        };
        let report = CostReport {
            position: 9,
            groups: vec![row("2026-11")],
            totals: vec![row("")],
        };
        let page = section(&report).into_string();
        assert!(page.contains("data-month=\"2026-11\""));
        assert!(page.contains("0.424500"));
        assert!(page.contains("data-month=\"Total\""));
        let empty = section(&CostReport::default()).into_string();
        assert!(empty.contains("No delivered messages yet."));
    }
}
