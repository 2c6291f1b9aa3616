//! What the watch keeps of Airwallex's objects: the few fields the detectors read, parsed
//! tolerantly from the API's JSON (field names vary between API versions: `transfer_amount` or
//! `amount`, a beneficiary's bank country under `beneficiary.bank_details` or beside it). Bank
//! details are kept as a fingerprint and the last four characters of the account, never whole.

use crate::airwallex::parse_timestamp;
use crate::store::WatchObject;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The store's kind of each list's objects.
pub fn kind_of(list: &str) -> &'static str {
    match list {
        "transfers" => "transfer",
        "beneficiaries" => "beneficiary",
        "webhooks" => "webhook",
        "financial_transactions" => "financial_transaction",
        _ => "balance",
    }
}

/// A payout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub beneficiary_id: Option<String>,
    pub amount: f64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The destination bank's country, when the transfer carries its beneficiary's details.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

/// A payee.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Beneficiary {
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// When its bank details last changed, as far as the watch saw it change.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bank_changed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// `…1234`: the last four characters of the account number or IBAN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A fingerprint of the bank details (`sha256:` + 16 hex).
    #[serde(default)]
    pub bank: String,
}

/// A webhook subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Webhook {
    pub id: String,
    pub url: String,
    #[serde(default)]
    pub events: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A point of a balance's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BalancePoint {
    pub id: String,
    pub currency: String,
    /// The balance after this entry.
    pub balance: f64,
    /// The entry's amount (negative: money out).
    #[serde(default)]
    pub amount: f64,
    pub posted_at: DateTime<Utc>,
    /// The object that moved the money (a transfer id), when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

/// An entry of the account's ledger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinancialTransaction {
    pub id: String,
    pub amount: f64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn str_at<'a>(v: &'a Value, paths: &[&[&str]]) -> Option<&'a str> {
    paths.iter().find_map(|p| {
        p.iter()
            .try_fold(v, |cur, k| cur.get(k))
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    })
}

fn num_at(v: &Value, paths: &[&[&str]]) -> Option<f64> {
    paths.iter().find_map(|p| {
        p.iter()
            .try_fold(v, |cur, k| cur.get(k))
            .and_then(|x| match x {
                Value::Number(n) => n.as_f64(),
                Value::String(s) => s.trim().parse().ok(),
                _ => None,
            })
            .filter(|f| f.is_finite())
    })
}

fn time_at(v: &Value, names: &[&str]) -> Option<DateTime<Utc>> {
    names
        .iter()
        .find_map(|n| v.get(n).and_then(Value::as_str).and_then(parse_timestamp))
        .map(|t| t.to_utc())
}

/// A short fingerprint of text (for versions and bank details).
pub fn digest(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let d = h.finalize();
    let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256:{hex}")
}

fn upper(s: Option<&str>) -> Option<String> {
    s.map(|s| s.trim().to_ascii_uppercase())
        .filter(|s| !s.is_empty())
}

impl Transfer {
    pub fn parse(v: &Value) -> Result<Transfer, String> {
        let id = str_at(v, &[&["id"], &["transfer_id"]]).ok_or("no id")?;
        Ok(Transfer {
            id: id.to_string(),
            beneficiary_id: str_at(v, &[&["beneficiary_id"], &["beneficiary", "id"]])
                .map(str::to_string),
            amount: num_at(
                v,
                &[
                    &["transfer_amount"],
                    &["amount"],
                    &["amount_beneficiary_receives"],
                    &["source_amount"],
                ],
            )
            .ok_or_else(|| format!("transfer {id}: no amount"))?,
            currency: upper(str_at(
                v,
                &[&["transfer_currency"], &["currency"], &["source_currency"]],
            ))
            .ok_or_else(|| format!("transfer {id}: no currency"))?,
            created_at: time_at(v, &["created_at"])
                .ok_or_else(|| format!("transfer {id}: no created_at"))?,
            status: str_at(v, &[&["status"]]).map(str::to_string),
            country: upper(str_at(
                v,
                &[
                    &["beneficiary", "bank_details", "bank_country_code"],
                    &[
                        "beneficiary",
                        "beneficiary",
                        "bank_details",
                        "bank_country_code",
                    ],
                    &["bank_country_code"],
                ],
            )),
        })
    }

