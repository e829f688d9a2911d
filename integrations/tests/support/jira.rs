//! An in-memory fake of the Jira REST API, enough for the ticketing channel.
//!
//! Written from Atlassian's references, field by field
//! (<https://developer.atlassian.com/cloud/jira/platform/rest/v3/> and
//! <https://developer.atlassian.com/server/jira/platform/rest/>):
//!
//! - search: `GET /rest/api/3/search/jql` (v3; the removed
//!   `/rest/api/3/search` answers 410 Gone as Cloud now does) or
//!   `GET /rest/api/2/search` (v2), with `jql`, `fields`, `maxResults`;
//!   answers `{"issues":[{"id","key","self","fields":{"status":..}}]}`, plus
//!   `startAt`/`maxResults`/`total` on v2 and `isLast` on v3. The JQL
//!   understood is what Certkeeper sends: `project`, `labels` and
//!   `statusCategory` clauses with `=` or `!=`, joined by `AND`, with an
//!   optional `ORDER BY created DESC`; anything else is a 400, as Jira
//!   answers a query it cannot parse.
//! - create: `POST /rest/api/{v}/issue` checks `fields.project.key`,
//!   `fields.summary` (required, at most 255 characters, no line breaks),
//!   `fields.issuetype.name` (one of the project's types), `fields.labels`
//!   (strings without spaces) and `fields.description` (v3: an Atlassian
//!   Document Format `doc`, version 1, of paragraphs of non-empty text nodes
//!   and hard breaks; v2: a string); a violation is a 400 with Jira's
//!   `{"errorMessages":[],"errors":{field: message}}`. Answers 201
//!   `{"id","key","self"}`.
//! - comment: `POST /rest/api/{v}/issue/{key}/comment` with `body` (ADF on
//!   v3, a string on v2); 201, or 404 for an unknown issue.
//! - transitions: `GET /rest/api/{v}/issue/{key}/transitions` lists
//!   `To Do` (11), `In Progress` (21) and `Done` (31) with their target
//!   status and category; `POST` with `{"transition":{"id"}}` moves the issue
//!   and answers 204, or 400 for an unknown id.
//!
//! Every request must carry an `Authorization` header (else 401).

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use super::{RecordedRequest, Responder};

/// The fake's issue types.
const ISSUE_TYPES: [&str; 3] = ["Task", "Bug", "Story"];

/// The fake workflow: transition id, name, target status, its category.
const TRANSITIONS: [(&str, &str, &str, &str); 3] = [
    ("11", "To Do", "To Do", "new"),
    ("21", "In Progress", "In Progress", "indeterminate"),
    ("31", "Done", "Done", "done"),
];

/// One issue as the fake holds it.
#[derive(Debug, Clone)]
pub struct FakeIssue {
    /// `OPS-1`.
    pub key: String,
    /// `10001`.
    pub id: String,
    /// The project key.
    pub project: String,
    /// `fields.summary`.
    pub summary: String,
    /// `fields.issuetype.name`.
    pub issue_type: String,
    /// `fields.labels`.
    pub labels: Vec<String>,
    /// `fields.description`, as sent.
    pub description: Value,
    /// Current status name.
    pub status: String,
    /// Current status category key: `new`, `indeterminate` or `done`.
    pub category: String,
    /// Comment bodies, as sent.
    pub comments: Vec<Value>,
}

struct State {
    version: u8,
    project: String,
    issues: Vec<FakeIssue>,
}

/// A Jira with one project.
#[derive(Clone)]
pub struct FakeJira {
    state: Arc<Mutex<State>>,
}

fn answer(status: u16, body: Value) -> (u16, String) {
    (status, body.to_string())
}

fn field_error(field: &str, message: &str) -> (u16, String) {
    answer(
        400,
        json!({ "errorMessages": [], "errors": { field: message } }),
    )
}

fn message_error(status: u16, message: &str) -> (u16, String) {
    answer(status, json!({ "errorMessages": [message], "errors": {} }))
}

impl FakeJira {
    /// A Jira speaking REST API `version` (2 or 3) with project `project`.
    pub fn new(version: u8, project: &str) -> Self {
        Self {
            state: Arc::new(Mutex::new(State {
                version,
                project: project.to_owned(),
                issues: Vec::new(),
            })),
        }
    }

    /// The responder to start a [`super::Receiver`] with.
    pub fn responder(&self) -> Responder {
        let fake = self.clone();
        Arc::new(move |request: &RecordedRequest| fake.respond(request))
    }

    /// Every issue, oldest first.
    pub fn issues(&self) -> Vec<FakeIssue> {
        self.state.lock().unwrap().issues.clone()
    }

    /// Moves an issue to Done by hand, as a person closing it would.
    pub fn close_by_hand(&self, key: &str) {
        let mut state = self.state.lock().unwrap();
        let issue = state.issues.iter_mut().find(|i| i.key == key).unwrap();
        issue.status = "Done".into();
        issue.category = "done".into();
    }

