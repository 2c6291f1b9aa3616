//! The read endpoints over the seeded data: which collection a route serves, Airwallex's
//! date filters, page numbers and cursors.

use super::{b64, bad_request, error};
use axum::http::StatusCode;
use base64::Engine;
use serde_json::{json, Value};
use std::collections::HashMap;

/// The seeded list behind a route template, and the time field its date filters apply to.
fn collection(template: &str) -> Option<(&'static str, &'static str)> {
    Some(match template {
        "GET /api/v1/transfers" | "GET /api/v1/transfers/{id}" => ("transfers", "created_at"),
        "GET /api/v1/beneficiaries" | "GET /api/v1/beneficiaries/{beneficiary_id}" => {
            ("beneficiaries", "created_at")
        }
        "GET /api/v1/financial_transactions" | "GET /api/v1/financial_transactions/{id}" => {
            ("financial_transactions", "created_at")
        }
        "GET /api/v1/balances/current" => ("balances", "created_at"),
        "GET /api/v1/balances/history" => ("balance_history", "posted_at"),
        "GET /api/v1/webhooks" | "GET /api/v1/webhooks/{id}" => ("webhooks", "created_at"),
        "GET /api/v1/account" => ("account", "created_at"),
        _ => return None,
    })
}

fn query_time(
    q: &HashMap<String, String>,
    name: &str,
) -> Result<Option<chrono::DateTime<chrono::FixedOffset>>, (StatusCode, Value)> {
    match q.get(name) {
        None => Ok(None),
        Some(v) => super::super::parse_timestamp(v)
            .or_else(|| {
                // a bare date (beneficiaries' from_date / to_date)
                chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d")
                    .ok()
                    .and_then(|d| d.and_hms_opt(0, 0, 0))
                    .map(|t| t.and_utc().fixed_offset())
            })
            .map(Some)
            .ok_or_else(|| {
                bad_request(format!(
                    "{name} must be a time like 2021-10-26T06:38:13+0000"
                ))
            }),
    }
}

fn query_num(
    q: &HashMap<String, String>,
    name: &str,
    default: usize,
) -> Result<usize, (StatusCode, Value)> {
    match q.get(name) {
        None => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| bad_request(format!("{name} must be a non-negative integer"))),
    }
}

/// Items whose `field` time lies in `[from, to]`, newest first.
fn filtered(
    items: &[Value],
    field: &str,
    from: Option<chrono::DateTime<chrono::FixedOffset>>,
    to: Option<chrono::DateTime<chrono::FixedOffset>>,
) -> Vec<Value> {
    let time = |v: &Value| {
        v.get(field)
            .and_then(|t| t.as_str())
            .and_then(super::super::parse_timestamp)
    };
    let mut out: Vec<Value> = items
        .iter()
        .filter(|v| {
            let t = time(v);
            from.is_none_or(|f| t.is_some_and(|t| t >= f))
                && to.is_none_or(|e| t.is_some_and(|t| t <= e))
        })
        .cloned()
        .collect();
    out.sort_by_key(|v| std::cmp::Reverse(time(v)));
    out
}

fn cursor(offset: usize) -> String {
    b64(format!("offset:{offset}").as_bytes())
}

fn parse_cursor(c: &str) -> Option<usize> {
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(c)
        .ok()?;
    std::str::from_utf8(&raw)
        .ok()?
        .strip_prefix("offset:")?
        .parse()
        .ok()
}

/// A read endpoint over the seeded data, with Airwallex's paging and filters.
pub(super) fn serve_read(
    template: &str,
    path: &str,
    q: &HashMap<String, String>,
    data: &HashMap<String, Vec<Value>>,
) -> (StatusCode, Value) {
    let Some((data_key, time_field)) = collection(template) else {
        return error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            format!("{template} is not simulated"),
        );
    };
    let items = data.get(data_key).map(Vec::as_slice).unwrap_or(&[]);
    if data_key == "account" {
        return (
            StatusCode::OK,
            items.first().cloned().unwrap_or_else(|| json!({})),
        );
    }
    if template.ends_with("/{id}") || template.ends_with("/{beneficiary_id}") {
        let id = path.rsplit('/').next().unwrap_or("");
        return match items
            .iter()
            .find(|v| v.get("id").and_then(|x| x.as_str()) == Some(id))
        {
            Some(v) => (StatusCode::OK, v.clone()),
            None => error(
                StatusCode::NOT_FOUND,
                "resource_not_found",
                format!("no {data_key} item {id}"),
            ),
        };
    }
    let (from_name, to_name) = match data_key {
        "beneficiaries" => ("from_date", "to_date"),
        "balance_history" => ("from_post_at", "to_post_at"),
        _ => ("from_created_at", "to_created_at"),
    };
    let (from, to) = match (query_time(q, from_name), query_time(q, to_name)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(e), _) | (_, Err(e)) => return e,
    };
    if data_key == "balance_history" {
        // at most 7 days a query (FACTS.md)
        let span = match (from, to) {
            (Some(f), Some(t)) => t - f,
            (Some(f), None) => chrono::Utc::now().fixed_offset() - f,
            _ => chrono::Duration::zero(),
        };
        if span > chrono::Duration::days(7) {
            return bad_request(
                "the time range between from_post_at and to_post_at must not exceed 7 days",
            );
        }
    }
    let all = filtered(items, time_field, from, to);
    if data_key == "transfers" {
        // cursor paging: `page` is the cursor of page_after / page_before
        let size = match query_num(q, "page_size", 20) {
            Ok(n) if (1..=200).contains(&n) => n,
            Ok(_) => return bad_request("page_size must be between 1 and 200"),
            Err(e) => return e,
        };
        let offset = match q.get("page") {
            None => 0,
            Some(c) => match parse_cursor(c) {
                Some(o) => o,
                None => return bad_request("page is not a cursor this API returned"),
            },
        };
        let page: Vec<Value> = all.iter().skip(offset).take(size).cloned().collect();
        let has_more = offset + size < all.len();
        let mut body = json!({"items": page, "has_more": has_more});
        if has_more {
            body["page_after"] = json!(cursor(offset + size));
        }
        if offset > 0 {
            body["page_before"] = json!(cursor(offset.saturating_sub(size)));
        }
        return (StatusCode::OK, body);
    }
    // page_num / page_size paging (beneficiaries: page_size at least 10)
    let min = if data_key == "beneficiaries" { 10 } else { 1 };
    let size = match query_num(q, "page_size", 20) {
        Ok(n) if n >= min && n <= 200 => n,
        Ok(_) => return bad_request(format!("page_size must be between {min} and 200")),
        Err(e) => return e,
    };
    let num = match query_num(q, "page_num", 0) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let page: Vec<Value> = all.iter().skip(num * size).take(size).cloned().collect();
    let has_more = (num + 1) * size < all.len();
    (StatusCode::OK, json!({"items": page, "has_more": has_more}))
}
