//! The simulator's write endpoints (beneficiaries, transfers, webhooks) and the control endpoint
//! that adds objects "from elsewhere". Shapes follow Airwallex's API reference as far as
//! FACTS.md and the catalog know them: creates answer 201 with the object (`id`, and
//! `beneficiary_id` for a beneficiary), updates and cancels 200 with the changed object, deletes
//! 200 with `{}`. Every stored object carries `id` and `created_at` in Airwallex's time format,
//! so the list endpoints serve it with their paging and date filters.

use super::{bad_request, error, random_id, Simulator};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// Collections the control endpoint may add to.
pub const ACTIVITY_COLLECTIONS: &[&str] = &[
    "beneficiaries",
    "transfers",
    "webhooks",
    "financial_transactions",
    "balance_history",
];

fn stamp(now: DateTime<Utc>) -> String {
    crate::airwallex::format_timestamp(&now)
}

fn full(data: &HashMap<String, Vec<Value>>, collection: &str, limit: usize) -> bool {
    data.get(collection).is_some_and(|v| v.len() >= limit)
}

fn limit_error(collection: &str, limit: usize) -> (StatusCode, Value) {
    error(
        StatusCode::BAD_REQUEST,
        "resource_limit_exceeded",
        format!(
            "the simulator holds at most {limit} {collection} (raise max_objects in its state)"
        ),
    )
}

/// The request body as a JSON object.
fn object(body: &[u8]) -> Result<Map<String, Value>, (StatusCode, Value)> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(bad_request("the request body must be a JSON object")),
        Err(e) => Err(bad_request(format!("the request body is not JSON: {e}"))),
    }
}

fn find<'a>(
    data: &'a mut HashMap<String, Vec<Value>>,
    collection: &str,
    id: &str,
) -> Option<&'a mut Value> {
    data.get_mut(collection)?
        .iter_mut()
        .find(|v| v.get("id").and_then(Value::as_str) == Some(id))
}

fn not_found(collection: &str, id: &str) -> (StatusCode, Value) {
    error(
        StatusCode::NOT_FOUND,
        "resource_not_found",
        format!("no {collection} item {id}"),
    )
}

/// Copies the fields of `changes` into `item`, except the ones the server owns.
fn merge(item: &mut Value, changes: Map<String, Value>, now: DateTime<Utc>) {
    if let Value::Object(m) = item {
        for (k, v) in changes {
            if !matches!(
                k.as_str(),
                "id" | "beneficiary_id" | "created_at" | "status"
            ) {
                m.insert(k, v);
            }
        }
        m.insert("updated_at".into(), json!(stamp(now)));
    }
}

fn remove(data: &mut HashMap<String, Vec<Value>>, collection: &str, id: &str) -> bool {
    match data.get_mut(collection) {
        Some(items) => {
            let before = items.len();
            items.retain(|v| v.get("id").and_then(Value::as_str) != Some(id));
            items.len() < before
        }
        None => false,
    }
}

/// The `{id}` of `/api/v1/webhooks/{id}/update` or `/api/v1/beneficiaries/update/{id}`.
fn path_id<'a>(path: &'a str, template: &str) -> &'a str {
    let t: Vec<&str> = template
        .split_once(' ')
        .map_or(template, |(_, p)| p)
        .trim_matches('/')
        .split('/')
        .collect();
    let p: Vec<&str> = path.trim_matches('/').split('/').collect();
    t.iter()
        .zip(&p)
        .find(|(t, _)| t.starts_with('{'))
        .map_or("", |(_, p)| *p)
}

