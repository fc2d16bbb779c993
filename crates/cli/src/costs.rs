//! `wagate costs [--by campaign|workflow|template|sender|month] [--json]`: the cost ledger
//! through the hub's API (`GET /v1/costs`), as a table (an operator or auditor token).

use std::process::ExitCode;

use wagate_api as api;

use crate::ops::{client, expect_ok, output, typed, Common};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  wagate costs                 # by template\n  wagate costs --by month\n  wagate costs --by campaign --json\n\nAmounts are exact (six decimals); `unpriced` counts delivered messages the price table has no rate for (their cost is not in the sums). See docs/costs.md."
)]
pub struct CostsArgs {
    /// How to group: campaign, workflow, template, sender or month.
    #[arg(long, value_name = "GROUP", default_value = "template")]
    by: String,

    #[command(flatten)]
    common: Common,
}

pub async fn run(args: CostsArgs) -> anyhow::Result<ExitCode> {
    let what = "GET /v1/costs";
    let body = expect_ok(
        client(&args.common)?
            .get_query(&["v1", "costs"], &[("by", args.by.clone())], what)
            .await?,
        what,
    )?;
    output(&args.common, &body, || {
        let report: api::CostReport = typed(body.clone(), what)?;
        Ok(table(&report))
    })
}

/// The report as aligned columns: one line per group and currency, then the totals.
pub(crate) fn table(report: &api::CostReport) -> String {
    if report.groups.is_empty() {
        return "no delivered messages yet\n".to_owned();
    }
    let header = [
        report.by.as_str(),
        "messages",
        "billable",
        "unpriced",
        "provider",
        "fee",
        "total",
        "currency",
    ]
    .map(str::to_owned);
    let row = |key: &str, g: &api::CostGroupView| {
        [
            key.to_owned(),
            g.messages.to_string(),
            g.billable.to_string(),
            g.unpriced.to_string(),
            g.provider.clone(),
            g.fee.clone(),
            g.total.clone(),
            g.currency.clone().unwrap_or_else(|| "-".to_owned()),
        ]
    };
    let mut rows = vec![header];
    rows.extend(report.groups.iter().map(|g| row(&g.key, g)));
    rows.extend(report.totals.iter().map(|g| row("TOTAL", g)));
    let widths: Vec<usize> = (0..8)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .enumerate()
                .map(|(i, (cell, width))| {
                    // The key left-aligned, numbers right-aligned.
                    if i == 0 || i == 7 {
                        format!("{cell:<width$}")
                    } else {
                        format!("{cell:>width$}")
                    }
                })
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_groups_then_totals_aligned() {
        let group = |key: &str, total: &str| api::CostGroupView {
            key: key.into(),
            messages: 2,
            billable: 2,
            unpriced: 0,
            provider: "0.273000".into(),
            fee: "0.010000".into(),
            total: total.into(),
            currency: Some("USD".into()),
        };
        let report = api::CostReport {
            by: "month".into(),
            groups: vec![group("2026-11", "0.283000")],
            totals: vec![group("", "0.283000")],
        };
        let text = table(&report);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("month"));
        assert!(lines[1].starts_with("2026-11") && lines[1].contains("0.283000  USD"));
        assert!(lines[2].starts_with("TOTAL"));
        assert_eq!(lines[1].find("0.283000"), lines[2].find("0.283000"));
    }
}