    fn respond(&self, request: &RecordedRequest) -> (u16, String) {
        if request.header("authorization").is_none() {
            return message_error(
                401,
                "You are not authenticated. Authentication required to perform this operation.",
            );
        }
        let mut state = self.state.lock().unwrap();
        let prefix = format!("/rest/api/{}/", state.version);
        let Some(rest) = request.path.strip_prefix(&prefix) else {
            return message_error(404, "Not found");
        };
        let segments: Vec<&str> = rest.split('/').collect();
        let v3 = state.version == 3;
        match (request.method.as_str(), segments.as_slice()) {
            ("GET", ["search"]) if v3 => message_error(
                410,
                "The requested API has been removed. Please migrate to the /rest/api/3/search/jql API.",
            ),
            ("GET", ["search"]) | ("GET", ["search", "jql"]) => {
                if segments.len() == 2 && !v3 {
                    return message_error(404, "Not found");
                }
                search(&state, request)
            }
            ("POST", ["issue"]) => create(&mut state, request),
            ("POST", ["issue", key, "comment"]) => {
                let body = request.json()["body"].clone();
                if let Err(e) = check_text(v3, &body) {
                    return field_error("comment", &e);
                }
                match state
                    .issues
                    .iter_mut()
                    .find(|i| i.key == *key || i.id == *key)
                {
                    Some(issue) => {
                        issue.comments.push(body.clone());
                        let id = 10_000 + issue.comments.len();
                        answer(201, json!({ "id": id.to_string(), "body": body }))
                    }
                    None => no_issue(),
                }
            }
            ("GET", ["issue", key, "transitions"]) => {
                if !state.issues.iter().any(|i| i.key == *key || i.id == *key) {
                    return no_issue();
                }
                let transitions: Vec<Value> = TRANSITIONS
                    .iter()
                    .map(|(id, name, to, category)| {
                        json!({
                            "id": id,
                            "name": name,
                            "to": { "name": to, "statusCategory": { "key": category } },
                        })
                    })
                    .collect();
                answer(
                    200,
                    json!({ "expand": "transitions", "transitions": transitions }),
                )
            }
            ("POST", ["issue", key, "transitions"]) => {
                let body = request.json();
                let Some(issue) = state
                    .issues
                    .iter_mut()
                    .find(|i| i.key == *key || i.id == *key)
                else {
                    return no_issue();
                };
                let id = body["transition"]["id"].as_str().unwrap_or_default();
                match TRANSITIONS.iter().find(|t| t.0 == id) {
                    Some((_, _, to, category)) => {
                        issue.status = (*to).into();
                        issue.category = (*category).into();
                        (204, String::new())
                    }
                    None => message_error(
                        400,
                        &format!("Transition id '{id}' is not valid for this issue."),
                    ),
                }
            }
            _ => message_error(404, "Not found"),
        }
    }
}

fn no_issue() -> (u16, String) {
    message_error(
        404,
        "Issue does not exist or you do not have permission to see it.",
    )
}

fn query_param(request: &RecordedRequest, name: &str) -> Option<String> {
    let query = request.query.clone().unwrap_or_default();
    let url = reqwest::Url::parse(&format!("http://fake.invalid/?{query}")).unwrap();
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// One JQL clause: field, `=` or `!=`, value.
type Clause = (String, bool, String);

/// Parses the JQL subset the notifier uses.
fn parse_jql(jql: &str) -> Result<Vec<Clause>, String> {
    let upper = jql.to_ascii_uppercase();
    let (body, order) = match upper.find(" ORDER BY ") {
        Some(at) => (&jql[..at], Some(upper[at + 10..].trim().to_owned())),
        None => (jql, None),
    };
    if let Some(order) = order
        && order != "CREATED DESC"
    {
        return Err(format!("unsupported ORDER BY {order}"));
    }
    let mut clauses = Vec::new();
    for clause in body.split(" AND ") {
        let clause = clause.trim();
        let (field, equal, value) = if let Some((f, v)) = clause.split_once("!=") {
            (f, false, v)
        } else if let Some((f, v)) = clause.split_once('=') {
            (f, true, v)
        } else {
            return Err(format!("cannot parse clause {clause:?}"));
        };
        let value = value.trim();
        let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Some(quoted) => quoted.replace("\\\"", "\"").replace("\\\\", "\\"),
            None if !value.is_empty() && !value.contains(char::is_whitespace) => value.into(),
            None => return Err(format!("bad value in {clause:?}")),
        };
        let field = field.trim();
        if !["project", "labels", "statusCategory"].contains(&field) {
            return Err(format!(
                "Field '{field}' does not exist or you do not have permission to view it."
            ));
        }
        clauses.push((field.to_owned(), equal, value));
    }
    Ok(clauses)
}

fn matches(issue: &FakeIssue, (field, equal, value): &Clause) -> bool {
    let hit = match field.as_str() {
        "project" => issue.project == *value,
        "labels" => issue.labels.contains(value),
        "statusCategory" => match value.as_str() {
            "Done" | "done" => issue.category == "done",
            "To Do" | "new" => issue.category == "new",
            _ => issue.category == "indeterminate",
        },
        _ => false,
    };
    hit == *equal
}