    pub fn object(&self) -> WatchObject {
        WatchObject {
            kind: "transfer".into(),
            id: self.id.clone(),
            version: digest(&[
                &self.amount.to_string(),
                &self.currency,
                self.beneficiary_id.as_deref().unwrap_or(""),
            ]),
            at: self.created_at,
            changed_at: None,
            data: serde_json::to_value(self).expect("serializes"),
        }
    }
}

impl Beneficiary {
    /// Parses a beneficiary; `updated_at` is returned beside it (when its version changes, that
    /// is when).
    pub fn parse(v: &Value) -> Result<(Beneficiary, Option<DateTime<Utc>>), String> {
        let id = str_at(v, &[&["id"], &["beneficiary_id"]]).ok_or("no id")?;
        // Airwallex nests the payee under `beneficiary`; accept it flat too.
        let inner = v.get("beneficiary").filter(|b| b.is_object()).unwrap_or(v);
        let bank = inner.get("bank_details").cloned().unwrap_or(Value::Null);
        let account = str_at(
            &bank,
            &[&["account_number"], &["iban"], &["account_routing_value1"]],
        )
        .map(|a| {
            let chars: Vec<char> = a.chars().filter(|c| !c.is_whitespace()).collect();
            let tail: String = chars[chars.len().saturating_sub(4)..].iter().collect();
            format!("…{tail}")
        });
        let name = str_at(
            inner,
            &[
                &["company_name"],
                &["bank_details", "account_name"],
                &["name"],
            ],
        )
        .map(str::to_string)
        .or_else(|| {
            let first = str_at(inner, &[&["first_name"]])?;
            let last = str_at(inner, &[&["last_name"]]).unwrap_or("");
            Some(format!("{first} {last}").trim().to_string())
        })
        .or_else(|| str_at(v, &[&["nickname"]]).map(str::to_string));
        // The bank details' fingerprint: every field, in key order (serde_json keeps maps
        // sorted), so any change of account, IBAN, SWIFT or country changes it.
        let bank_fp = if bank.is_null() {
            String::new()
        } else {
            digest(&[&bank.to_string()])
        };
        Ok((
            Beneficiary {
                id: id.to_string(),
                created_at: time_at(v, &["created_at"])
                    .ok_or_else(|| format!("beneficiary {id}: no created_at"))?,
                bank_changed_at: None,
                name,
                country: upper(str_at(&bank, &[&["bank_country_code"], &["country_code"]]))
                    .or_else(|| upper(str_at(inner, &[&["address", "country_code"]]))),
                currency: upper(str_at(&bank, &[&["account_currency"], &["currency"]])),
                account,
                bank: bank_fp,
            },
            time_at(v, &["updated_at"]),
        ))
    }

    pub fn object(&self, updated_at: Option<DateTime<Utc>>) -> WatchObject {
        WatchObject {
            kind: "beneficiary".into(),
            id: self.id.clone(),
            // A new version only when the bank details change.
            version: digest(&[&self.bank]),
            at: self.created_at,
            changed_at: updated_at,
            data: serde_json::to_value(self).expect("serializes"),
        }
    }
}

impl Webhook {
    pub fn parse(v: &Value) -> Result<Webhook, String> {
        let id = str_at(v, &[&["id"]]).ok_or("no id")?;
        Ok(Webhook {
            id: id.to_string(),
            url: str_at(v, &[&["url"], &["notification_url"]])
                .ok_or_else(|| format!("webhook {id}: no url"))?
                .to_string(),
            events: v
                .get("events")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            created_at: time_at(v, &["created_at"])
                .ok_or_else(|| format!("webhook {id}: no created_at"))?,
        })
    }

    pub fn object(&self, updated_at: Option<DateTime<Utc>>) -> WatchObject {
        WatchObject {
            kind: "webhook".into(),
            id: self.id.clone(),
            version: digest(&[&self.url]),
            at: self.created_at,
            changed_at: updated_at,
            data: serde_json::to_value(self).expect("serializes"),
        }
    }
}

impl BalancePoint {
    pub fn parse(v: &Value) -> Result<BalancePoint, String> {
        let posted_at =
            time_at(v, &["posted_at", "created_at"]).ok_or("balance history item: no posted_at")?;
        let currency = upper(str_at(v, &[&["currency"]])).unwrap_or_default();
        let balance = num_at(v, &[&["balance"], &["total_amount"], &["available_amount"]])
            .ok_or("balance history item: no balance")?;
        let amount = num_at(v, &[&["amount"]]).unwrap_or(0.0);
        let source = str_at(v, &[&["source"], &["source_id"]]).map(str::to_string);
        // Balance history items may have no id: their content is their identity.
        let id = match str_at(v, &[&["id"]]) {
            Some(id) => id.to_string(),
            None => digest(&[
                &crate::airwallex::format_timestamp(&posted_at),
                &currency,
                &amount.to_string(),
                &balance.to_string(),
                source.as_deref().unwrap_or(""),
            ]),
        };
        Ok(BalancePoint {
            id,
            currency,
            balance,
            amount,
            posted_at,
            source,
        })
    }

