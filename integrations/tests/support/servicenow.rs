//! An in-memory fake of ServiceNow's Table API on the `incident` table.
//!
//! Written from ServiceNow's Table API reference, field by field
//! (<https://www.servicenow.com/docs/r/api-reference/rest-apis/c_TableAPI.html>):
//!
//! - `GET /api/now/table/incident` with `sysparm_query`, `sysparm_fields`
//!   and `sysparm_limit` answers 200 `{"result":[..]}`, each record holding
//!   only the requested fields. The encoded query understood is what
//!   Certkeeper sends: `field=value` terms on `correlation_id`, `active` and
//!   `state`, `stateNOT IN..`, and `ORDERBY`/`ORDERBYDESC` terms, joined by
//!   `^`. Real ServiceNow silently ignores a term it cannot parse (and so
//!   matches more records); the fake answers 400 instead, to catch it.
//! - `POST /api/now/table/incident` answers 201 `{"result":{record}}` with a
//!   32-hex-digit `sys_id`, a number `INC0010001`.., `state` `1` (New) and
//!   `active` `true`. It checks what the base incident table holds:
//!   `short_description` (non-empty here, at most 160), `correlation_id`
//!   (at most 100), `urgency` and `impact` (`1`..`3`).
//! - `PATCH /api/now/table/incident/{sys_id}` sets the given fields and
//!   answers 200 `{"result":{record}}`, or 404 for an unknown record.
//!   `work_notes` appends a journal entry. `state` `6` (Resolved) requires
//!   `close_code` and `close_notes`, as the base data policy does (403
//!   otherwise); a resolved incident stays `active`, as in ServiceNow, and
//!   only Closed (7) or Canceled (8) make it inactive.
//!
//! Every request must carry an `Authorization` header (else 401 with
//! ServiceNow's `{"error":{"message","detail"},"status":"failure"}`).

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::{RecordedRequest, Responder};

const TABLE: &str = "/api/now/table/incident";

/// One incident as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeIncident {
    /// 32 hex digits.
    pub sys_id: String,
    /// `INC0010001`.
    pub number: String,
    /// Every field set so far, as sent (values as strings).
    pub fields: Map<String, Value>,
    /// `1` New .. `6` Resolved, `7` Closed, `8` Canceled.
    pub state: String,
    /// Whether the incident is active.
    pub active: bool,
    /// Work notes, oldest first.
    pub work_notes: Vec<String>,
}

impl FakeIncident {
    /// A field's value as a string, or "".
    pub fn field(&self, name: &str) -> String {
        match &self.fields.get(name) {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        }
    }

    fn record(&self) -> Map<String, Value> {
        let mut record = self.fields.clone();
        record.remove("work_notes");
        record.insert("sys_id".into(), json!(self.sys_id));
        record.insert("number".into(), json!(self.number));
        record.insert("state".into(), json!(self.state));
        record.insert("active".into(), json!(self.active.to_string()));
        record
    }
}

/// A ServiceNow instance's incident table.
#[derive(Clone, Default)]
pub struct FakeServiceNow {
    incidents: Arc<Mutex<Vec<FakeIncident>>>,
}

fn answer(status: u16, body: Value) -> (u16, String) {
    (status, body.to_string())
}

fn failure(status: u16, message: &str, detail: &str) -> (u16, String) {
    answer(
        status,
        json!({ "error": { "message": message, "detail": detail }, "status": "failure" }),
    )
}

fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl FakeServiceNow {
    /// An empty incident table.
    pub fn new() -> Self {
        Self::default()
    }

    /// The responder to start a [`super::Receiver`] with.
    pub fn responder(&self) -> Responder {
        let fake = self.clone();
        Arc::new(move |request: &RecordedRequest| fake.respond(request))
    }

    /// Every incident, oldest first.
    pub fn incidents(&self) -> Vec<FakeIncident> {
        self.incidents.lock().unwrap().clone()
    }

    fn respond(&self, request: &RecordedRequest) -> (u16, String) {
        if request.header("authorization").is_none() {
            return failure(
                401,
                "User Not Authenticated",
                "Required to provide Auth information",
            );
        }
        let mut incidents = self.incidents.lock().unwrap();
        let Some(rest) = request.path.strip_prefix(TABLE) else {
            return failure(400, "Invalid table", "Only the incident table is faked");
        };
        match (request.method.as_str(), rest.trim_start_matches('/')) {
            ("GET", "") => query(&incidents, request),
            ("POST", "") => create(&mut incidents, request),
            ("PATCH", sys_id) if !sys_id.contains('/') => {
                let Some(incident) = incidents.iter_mut().find(|i| i.sys_id == sys_id) else {
                    return failure(
                        404,
                        "No Record found",
                        "Record doesn't exist or ACL restricts the record retrieval",
                    );
                };
                update(incident, request)
            }
            _ => failure(400, "Requested URI does not represent any resource", ""),
        }
    }
}

