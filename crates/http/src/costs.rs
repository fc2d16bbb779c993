//! `GET /v1/costs?by=campaign|workflow|template|sender|month` (operators and auditors): the cost
//! ledger (`Hub::costs`) shaped for the API. This module only parses and shapes.

use std::collections::BTreeMap;

use axum::extract::Query;
use axum::Json;
use wagate_app::{format_micros, CostDimension, CostGroup};

use crate::api;
use crate::error::ApiError;
use crate::state::Acting;

/// The grouping when `by` is not given.
const DEFAULT_BY: CostDimension = CostDimension::Template;

pub(crate) fn group_view(group: &CostGroup) -> api::CostGroupView {
    api::CostGroupView {
        key: group.key.clone(),
        messages: group.sums.messages,
        billable: group.sums.billable,
        unpriced: group.sums.unpriced,
        provider: format_micros(group.sums.provider_micros),
        fee: format_micros(group.sums.fee_micros),
        total: format_micros(group.sums.total_micros()),
        currency: group.currency.clone(),
    }
}

/// Reads `by`, naming the allowed values when it is none of them.
pub(crate) fn parse_by(value: &str) -> Result<CostDimension, ApiError> {
    CostDimension::parse(value).ok_or_else(|| {
        let allowed: Vec<_> = CostDimension::ALL.iter().map(|d| d.as_str()).collect();
        ApiError::invalid(
            "by",
            format!("{value:?} is not one of {}", allowed.join(", ")),
        )
    })
}

/// `GET /v1/costs?by=month`
pub(crate) async fn report(
    Acting(hub): Acting,
    Query(query): Query<BTreeMap<String, String>>,
) -> Result<Json<api::CostReport>, ApiError> {
    let mut by = DEFAULT_BY;
    for (name, value) in &query {
        match name.as_str() {
            "by" => by = parse_by(value)?,
            other => {
                return Err(ApiError::invalid(
                    other,
                    "unknown query parameter; the only one is `by`",
                ))
            }
        }
    }
    let report = hub.costs(by);
    Ok(Json(api::CostReport {
        by: by.as_str().to_owned(),
        groups: report.groups.iter().map(group_view).collect(),
        totals: report.totals.iter().map(group_view).collect(),
    }))
}