fn amount(m: &Map<String, Value>, name: &str) -> Option<f64> {
    match m.get(name)? {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// A write route the catalog matched and the token may call. Routes not simulated answer 404.
pub(super) fn serve_write(
    template: &str,
    path: &str,
    body: &[u8],
    data: &mut HashMap<String, Vec<Value>>,
    now: DateTime<Utc>,
    limit: usize,
) -> (StatusCode, Value) {
    let changes = match object(body) {
        Ok(m) => m,
        Err(e) => return e,
    };
    let id = path_id(path, template).to_string();
    match template {
        "POST /api/v1/beneficiaries/create" => {
            if !changes.contains_key("beneficiary") {
                return bad_request("beneficiary is required");
            }
            if full(data, "beneficiaries", limit) {
                return limit_error("beneficiaries", limit);
            }
            let new_id = random_id();
            let mut item = Value::Object(changes);
            item["id"] = json!(new_id);
            item["beneficiary_id"] = json!(new_id);
            item["created_at"] = json!(stamp(now));
            data.entry("beneficiaries".into())
                .or_default()
                .push(item.clone());
            (StatusCode::CREATED, item)
        }
        "POST /api/v1/beneficiaries/update/{beneficiary_id}" => {
            match find(data, "beneficiaries", &id) {
                Some(item) => {
                    merge(item, changes, now);
                    (StatusCode::OK, item.clone())
                }
                None => not_found("beneficiaries", &id),
            }
        }
        "POST /api/v1/beneficiaries/delete/{beneficiary_id}" => {
            if remove(data, "beneficiaries", &id) {
                (StatusCode::OK, json!({}))
            } else {
                not_found("beneficiaries", &id)
            }
        }
        "POST /api/v1/transfers/create" => {
            let Some(ben) = changes.get("beneficiary_id").and_then(Value::as_str) else {
                return bad_request("beneficiary_id is required");
            };
            if find(data, "beneficiaries", ben).is_none() {
                return error(
                    StatusCode::BAD_REQUEST,
                    "beneficiary_not_found",
                    format!("beneficiary {ben} does not exist"),
                );
            }
            if amount(&changes, "transfer_amount")
                .or_else(|| amount(&changes, "source_amount"))
                .is_none_or(|a| a <= 0.0)
            {
                return bad_request("transfer_amount (or source_amount) must be a positive number");
            }
            if !changes.contains_key("transfer_currency") {
                return bad_request("transfer_currency is required");
            }
            if full(data, "transfers", limit) {
                return limit_error("transfers", limit);
            }
            let mut item = Value::Object(changes);
            item["id"] = json!(random_id());
            item["status"] = json!("SCHEDULED");
            item["created_at"] = json!(stamp(now));
            item["updated_at"] = json!(stamp(now));
            data.entry("transfers".into())
                .or_default()
                .push(item.clone());
            (StatusCode::CREATED, item)
        }
        "POST /api/v1/transfers/{id}/cancel" => match find(data, "transfers", &id) {
            Some(item) => {
                item["status"] = json!("CANCELLED");
                item["updated_at"] = json!(stamp(now));
                (StatusCode::OK, item.clone())
            }
            None => not_found("transfers", &id),
        },
        "POST /api/v1/webhooks/create" => {
            let Some(url) = changes.get("url").and_then(Value::as_str) else {
                return bad_request("url is required");
            };
            if !url.starts_with("https://") && !url.starts_with("http://") {
                return bad_request("url must be an http(s) URL");
            }
            if full(data, "webhooks", limit) {
                return limit_error("webhooks", limit);
            }
            let mut item = Value::Object(changes);
            if item.get("events").is_none() {
                item["events"] = json!([]);
            }
            item["id"] = json!(random_id());
            item["created_at"] = json!(stamp(now));
            data.entry("webhooks".into())
                .or_default()
                .push(item.clone());
            (StatusCode::CREATED, item)
        }
        "POST /api/v1/webhooks/{id}/update" => match find(data, "webhooks", &id) {
            Some(item) => {
                merge(item, changes, now);
                (StatusCode::OK, item.clone())
            }
            None => not_found("webhooks", &id),
        },
        "POST /api/v1/webhooks/{id}/delete" => {
            if remove(data, "webhooks", &id) {
                (StatusCode::OK, json!({}))
            } else {
                not_found("webhooks", &id)
            }
        }
        other => error(
            StatusCode::NOT_FOUND,
            "resource_not_found",
            format!("{other} is not simulated"),
        ),
    }
}

/// Adds `items` to `collection`, filling in `id` (and `beneficiary_id` for beneficiaries) and
/// `created_at` when missing.
pub(super) fn add_items(
    data: &mut HashMap<String, Vec<Value>>,
    collection: &str,
    items: Vec<Value>,
    now: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<Value>, String> {
    if !ACTIVITY_COLLECTIONS.contains(&collection) {
        return Err(format!(
            "{collection:?} is not a collection; expected one of {}",
            ACTIVITY_COLLECTIONS.join(", ")
        ));
    }
    let have = data.get(collection).map_or(0, Vec::len);
    if have + items.len() > limit {
        return Err(format!(
            "the simulator holds at most {limit} {collection} (raise max_objects in its state)"
        ));
    }
    let mut added = Vec::with_capacity(items.len());
    for mut item in items {
        if !item.is_object() {
            return Err(format!("{collection}: every item must be a JSON object"));
        }
        if item.get("id").is_none() {
            item["id"] = json!(random_id());
        }
        if collection == "beneficiaries" && item.get("beneficiary_id").is_none() {
            item["beneficiary_id"] = item["id"].clone();
        }
        let time_field = if collection == "balance_history" {
            "posted_at"
        } else {
            "created_at"
        };
        if item.get(time_field).is_none() {
            item[time_field] = json!(stamp(now));
        }
        added.push(item);
    }
    data.entry(collection.to_string())
        .or_default()
        .extend(added.iter().cloned());
    Ok(added)
}

/// `POST /__sim/activity`: `{"beneficiaries": [{...}], "transfers": {...}}` (an item or a list
/// per collection). Answers 201 with the stored items by collection, or 400 naming the problem
/// (nothing is added then).
pub(super) async fn activity(State(sim): State<Simulator>, body: axum::body::Bytes) -> Response {
    let parsed: Map<String, Value> = match serde_json::from_slice(&body) {
        Ok(Value::Object(m)) => m,
        _ => {
            let (s, b) = bad_request(
                "the body must be a JSON object: {\"beneficiaries\": [{...}], \"transfers\": [...]}",
            );
            return (s, Json(b)).into_response();
        }
    };
    let now = sim.clock.now();
    let mut inner = sim.lock();
    let limit = inner.state.max_objects;
    // all or nothing: work on a copy
    let mut data = inner.state.data.clone();
    let mut out = Map::new();
    for (collection, v) in parsed {
        let items = match v {
            Value::Array(a) => a,
            other => vec![other],
        };
        match add_items(&mut data, &collection, items, now, limit) {
            Ok(added) => {
                out.insert(collection, Value::Array(added));
            }
            Err(m) => {
                let (s, b) = bad_request(m);
                return (s, Json(b)).into_response();
            }
        }
    }
    inner.state.data = data;
    (StatusCode::CREATED, Json(Value::Object(out))).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_ids_come_from_the_template_position() {
        assert_eq!(
            path_id(
                "/api/v1/webhooks/wh_1/update",
                "POST /api/v1/webhooks/{id}/update"
            ),
            "wh_1"
        );
        assert_eq!(
            path_id(
                "/api/v1/beneficiaries/delete/b-2",
                "POST /api/v1/beneficiaries/delete/{beneficiary_id}"
            ),
            "b-2"
        );
        assert_eq!(
            path_id("/api/v1/transfers/create", "POST /api/v1/transfers/create"),
            ""
        );
    }

    #[test]
    fn creates_list_and_limits() {
        let now = Utc::now();
        let mut data = HashMap::new();
        let (s, ben) = serve_write(
            "POST /api/v1/beneficiaries/create",
            "/api/v1/beneficiaries/create",
            br#"{"beneficiary": {"entity_type": "COMPANY"}, "nickname": "acme"}"#,
            &mut data,
            now,
            1,
        );
        assert_eq!(s, StatusCode::CREATED);
        assert_eq!(ben["id"], ben["beneficiary_id"]);
        let (s, _) = serve_write(
            "POST /api/v1/beneficiaries/create",
            "/api/v1/beneficiaries/create",
            br#"{"beneficiary": {}}"#,
            &mut data,
            now,
            1,
        );
        assert_eq!(s, StatusCode::BAD_REQUEST);
        let body = json!({"beneficiary_id": ben["id"], "transfer_amount": "10.5", "transfer_currency": "USD"});
        let (s, tr) = serve_write(
            "POST /api/v1/transfers/create",
            "/api/v1/transfers/create",
            body.to_string().as_bytes(),
            &mut data,
            now,
            10,
        );
        assert_eq!(s, StatusCode::CREATED, "{tr}");
        assert_eq!(tr["status"], "SCHEDULED");
        let (s, e) = serve_write(
            "POST /api/v1/transfers/create",
            "/api/v1/transfers/create",
            br#"{"beneficiary_id": "nope", "transfer_amount": 1, "transfer_currency": "USD"}"#,
            &mut data,
            now,
            10,
        );
        assert_eq!(s, StatusCode::BAD_REQUEST);
        assert_eq!(e["code"], "beneficiary_not_found");
        assert!(add_items(&mut data, "accounts", vec![json!({})], now, 10).is_err());
    }
}