fn search(state: &State, request: &RecordedRequest) -> (u16, String) {
    let Some(jql) = query_param(request, "jql") else {
        return message_error(400, "Unbounded JQL queries are not allowed here.");
    };
    let clauses = match parse_jql(&jql) {
        Ok(c) => c,
        Err(e) => return message_error(400, &e),
    };
    let max: usize = query_param(request, "maxResults")
        .and_then(|m| m.parse().ok())
        .unwrap_or(50);
    let found: Vec<&FakeIssue> = state
        .issues
        .iter()
        .rev()
        .filter(|issue| clauses.iter().all(|c| matches(issue, c)))
        .collect();
    let issues: Vec<Value> = found
        .iter()
        .take(max)
        .map(|i| {
            json!({
                "id": i.id,
                "key": i.key,
                "self": format!("http://fake.invalid/rest/api/{}/issue/{}", state.version, i.id),
                "fields": {
                    "status": { "name": i.status, "statusCategory": { "key": i.category } },
                },
            })
        })
        .collect();
    if state.version == 3 {
        answer(
            200,
            json!({ "issues": issues, "isLast": found.len() <= max }),
        )
    } else {
        answer(
            200,
            json!({
                "expand": "schema,names",
                "startAt": 0,
                "maxResults": max,
                "total": found.len(),
                "issues": issues,
            }),
        )
    }
}

fn create(state: &mut State, request: &RecordedRequest) -> (u16, String) {
    let body = request.json();
    let fields = &body["fields"];
    if fields["project"]["key"].as_str() != Some(state.project.as_str()) {
        return field_error("project", "valid project is required");
    }
    let summary = fields["summary"].as_str().unwrap_or_default();
    if summary.trim().is_empty() {
        return field_error("summary", "You must specify a summary of the issue.");
    }
    if summary.chars().count() > 255 {
        return field_error("summary", "Summary must be less than 255 characters.");
    }
    if summary.contains(['\n', '\r']) {
        return field_error(
            "summary",
            "The summary is invalid because it contains newline characters.",
        );
    }
    let issue_type = fields["issuetype"]["name"].as_str().unwrap_or_default();
    if !ISSUE_TYPES.contains(&issue_type) {
        return field_error("issuetype", "Specify a valid issue type");
    }
    let mut labels = Vec::new();
    for label in fields["labels"].as_array().cloned().unwrap_or_default() {
        match label.as_str() {
            Some(l) if !l.is_empty() && !l.contains(char::is_whitespace) && l.len() <= 255 => {
                labels.push(l.to_owned())
            }
            _ => return field_error("labels", "The label must not contain spaces."),
        }
    }
    if let Err(e) = check_text(state.version == 3, &fields["description"]) {
        return field_error("description", &e);
    }
    let n = state.issues.len() + 1;
    let issue = FakeIssue {
        key: format!("{}-{n}", state.project),
        id: (10_000 + n).to_string(),
        project: state.project.clone(),
        summary: summary.to_owned(),
        issue_type: issue_type.to_owned(),
        labels,
        description: fields["description"].clone(),
        status: "To Do".into(),
        category: "new".into(),
        comments: Vec::new(),
    };
    let reply = json!({
        "id": issue.id,
        "key": issue.key,
        "self": format!("http://fake.invalid/rest/api/{}/issue/{}", state.version, issue.id),
    });
    state.issues.push(issue);
    answer(201, reply)
}

/// A text field (description, comment body): ADF on v3, a string on v2.
fn check_text(v3: bool, value: &Value) -> Result<(), String> {
    if !v3 {
        return match value.as_str() {
            Some(s) if !s.trim().is_empty() => Ok(()),
            _ => Err("Operation value must be a string".into()),
        };
    }
    check_adf(value)
}

/// Atlassian Document Format: a `doc` of paragraphs of text and hard breaks.
pub fn check_adf(doc: &Value) -> Result<(), String> {
    let invalid = |why: &str| {
        Err(format!(
            "Operation value must be an Atlassian Document: {why}"
        ))
    };
    if doc["type"] != "doc" || doc["version"] != 1 {
        return invalid("type doc, version 1");
    }
    let Some(blocks) = doc["content"].as_array() else {
        return invalid("content array");
    };
    if blocks.is_empty() {
        return invalid("empty document");
    }
    for block in blocks {
        if block["type"] != "paragraph" {
            return invalid("only paragraphs expected");
        }
        for inline in block["content"].as_array().cloned().unwrap_or_default() {
            match inline["type"].as_str() {
                Some("text") => {
                    if inline["text"].as_str().is_none_or(str::is_empty) {
                        return invalid("text nodes must not be empty");
                    }
                    for mark in inline["marks"].as_array().cloned().unwrap_or_default() {
                        if !["strong", "em", "code", "link"]
                            .contains(&mark["type"].as_str().unwrap_or(""))
                        {
                            return invalid("unknown mark");
                        }
                    }
                }
                Some("hardBreak") => {}
                _ => return invalid("unknown inline node"),
            }
        }
    }
    Ok(())
}