    pub fn object(&self) -> WatchObject {
        WatchObject {
            kind: "balance".into(),
            id: self.id.clone(),
            version: "1".into(),
            at: self.posted_at,
            changed_at: None,
            data: serde_json::to_value(self).expect("serializes"),
        }
    }
}

impl FinancialTransaction {
    pub fn parse(v: &Value) -> Result<FinancialTransaction, String> {
        let id = str_at(v, &[&["id"]]).ok_or("no id")?;
        Ok(FinancialTransaction {
            id: id.to_string(),
            amount: num_at(v, &[&["amount"], &["net"]]).unwrap_or(0.0),
            currency: upper(str_at(v, &[&["currency"]])).unwrap_or_default(),
            created_at: time_at(v, &["created_at", "settled_at"])
                .ok_or_else(|| format!("financial transaction {id}: no created_at"))?,
            transaction_type: str_at(v, &[&["transaction_type"]]).map(str::to_string),
            source: str_at(v, &[&["source_id"], &["source"]]).map(str::to_string),
        })
    }

    pub fn object(&self) -> WatchObject {
        WatchObject {
            kind: "financial_transaction".into(),
            id: self.id.clone(),
            version: "1".into(),
            at: self.created_at,
            changed_at: None,
            data: serde_json::to_value(self).expect("serializes"),
        }
    }
}

/// Parses one list item into what the store keeps.
pub fn parse_item(list: &str, v: &Value) -> Result<WatchObject, String> {
    Ok(match list {
        "transfers" => Transfer::parse(v)?.object(),
        "beneficiaries" => {
            let (b, updated) = Beneficiary::parse(v)?;
            b.object(updated)
        }
        "webhooks" => {
            let updated = time_at(v, &["updated_at"]);
            Webhook::parse(v)?.object(updated)
        }
        "financial_transactions" => FinancialTransaction::parse(v)?.object(),
        _ => BalancePoint::parse(v)?.object(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn transfers_and_beneficiaries_parse_from_either_shape() {
        let t = Transfer::parse(&json!({
            "id": "tr_1", "beneficiary_id": "ben_1", "transfer_amount": "950.50",
            "transfer_currency": "gbp", "created_at": "2026-11-20T10:04:00+0000",
            "beneficiary": {"bank_details": {"bank_country_code": "gb"}}
        }))
        .unwrap();
        assert_eq!((t.amount, t.currency.as_str()), (950.5, "GBP"));
        assert_eq!(t.country.as_deref(), Some("GB"));
        let (b, updated) = Beneficiary::parse(&json!({
            "id": "ben_1", "created_at": "2026-11-20T10:00:00+0000",
            "updated_at": "2026-11-20T10:01:00+0000",
            "beneficiary": {"entity_type": "COMPANY", "company_name": "Acme Ltd",
              "bank_details": {"account_number": "12345678", "bank_country_code": "GB",
                               "account_currency": "GBP"}}
        }))
        .unwrap();
        assert_eq!(b.name.as_deref(), Some("Acme Ltd"));
        assert_eq!(b.account.as_deref(), Some("…5678"));
        assert_eq!(b.country.as_deref(), Some("GB"));
        assert!(updated.is_some());
        assert!(b.bank.starts_with("sha256:"));
        let stored = serde_json::to_string(&b.object(None).data).unwrap();
        assert!(
            !stored.contains("12345678"),
            "the account number is not kept"
        );
        assert!(Transfer::parse(&json!({"id": "x"})).is_err());
    }

    #[test]
    fn balance_points_without_an_id_are_identified_by_their_content() {
        let v = json!({"currency": "USD", "balance": 100.0, "amount": -5,
                       "posted_at": "2026-11-20T10:00:00+0000"});
        let a = BalancePoint::parse(&v).unwrap();
        assert_eq!(a.id, BalancePoint::parse(&v).unwrap().id);
        assert_eq!(a.amount, -5.0);
    }
}