fn query_params(request: &RecordedRequest) -> Vec<(String, String)> {
    let query = request.query.clone().unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://fake.invalid/?{query}")).unwrap();
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn query(incidents: &[FakeIncident], request: &RecordedRequest) -> (u16, String) {
    let params = query_params(request);
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let mut matching: Vec<&FakeIncident> = incidents.iter().collect();
    let mut newest_first = false;
    for term in param("sysparm_query").unwrap_or_default().split('^') {
        if term.is_empty() {
            continue;
        }
        if let Some(field) = term.strip_prefix("ORDERBYDESC") {
            if field != "sys_created_on" {
                return failure(400, "Unsupported order", term);
            }
            newest_first = true;
        } else if let Some(field) = term.strip_prefix("ORDERBY") {
            if field != "sys_created_on" {
                return failure(400, "Unsupported order", term);
            }
        } else if let Some(list) = term.strip_prefix("stateNOT IN") {
            let states: Vec<&str> = list.split(',').collect();
            matching.retain(|i| !states.contains(&i.state.as_str()));
        } else if let Some(value) = term.strip_prefix("correlation_id=") {
            matching.retain(|i| i.field("correlation_id") == value);
        } else if let Some(value) = term.strip_prefix("active=") {
            matching.retain(|i| i.active.to_string() == value);
        } else if let Some(value) = term.strip_prefix("state=") {
            matching.retain(|i| i.state == value);
        } else {
            return failure(400, "Unsupported query term", term);
        }
    }
    if newest_first {
        matching.reverse();
    }
    let limit: usize = param("sysparm_limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(10_000);
    let fields = param("sysparm_fields");
    let result: Vec<Value> = matching
        .into_iter()
        .take(limit)
        .map(|i| {
            let mut record = i.record();
            if let Some(fields) = &fields {
                let wanted: Vec<&str> = fields.split(',').collect();
                record.retain(|k, _| wanted.contains(&k.as_str()));
            }
            Value::Object(record)
        })
        .collect();
    answer(200, json!({ "result": result }))
}

fn create(incidents: &mut Vec<FakeIncident>, request: &RecordedRequest) -> (u16, String) {
    let body = request.json();
    let Some(object) = body.as_object() else {
        return failure(400, "Exception while reading request", "not a JSON object");
    };
    let text = |name: &str| object.get(name).and_then(as_text).unwrap_or_default();
    let short = text("short_description");
    if short.trim().is_empty() || short.chars().count() > 160 {
        return failure(400, "Invalid short_description", &short);
    }
    if text("correlation_id").chars().count() > 100 {
        return failure(400, "correlation_id too long", "at most 100 characters");
    }
    for level in ["urgency", "impact"] {
        if !["1", "2", "3"].contains(&text(level).as_str()) {
            return failure(400, "Invalid choice", level);
        }
    }
    let n = incidents.len() + 1;
    let mut incident = FakeIncident {
        sys_id: format!("{:032x}", 0x5a1d_0000_u64 + n as u64),
        number: format!("INC{:07}", 10_000 + n),
        fields: Map::new(),
        state: "1".into(),
        active: true,
        work_notes: Vec::new(),
    };
    for (k, v) in object {
        if let Some(v) = as_text(v) {
            incident.fields.insert(k.clone(), json!(v));
        }
    }
    let record = incident.record();
    incidents.push(incident);
    answer(201, json!({ "result": record }))
}

fn update(incident: &mut FakeIncident, request: &RecordedRequest) -> (u16, String) {
    let body = request.json();
    let Some(object) = body.as_object() else {
        return failure(400, "Exception while reading request", "not a JSON object");
    };
    let text = |name: &str| object.get(name).and_then(as_text);
    if let Some(state) = text("state") {
        if state == "6"
            && (text("close_code").is_none_or(|c| c.is_empty())
                || text("close_notes").is_none_or(|c| c.is_empty()))
        {
            return failure(
                403,
                "Operation Failed",
                "Data Policy Exception: The following fields are mandatory: Resolution code, Resolution notes",
            );
        }
        incident.active = !matches!(state.as_str(), "7" | "8");
        incident.state = state;
    }
    for (k, v) in object {
        match (k.as_str(), as_text(v)) {
            ("state", _) | (_, None) => {}
            ("work_notes", Some(note)) => incident.work_notes.push(note),
            (_, Some(v)) => {
                incident.fields.insert(k.clone(), json!(v));
            }
        }
    }
    answer(200, json!({ "result": incident.record() }))
}
