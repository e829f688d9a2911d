//! Administration end to end, against the real daemon with an internal CA:
//! every API route × every role × an object in and out of the caller's
//! scope; the enrollment workflow under the domain policy; the audit log and
//! its tamper check; failed sign-ins limited.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Daemon, eventually, free_port, http};
use serde_json::{Value, json};

const ROOT: &str = "root-token-for-tests-0123456789";

struct Api<'a> {
    daemon: &'a Daemon,
}

impl Api<'_> {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        let body = body.map(|b| serde_json::to_vec(&b).unwrap());
        let (status, text) = http(method, &self.daemon.url(path), body.as_deref(), &headers);
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let (status, body_out) = self.call(method, path, Some(ROOT), Some(body));
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {body_out}"
        );
        body_out
    }
}

fn config(daemon: &Daemon) -> String {
    format!(
        r#"
[api]
token = "{ROOT}"

[alerts]
check_interval_seconds = 1

[renewal]
check_interval_seconds = 1

{corp_ca}
[[job]]
name = "web-weekly"
type = "report"
kind = "inventory"
schedule = "0 0 0 1 1 *"
org_unit = "web"
directory = "{reports}/web"

[[job]]
name = "finance-weekly"
type = "report"
kind = "inventory"
schedule = "0 0 0 1 1 *"
org_unit = "finance"
directory = "{reports}/finance"
"#,
        corp_ca = daemon.corp_ca(),
        reports = daemon.path("reports").display(),
    )
}

/// A report file of each scheduled job, as the job names them; returns the
/// file name by job.
fn report_files(daemon: &Daemon) -> HashMap<&'static str, String> {
    let mut files = HashMap::new();
    for (job, unit) in [("web-weekly", "web"), ("finance-weekly", "finance")] {
        let dir = daemon.path("reports").join(unit);
        std::fs::create_dir_all(&dir).unwrap();
        let name = format!("{job}-20261127-060000.csv");
        std::fs::write(dir.join(&name), format!("subject\r\nCN=only-{unit}\r\n")).unwrap();
        files.insert(job, name);
    }
    files
}

/// Starts a daemon and builds the organisation: units web (with web-shop
/// below it) and finance; alice (primary), dave (department admin of web),
/// audrey (auditor), sam (subscriber in web), fred (department admin of
/// finance); domain rules; one imported certificate and one issued
/// certificate per side. Returns the tokens by user.
fn organisation(daemon: &mut Daemon) -> HashMap<&'static str, String> {
    // Config with [api] twice would be refused: write it whole.
    let store = daemon.path("store");
    std::fs::write(
        &daemon.config,
        format!(
            "[store]\nurl = \"surrealkv://{}\"\n{}",
            store.display(),
            config(daemon).replace(
                "[api]\n",
                &format!("[api]\nlisten = \"127.0.0.1:{}\"\n", daemon.port)
            )
        ),
    )
    .unwrap();
    daemon.start();
    let api = Api { daemon };
    for (name, parent) in [("web", None), ("web-shop", Some("web")), ("finance", None)] {
        api.ok(
            "POST",
            "/api/v1/org-units",
            json!({ "name": name, "parent": parent }),
        );
    }
    let mut tokens = HashMap::new();
    for (user, role, units) in [
        ("alice", "primary_admin", vec![]),
        ("dave", "department_admin", vec!["web"]),
        ("audrey", "auditor", vec![]),
        ("sam", "subscriber", vec!["web"]),
        ("fred", "department_admin", vec!["finance"]),
    ] {
        api.ok(
            "POST",
            "/api/v1/users",
            json!({ "name": user, "role": role, "units": units }),
        );
        let t = api.ok(
            "POST",
            "/api/v1/tokens",
            json!({ "user": user, "label": "tests" }),
        );
        tokens.insert(user, t["token"].as_str().unwrap().to_owned());
    }
    for (domain, unit, mode) in [
        ("shop.corp.test", Some("web"), "pre_approved"),
        ("app.corp.test", Some("web"), "requires_approval"),
        ("pay.corp.test", Some("finance"), "pre_approved"),
        ("ledger.corp.test", Some("finance"), "requires_approval"),
        ("blocked.corp.test", None, "blocked"),
    ] {
        api.ok(
            "POST",
            "/api/v1/domains",
            json!({ "domain": domain, "org_unit": unit, "mode": mode }),
        );
    }
    tokens
}

/// Waits until a managed certificate is issued; returns its fingerprint.
fn issued(api: &Api, name: &str) -> String {
    eventually(Duration::from_secs(60), || {
        let (_, body) = api.call("GET", "/api/v1/managed", Some(ROOT), None);
        body["items"]
            .as_array()?
            .iter()
            .find(|m| m["name"] == name && m["generation"] == 1)
            .and_then(|m| m["fingerprint"].as_str().map(str::to_owned))
    })
    .unwrap_or_else(|| panic!("{name} not issued\n{}", api.daemon.log()))
}

/// What a role may do on a route: which roles pass the permission check,
/// and whether an object in the path (or a list) is scoped. Written here,
/// independently of the daemon's table, from the issue's role definitions.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scoping {
    None,
    Object,
    List,
}

fn expectation(method: &str, path: &str) -> (&'static [&'static str], Scoping) {
    const ALL: &[&str] = &["alice", "dave", "audrey", "sam", "fred"];
    const READERS: &[&str] = ALL;
    const OPS: &[&str] = &["alice", "audrey"];
    const ADMIN: &[&str] = &["alice"];
    const IMPORT: &[&str] = &["alice", "dave", "fred"];
    const ENROLL: &[&str] = &["alice", "dave", "sam", "fred"];
    const APPROVE: &[&str] = &["alice", "dave", "fred"];
    const APPROVE_OR_AUDIT: &[&str] = &["alice", "dave", "audrey", "fred"];
    const LIFECYCLE: &[&str] = &["alice", "dave", "sam", "fred"];
    const PUBLIC: &[&str] = &["anonymous", "alice", "dave", "audrey", "sam", "fred"];
    use Scoping::*;
    match (method, path) {
        ("GET", "/healthz" | "/readyz" | "/api/v1/openapi.json" | "/crl/{connector}") => {
            (PUBLIC, None)
        }
        (
            "GET",
            "/metrics"
            | "/api/v1/jobs"
            | "/api/v1/jobs/{name}/runs"
            | "/api/v1/jobs/{name}/shards"
            | "/api/v1/ct/logs"
            | "/api/v1/deliveries",
        ) => (OPS, None),
        ("GET", "/api/v1/audit" | "/api/v1/audit/verify") => (OPS, None),
        (
            "GET",
            "/api/v1/certificates" | "/api/v1/findings" | "/api/v1/managed" | "/api/v1/events",
        )
        | ("GET", "/api/v1/alerts" | "/api/v1/requests" | "/api/v1/counts" | "/api/v1/expiries") => {
            (READERS, List)
        }
        ("GET", "/api/v1/certificates/{fingerprint}" | "/api/v1/requests/{id}") => {
            (READERS, Object)
        }
        ("GET", "/api/v1/reports/{kind}") => (READERS, List),
        ("GET", "/api/v1/reports/files/{job}/{file}") => (APPROVE_OR_AUDIT, Object),
        ("GET", "/api/v1/reports/files") => (APPROVE_OR_AUDIT, List),
        ("GET", "/api/v1/org-units" | "/api/v1/domains" | "/api/v1/whoami" | "/api/v1/tokens") => {
            (READERS, None)
        }
        ("GET", "/api/v1/users" | "/api/v1/contacts") => (ADMIN, None),
        ("POST", "/api/v1/contacts") | ("DELETE", "/api/v1/contacts/{name}") => (ADMIN, None),
        ("GET", "/api/v1/units" | "/api/v1/domains/caa") => (READERS, None),
        ("POST", "/api/v1/units") => (ADMIN, None),
        ("POST", "/api/v1/tokens" | "/api/v1/logout") => (ALL, None),
        ("POST", "/api/v1/login") => (PUBLIC, None),
        ("DELETE", "/api/v1/tokens/{id}") => (ALL, Object),
        ("POST", "/api/v1/import") => (IMPORT, None),
        (
            "POST",
            "/api/v1/certificates/{fingerprint}/deactivate"
            | "/api/v1/certificates/{fingerprint}/reactivate",
        ) => (IMPORT, Object),
        ("GET", "/api/v1/deactivation-candidates") => (READERS, List),
        ("POST", "/api/v1/jobs/{name}/run" | "/api/v1/managed/renew-all") => (ADMIN, None),
        (
            "POST",
            "/api/v1/managed"
            | "/api/v1/managed/adopt"
            | "/api/v1/users"
            | "/api/v1/users/{name}"
            | "/api/v1/org-units",
        )
        | ("POST", "/api/v1/domains" | "/api/v1/certificates/assign")
        | ("DELETE", "/api/v1/managed/{name}" | "/api/v1/domains/{domain}") => (ADMIN, None),
        ("POST", "/api/v1/requests" | "/api/v1/requests/bulk") => (ENROLL, None),
        (
            "POST",
            "/api/v1/requests/{id}/approve"
            | "/api/v1/requests/{id}/reject"
            | "/api/v1/requests/{id}/assign",
        ) => (APPROVE, Object),
        ("POST", "/api/v1/managed/{name}/renew" | "/api/v1/certificates/{fingerprint}/replace")
        | ("POST", "/api/v1/certificates/{fingerprint}/revoke") => (LIFECYCLE, Object),
        ("POST", "/api/v1/alerts/{id}/ack") => (APPROVE, Object),
        _ => panic!(
            "no expectation for {method} {path}: a new route needs a rule here and in api::routes"
        ),
    }
}

/// What the scope checks act on, one of each on each side: "in" is unit
/// web (dave's and sam's), "out" is finance (fred's).
struct Sides {
    /// An imported certificate, expiring in 20 days (alerts raise).
    fp: HashMap<&'static str, String>,
    /// A managed certificate issued on a pre-approved request.
    managed: HashMap<&'static str, String>,
    /// The fingerprint `managed` holds.
    issued_fp: HashMap<&'static str, String>,
    /// A request pending approval.
    pending: HashMap<&'static str, String>,
}

fn two_sides(daemon: &Daemon, tokens: &HashMap<&'static str, String>) -> Sides {
    let api = Api { daemon };
    let dir = daemon.path("pki");
    std::fs::create_dir_all(&dir).unwrap();
    // One imported certificate per side, expiring in 20 days (alerts raise).
    let mut fp = HashMap::new();
    for (side, unit, contacts) in [("in", "web", vec!["sam"]), ("out", "finance", vec!["fred"])] {
        let pem = common::self_signed(&dir, &format!("{side}.corp.test"), 20);
        let (status, outcome) = {
            let (s, t) = http(
                "POST",
                &daemon.url("/api/v1/import"),
                Some(&pem),
                &[("Authorization", &format!("Bearer {ROOT}"))],
            );
            (s, serde_json::from_str::<Value>(&t).unwrap())
        };
        assert_eq!(status, 200, "{outcome}");
        let f = outcome["added"][0].as_str().unwrap().to_owned();
        api.ok(
            "POST",
            "/api/v1/certificates/assign",
            json!({ "fingerprints": [f], "org_unit": unit, "contacts": contacts }),
        );
        fp.insert(side, f);
    }
    // One issued (pre-approved) and one pending request per side. The
    // finance side's are the root token's, not fred's: under the four-eyes
    // rule fred may approve only what someone else asked for.
    let mut managed = HashMap::new();
    let mut pending = HashMap::new();
    let root = ROOT.to_owned();
    for (side, token, unit, pre, needs) in [
        (
            "in",
            &tokens["sam"],
            "web",
            "www.shop.corp.test",
            "api.app.corp.test",
        ),
        (
            "out",
            &root,
            "finance",
            "www.pay.corp.test",
            "gl.ledger.corp.test",
        ),
    ] {
        let (status, r) = api.call(
            "POST",
            "/api/v1/requests",
            Some(token),
            Some(json!({ "identifiers": [pre], "connector": "corp-ca", "org_unit": unit })),
        );
        assert_eq!(status, 201, "{r}");
        managed.insert(side, r["managed"].as_str().unwrap().to_owned());
        let (status, r) = api.call(
            "POST",
            "/api/v1/requests",
            Some(token),
            Some(json!({ "identifiers": [needs], "connector": "corp-ca", "org_unit": unit })),
        );
        assert_eq!(status, 202, "{r}");
        pending.insert(side, r["id"].as_str().unwrap().to_owned());
    }
    let mut issued_fp = HashMap::new();
    for side in ["in", "out"] {
        issued_fp.insert(side, issued(&api, &managed[side]));
    }
    Sides {
        fp,
        managed,
        issued_fp,
        pending,
    }
}

#[test]
fn every_route_role_and_scope_is_enforced() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let Sides {
        fp,
        managed,
        issued_fp,
        pending,
    } = two_sides(&daemon, &tokens);
    let alert = |side: &str| format!("{}_30", fp[side]);
    eventually(Duration::from_secs(30), || {
        let (_, a) = api.call("GET", "/api/v1/alerts", Some(ROOT), None);
        (a["items"].as_array()?.len() >= 2).then_some(())
    })
    .expect("expiry alerts raised");
    // Spare tokens to revoke: each user's own, and alice's for "another's".
    let mut spare = HashMap::new();
    for user in ["alice", "dave", "audrey", "sam", "fred"] {
        let t = api.ok(
            "POST",
            "/api/v1/tokens",
            json!({ "user": user, "label": "spare" }),
        );
        spare.insert(user, t["id"].as_str().unwrap().to_owned());
    }

    let files = report_files(&daemon);
    let specs = certkeeper::api::routes::specs();
    assert!(specs.len() >= 40, "the route table lists every route");
    let mut checked = 0;
    let mut failures = Vec::new();
    // Primary admin last: its allowed destructive calls must not remove the
    // objects the other roles are checked against.
    for user in ["anonymous", "audrey", "sam", "dave", "fred", "alice"] {
        let token = tokens.get(user).map(String::as_str);
        for spec in &specs {
            let method = spec.method.as_str();
            let (allowed_roles, scoping) = expectation(method, spec.path);
            for side in ["in", "out"] {
                if scoping == Scoping::None && side == "out" {
                    continue;
                }
                // fred's scope is finance: "in" for him is the finance side.
                let object_side = if user == "fred" {
                    if side == "in" { "out" } else { "in" }
                } else {
                    side
                };
                // Revoke and replace act on what Certkeeper issued; the
                // inventory routes on the imported certificates. Retiring
                // acts on the issued ones too, which it refuses (409) to
                // those allowed: the imported ones keep their alerts for
                // the routes checked after.
                let certificate = if ["/revoke", "/replace", "/deactivate", "/reactivate"]
                    .iter()
                    .any(|a| spec.path.ends_with(a))
                {
                    &issued_fp[object_side]
                } else {
                    &fp[object_side]
                };
                let path = spec
                    .path
                    .replace("{fingerprint}", certificate)
                    .replace(
                        "{name}",
                        if spec.path.contains("/jobs/") {
                            "inventory-refresh"
                        } else if spec.path.contains("/users/") {
                            "dave"
                        } else {
                            &managed[object_side]
                        },
                    )
                    .replace("{connector}", "corp-ca")
                    .replace("{kind}", "inventory")
                    .replace(
                        "{job}",
                        if object_side == "in" {
                            "web-weekly"
                        } else {
                            "finance-weekly"
                        },
                    )
                    .replace(
                        "{file}",
                        &files[if object_side == "in" {
                            "web-weekly"
                        } else {
                            "finance-weekly"
                        }],
                    )
                    .replace("{domain}", "nothing.corp.test")
                    .replace(
                        "{id}",
                        &if spec.path.contains("/alerts/") {
                            alert(object_side)
                        } else if spec.path.contains("/tokens/") {
                            let owner = if side == "in" { user } else { "alice" };
                            spare
                                .get(owner)
                                .cloned()
                                .unwrap_or_else(|| "000000000000".into())
                        } else {
                            pending[object_side].clone()
                        },
                    );
                let body = match spec.path {
                    "/api/v1/requests/{id}/reject" => json!({ "reason": "checking permissions" }),
                    "/api/v1/requests/{id}/assign" => json!({ "to": "alice" }),
                    "/api/v1/users/{name}" => json!({ "disabled": false }),
                    "/api/v1/tokens" => json!({ "label": "authz" }),
                    _ => json!({}),
                };
                let (status, response) = api.call(method, &path, token, Some(body));
                let permitted = allowed_roles.contains(&user);
                let all_scope = matches!(user, "alice" | "audrey");
                // Tokens: one's own is in scope; only alice reaches others'.
                let in_scope = side == "in" || all_scope || (user == "anonymous");
                let expect_allow =
                    permitted && (scoping == Scoping::None || in_scope || scoping == Scoping::List);
                let denied = matches!(status, 401 | 403)
                    || (status == 404 && !in_scope && scoping == Scoping::Object);
                let mut ok = expect_allow != denied;
                // A list out of scope answers, without the other side's objects.
                if ok && scoping == Scoping::List && side == "out" && permitted && !all_scope {
                    let text = response.to_string();
                    // The side outside the caller's scope (fred's is "in").
                    let other = if user == "fred" { "in" } else { "out" };
                    let leaked = [&fp[other], &pending[other], &managed[other]]
                        .into_iter()
                        .any(|m| text.contains(m.as_str()));
                    if leaked {
                        ok = false;
                    }
                }
                if user == "anonymous" && !allowed_roles.contains(&"anonymous") && status != 401 {
                    ok = false;
                }
                if !ok {
                    failures.push(format!(
                        "{user} {method} {path} ({side} scope): expected {}, got {status} {response}",
                        if expect_allow { "allow" } else { "deny" }
                    ));
                }
                checked += 1;
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!("{checked} route × role × scope checks passed");
    // Scheduled report files: each department admin lists only its unit's
    // job; the auditor both.
    for (user, jobs) in [
        ("dave", vec!["web-weekly"]),
        ("fred", vec!["finance-weekly"]),
        ("audrey", vec!["web-weekly", "finance-weekly"]),
    ] {
        let (status, listed) = api.call("GET", "/api/v1/reports/files", Some(&tokens[user]), None);
        assert_eq!(status, 200, "{user}: {listed}");
        let names: Vec<&str> = listed["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| j["job"].as_str().unwrap())
            .collect();
        assert_eq!(names, jobs, "{user}: {listed}");
        assert_eq!(
            listed["items"][0]["files"][0]["name"],
            files[jobs[0]].as_str(),
            "{user}: {listed}"
        );
    }
}

/// The route walk above puts objects in the path; these are chosen by the
/// body or the query instead, where a handler that forgets the caller's
/// scope would act on (or show) another unit's objects.
#[test]
fn objects_chosen_by_body_or_query_stay_in_scope() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let sides = two_sides(&daemon, &tokens);
    let finance = [
        sides.fp["out"].as_str(),
        sides.issued_fp["out"].as_str(),
        sides.managed["out"].as_str(),
        sides.pending["out"].as_str(),
    ];
    let mut failures = Vec::new();
    let leaks = |body: &Value| finance.iter().any(|f| body.to_string().contains(f));

    // Writes naming another unit, another user or another's object.
    for (user, method, path, body) in [
        (
            "dave",
            "POST",
            "/api/v1/requests",
            json!({ "identifiers": ["x.pay.corp.test"], "connector": "corp-ca", "org_unit": "finance" }),
        ),
        (
            "sam",
            "POST",
            "/api/v1/requests",
            json!({ "identifiers": ["y.pay.corp.test"], "connector": "corp-ca", "org_unit": "finance" }),
        ),
        (
            "dave",
            "POST",
            "/api/v1/tokens",
            json!({ "user": "alice", "label": "mine now" }),
        ),
        (
            "sam",
            "POST",
            "/api/v1/tokens",
            json!({ "user": "dave", "label": "mine now" }),
        ),
        (
            "dave",
            "POST",
            "/api/v1/certificates/assign",
            json!({ "fingerprints": [sides.fp["out"]], "org_unit": "web" }),
        ),
    ] {
        let (status, answer) = api.call(method, path, Some(&tokens[user]), Some(body.clone()));
        if !matches!(status, 400 | 403 | 404) {
            failures.push(format!("{user} {method} {path} {body}: {status} {answer}"));
        }
    }
    // Assigning one's own request to someone outside its unit.
    let path = format!("/api/v1/requests/{}/assign", sides.pending["in"]);
    let (status, answer) = api.call(
        "POST",
        &path,
        Some(&tokens["dave"]),
        Some(json!({ "to": "fred" })),
    );
    if !matches!(status, 400 | 403) {
        failures.push(format!("dave POST {path} to fred: {status} {answer}"));
    }

    // Reads filtered by the query: an answer, never the other side's objects.
    for user in ["dave", "sam"] {
        for path in [
            format!("/api/v1/managed?name={}", sides.managed["out"]),
            format!("/api/v1/managed?fingerprint={}", sides.issued_fp["out"]),
            "/api/v1/certificates?org_unit=finance".to_owned(),
            format!("/api/v1/certificates?q={}", &sides.fp["out"][..16]),
            "/api/v1/findings?org_unit=finance".to_owned(),
            "/api/v1/alerts?org_unit=finance".to_owned(),
            "/api/v1/requests?org_unit=finance".to_owned(),
            "/api/v1/events".to_owned(),
            "/api/v1/expiries?org_unit=finance".to_owned(),
            "/api/v1/reports/inventory?format=json&administrator=fred".to_owned(),
            "/api/v1/reports/org-units?format=json".to_owned(),
            "/api/v1/reports/expiring?format=json&org_unit=finance".to_owned(),
        ] {
            let (status, answer) = api.call("GET", &path, Some(&tokens[user]), None);
            if status >= 500 || (status == 200 && leaks(&answer)) {
                failures.push(format!("{user} GET {path}: {status} {answer}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The primary admin, by contrast, reaches them all.
    let (_, answer) = api.call(
        "GET",
        &format!("/api/v1/managed?fingerprint={}", sides.issued_fp["out"]),
        Some(&tokens["alice"]),
        None,
    );
    assert!(leaks(&answer), "alice sees finance's certificate: {answer}");
}

#[test]
fn enrollment_follows_the_domain_policy_and_everything_is_audited() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let request = |user: &str, names: &[&str]| {
        api.call(
            "POST",
            "/api/v1/requests",
            Some(&tokens[user]),
            Some(json!({ "identifiers": names, "connector": "corp-ca" })),
        )
    };
    // Pre-approved: issued at once through the internal CA.
    let (status, r) = request("sam", &["www.shop.corp.test", "Shop.Corp.Test."]);
    assert_eq!(status, 201, "{r}");
    assert_eq!(r["state"], "approved");
    assert_eq!(r["decided_by"], "rules");
    assert_eq!(
        r["identifiers"],
        json!(["www.shop.corp.test", "shop.corp.test"])
    );
    let fp = issued(&api, r["managed"].as_str().unwrap());
    let (_, cert) = api.call(
        "GET",
        &format!("/api/v1/certificates/{fp}"),
        Some(&tokens["sam"]),
        None,
    );
    assert_eq!(cert["certificate"]["org_unit"], "web", "{cert}");
    // Requires approval: pending, approvers told, approved by the unit's
    // admin, then issued.
    let (status, r) = request("sam", &["api.app.corp.test"]);
    assert_eq!(status, 202, "{r}");
    assert_eq!(r["state"], "pending");
    let id = r["id"].as_str().unwrap().to_owned();
    let (_, events) = api.call("GET", "/api/v1/events", Some(ROOT), None);
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"]["type"] == "request_pending_approval"
                && e["kind"]["request"] == json!(id)),
        "{events}"
    );
    let (status, _) = api.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&tokens["sam"]),
        None,
    );
    assert_eq!(status, 403, "a subscriber approves nothing");
    let (status, _) = api.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&tokens["fred"]),
        None,
    );
    assert_eq!(status, 404, "another unit's admin does not even see it");
    let (status, r) = api.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&tokens["dave"]),
        None,
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["decided_by"], "dave");
    issued(&api, r["managed"].as_str().unwrap());
    let (status, _) = api.call(
        "POST",
        &format!("/api/v1/requests/{id}/approve"),
        Some(&tokens["dave"]),
        None,
    );
    assert_eq!(status, 409, "approved once");
    // Rejected by approver, with a reason the requester sees.
    let (_, r) = request("sam", &["beta.app.corp.test"]);
    let id2 = r["id"].as_str().unwrap().to_owned();
    let (status, r) = api.call(
        "POST",
        &format!("/api/v1/requests/{id2}/reject"),
        Some(&tokens["dave"]),
        Some(json!({ "reason": "use the shared beta certificate" })),
    );
    assert_eq!(status, 200, "{r}");
    let (_, r) = api.call(
        "GET",
        &format!("/api/v1/requests/{id2}"),
        Some(&tokens["sam"]),
        None,
    );
    assert_eq!(r["state"], "rejected");
    assert_eq!(r["reason"], "use the shared beta certificate");
    // Refused by the rules: blocked, another unit's domain, unmanaged,
    // wildcard where not allowed, a unit outside the requester's.
    for (names, needle) in [
        (vec!["x.blocked.corp.test"], "blocked"),
        (vec!["www.pay.corp.test"], "finance"),
        (vec!["www.example.org"], "not a managed domain"),
        (vec!["*.shop.corp.test"], "wildcard"),
    ] {
        let (status, r) = request("sam", &names);
        assert_eq!(status, 422, "{names:?}: {r}");
        assert_eq!(r["state"], "rejected");
        let reason = r["reason"].as_str().unwrap().to_lowercase();
        assert!(reason.contains(needle), "{names:?}: {reason}");
    }
    let (status, r) = api.call("POST", "/api/v1/requests", Some(&tokens["sam"]), Some(json!({ "identifiers": ["www.pay.corp.test"], "org_unit": "finance", "connector": "corp-ca" })));
    assert_eq!(status, 403, "{r}");
    let (status, r) = request("sam", &["bad..name.corp.test"]);
    assert_eq!(status, 400, "{r}");

    // The audit log has every action, by its actor.
    let (status, log) = api.call("GET", "/api/v1/audit", Some(&tokens["audrey"]), None);
    assert_eq!(status, 200, "{log}");
    let entries = log["items"].as_array().unwrap();
    let has = |actor: &str, action: &str| {
        entries
            .iter()
            .any(|e| e["actor"] == actor && e["action"] == action)
    };
    for (actor, action) in [
        ("api-token", "org_unit_put"),
        ("api-token", "user_create"),
        ("api-token", "token_create"),
        ("api-token", "domain_put"),
        ("sam", "request_create"),
        ("dave", "request_approve"),
        ("dave", "request_reject"),
        ("system", "certificate_issue"),
    ] {
        assert!(has(actor, action), "no {action} by {actor} in {log}");
    }
    let (status, verify) = api.call("GET", "/api/v1/audit/verify", Some(&tokens["audrey"]), None);
    assert_eq!(status, 200);
    assert_eq!(verify["intact"], true, "{verify}");
    let (status, _) = api.call("GET", "/api/v1/audit", Some(&tokens["dave"]), None);
    assert_eq!(status, 403, "department admins do not read the audit log");

    // Tampering: stop the daemon, edit one entry and delete another in the
    // store; `certkeeper audit verify` names them.
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
    let ok = daemon.cli(&["audit", "verify"]);
    assert!(ok.status.success(), "{ok:?}");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = certkeeper::config::Config::load(&daemon.config).unwrap();
    runtime.block_on(async {
        let store = certkeeper_store::Store::open(&config.store).await.unwrap();
        store
            .execute(
                "UPDATE audit SET actor = 'mallory' WHERE seq = 5",
                json!({}),
            )
            .await
            .unwrap();
        store.close(Duration::from_secs(10)).await;
    });
    let broken = daemon.cli(&["audit", "verify"]);
    assert!(!broken.status.success());
    let text = String::from_utf8_lossy(&broken.stderr);
    assert!(text.contains("entry 5"), "{text}");
    runtime.block_on(async {
        let store = certkeeper_store::Store::open(&config.store).await.unwrap();
        store
            .execute(
                "UPDATE audit SET actor = 'api-token' WHERE seq = 5",
                json!({}),
            )
            .await
            .unwrap();
        store
            .execute("DELETE audit WHERE seq = 7", json!({}))
            .await
            .unwrap();
        store.close(Duration::from_secs(10)).await;
    });
    let broken = daemon.cli(&["audit", "verify"]);
    assert!(!broken.status.success());
    let text = String::from_utf8_lossy(&broken.stderr);
    assert!(
        text.contains("entry 8") || text.contains("entry 7"),
        "{text}"
    );
    // CEF export for a SIEM.
    let cef = daemon.cli_ok(&["audit", "export", "--format", "cef"]);
    assert!(
        cef.lines()
            .all(|l| l.starts_with("CEF:0|Certkeeper|certkeeper|")),
        "{cef}"
    );
    assert!(cef.contains("suser=dave"), "{cef}");
}

#[test]
fn bad_tokens_are_refused_and_repeated_failures_locked_out() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let (status, me) = api.call("GET", "/api/v1/whoami", Some(&tokens["dave"]), None);
    assert_eq!(status, 200);
    assert_eq!(me["role"], "department_admin");
    assert_eq!(
        me["units"],
        json!(["web", "web-shop"]),
        "units include those below"
    );
    for bad in [
        "",
        "nonsense",
        "ckt_000000000000_AAAA",
        &tokens["dave"][..tokens["dave"].len() - 1],
    ] {
        let (status, body) = api.call("GET", "/api/v1/whoami", Some(bad), None);
        assert_eq!(status, 401, "{bad}: {body}");
        assert!(
            !body.to_string().contains(&tokens["dave"]),
            "the token is not echoed"
        );
    }
    let (status, _) = api.call("GET", "/api/v1/certificates", None, None);
    assert_eq!(status, 401, "accounts exist: no anonymous access");
    // Revoked and disabled.
    let t = api.ok("POST", "/api/v1/tokens", json!({ "user": "sam" }));
    let sam2 = t["token"].as_str().unwrap().to_owned();
    assert_eq!(api.call("GET", "/api/v1/whoami", Some(&sam2), None).0, 200);
    api.call(
        "DELETE",
        &format!("/api/v1/tokens/{}", t["id"].as_str().unwrap()),
        Some(ROOT),
        None,
    );
    assert_eq!(api.call("GET", "/api/v1/whoami", Some(&sam2), None).0, 401);
    api.ok("POST", "/api/v1/users/sam", json!({ "disabled": true }));
    assert_eq!(
        api.call("GET", "/api/v1/whoami", Some(&tokens["sam"]), None)
            .0,
        401
    );
    // Many failures from one source: locked out, with Retry-After, even for
    // a good token, until the window passes.
    let mut locked = false;
    for i in 0..40 {
        let (status, _) = api.call(
            "GET",
            "/api/v1/whoami",
            Some(&format!("ckt_{i:012}_{}", "A".repeat(43))),
            None,
        );
        if status == 429 {
            locked = true;
            break;
        }
    }
    assert!(locked, "repeated failures end in 429");
    assert_eq!(
        api.call("GET", "/api/v1/whoami", Some(&tokens["dave"]), None)
            .0,
        429
    );
    let _ = free_port();
}

#[test]
fn purchased_units_are_consumed_and_replenishment_fires_once() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let units = api.ok(
        "POST",
        "/api/v1/units",
        json!({ "connector": "corp-ca", "add": 3, "threshold": 2 }),
    );
    assert_eq!(units["remaining"], 3);
    let mut names = Vec::new();
    for i in 0..3 {
        let (status, r) = api.call(
            "POST",
            "/api/v1/requests",
            Some(&tokens["dave"]),
            Some(
                json!({ "identifiers": [format!("n{i}.shop.corp.test")], "connector": "corp-ca" }),
            ),
        );
        assert_eq!(status, 201, "{r}");
        names.push(r["managed"].as_str().unwrap().to_owned());
        // One at a time, so the count below is exact at each step.
        issued(&api, names.last().unwrap());
    }
    let (_, list) = api.call("GET", "/api/v1/units", Some(&tokens["audrey"]), None);
    assert_eq!(list["items"][0]["used"], 3, "{list}");
    assert_eq!(list["items"][0]["remaining"], 0);
    let low_events = || {
        let (_, events) = api.call("GET", "/api/v1/events?limit=1000", Some(ROOT), None);
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"]["type"] == "units_low")
            .cloned()
            .collect::<Vec<_>>()
    };
    let low = low_events();
    assert_eq!(
        low.len(),
        1,
        "fires once when 1 < 2 is first reached: {low:?}"
    );
    assert_eq!(low[0]["kind"]["remaining"], 1);
    // None left: a new request is refused with the reason.
    let (status, r) = api.call(
        "POST",
        "/api/v1/requests",
        Some(&tokens["dave"]),
        Some(json!({ "identifiers": ["n9.shop.corp.test"], "connector": "corp-ca" })),
    );
    assert_eq!(status, 422, "{r}");
    assert!(r.to_string().contains("no purchased units left"), "{r}");
    // Replenished above the threshold: the event is re-armed and fires
    // again only when the account runs low again.
    let units = api.ok(
        "POST",
        "/api/v1/units",
        json!({ "connector": "corp-ca", "add": 3, "threshold": 2 }),
    );
    assert_eq!(units["remaining"], 3);
    assert_eq!(units["low"], false);
    let (status, r) = api.call(
        "POST",
        "/api/v1/requests",
        Some(&tokens["dave"]),
        Some(json!({ "identifiers": ["n10.shop.corp.test"], "connector": "corp-ca" })),
    );
    assert_eq!(status, 201, "{r}");
    issued(&api, r["managed"].as_str().unwrap());
    assert_eq!(low_events().len(), 1, "2 left is not below 2");
}

#[test]
fn a_merger_enrolls_from_csv_row_by_row() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let csv = "identifiers,connector,org_unit,contact\n\
               www.shop.corp.test;shop.corp.test,corp-ca,web,\"Sam Smith <sam@corp.test>\"\n\
               api.app.corp.test,corp-ca,web,\n\
               x.blocked.corp.test,corp-ca,web,\n\
               www.pay.corp.test,corp-ca,finance,\n\
               bad..name.corp.test,corp-ca,web,\n";
    let auth = format!("Bearer {}", tokens["dave"]);
    let (status, body) = http(
        "POST",
        &daemon.url("/api/v1/requests/bulk"),
        Some(csv.as_bytes()),
        &[("Authorization", &auth), ("Content-Type", "text/csv")],
    );
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    let rows = body["rows"].as_array().unwrap();
    let outcome: Vec<String> = rows
        .iter()
        .map(|r| {
            r["state"]
                .as_str()
                .or(r["error"].as_str().map(|_| "error"))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        outcome,
        ["approved", "pending", "rejected", "error", "error"],
        "{body}"
    );
    assert!(
        rows[3]["error"].as_str().unwrap().contains("finance"),
        "dave may not enroll for finance: {body}"
    );
    assert_eq!(rows[0]["line"], 2);
    assert_eq!(body["counts"]["approved"], 1);
    let api = Api { daemon: &daemon };
    issued(&api, rows[0]["managed"].as_str().unwrap());
    // A bad header is refused as a whole, naming the column.
    let (status, text) = http(
        "POST",
        &daemon.url("/api/v1/requests/bulk"),
        Some(b"names,connector\nx.shop.corp.test,corp-ca\n"),
        &[("Authorization", &auth)],
    );
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("names"), "{text}");
}

/// The password of `pat`, the auditor [`with_pat`] adds.
const PAT_PASSWORD: &str = "correct horse battery staple 42";

/// Starts the daemon with the test organisation and `pat`, an auditor who
/// signs in with [`PAT_PASSWORD`].
fn with_pat(daemon: &mut Daemon) -> HashMap<&'static str, String> {
    let tokens = organisation(daemon);
    Api { daemon }.ok(
        "POST",
        "/api/v1/users",
        json!({ "name": "pat", "role": "auditor", "password": PAT_PASSWORD }),
    );
    tokens
}

/// One HTTP/1.1 exchange keeping the response head (for Set-Cookie).
fn raw(
    daemon: &Daemon,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", daemon.port)).unwrap();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_owned(), body.to_owned())
}

#[test]
fn password_sign_in_gives_a_session_guarded_against_csrf_and_guessing() {
    let mut daemon = Daemon::new("");
    with_pat(&mut daemon);
    let api = Api { daemon: &daemon };
    let (status, _) = api.call(
        "POST",
        "/api/v1/users",
        Some(ROOT),
        Some(json!({ "name": "short", "role": "auditor", "password": "tooshort" })),
    );
    assert_eq!(status, 400, "the password policy applies");
    let login = |password: &str| {
        raw(
            &daemon,
            "POST",
            "/api/v1/login",
            &json!({ "user": "Pat", "password": password }).to_string(),
            &[],
        )
    };
    let (status, head, body) = login("correct horse battery staple 42");
    assert_eq!(status, 200, "{head}{body}");
    let cookie_line = head
        .lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("{head}"));
    assert!(
        cookie_line.contains("HttpOnly") && cookie_line.contains("SameSite=Strict"),
        "{cookie_line}"
    );
    let cookie = cookie_line
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, body) = raw(&daemon, "GET", "/api/v1/whoami", "", &[("Cookie", &cookie)]);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"pat\""), "{body}");
    // Changes need the CSRF token, not only the cookie.
    let (status, _, body) = raw(
        &daemon,
        "POST",
        "/api/v1/logout",
        "",
        &[("Cookie", &cookie)],
    );
    assert_eq!(status, 403, "{body}");
    let (status, _, _) = raw(
        &daemon,
        "POST",
        "/api/v1/logout",
        "",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
    );
    assert_eq!(status, 204);
    let (status, _, _) = raw(&daemon, "GET", "/api/v1/whoami", "", &[("Cookie", &cookie)]);
    assert_eq!(status, 401, "signed out");
    // Wrong passwords: the same answer as an unknown user, then locked out
    // even with the right one.
    let (status, _, wrong) = login("not the passphrase");
    assert_eq!(status, 401);
    let (status, _, unknown) = raw(
        &daemon,
        "POST",
        "/api/v1/login",
        &json!({ "user": "nobody", "password": "whatever it is" }).to_string(),
        &[],
    );
    assert_eq!(
        (status, wrong.clone()),
        (401, unknown),
        "no hint which accounts exist"
    );
    for _ in 0..4 {
        login("still not it");
    }
    let (status, head, _) = login("correct horse battery staple 42");
    assert_eq!(status, 429, "{head}");
    let (_, log) = api.call("GET", "/api/v1/audit?actor=pat", Some(ROOT), None);
    let failed = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "login_failed")
        .count();
    assert_eq!(failed, 5, "every failed sign-in is audited: {log}");
    assert!(
        log["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "login" && e["source"] == "127.0.0.1")
    );
}

/// Signs in with a password; the session cookie (`ck_session=...`).
fn sign_in(daemon: &Daemon, user: &str, password: &str) -> String {
    let body = json!({ "user": user, "password": password });
    let (status, head, answer) = raw(daemon, "POST", "/api/v1/login", &body.to_string(), &[]);
    assert_eq!(status, 200, "{head}{answer}");
    head.lines()
        .find(|l| l.to_lowercase().starts_with("set-cookie:"))
        .and_then(|l| l.split_once(':'))
        .and_then(|(_, v)| v.trim().split(';').next())
        .unwrap_or_else(|| panic!("no session cookie: {head}"))
        .to_owned()
}

#[test]
fn a_password_change_or_a_disable_ends_the_users_sessions() {
    let mut daemon = Daemon::new("");
    with_pat(&mut daemon);
    let api = Api { daemon: &daemon };
    let first = PAT_PASSWORD;
    let second = "another fine passphrase 43";
    let whoami = |cookie: &str| raw(&daemon, "GET", "/api/v1/whoami", "", &[("Cookie", cookie)]).0;
    let old = sign_in(&daemon, "pat", first);
    let other = sign_in(&daemon, "pat", first);
    assert_eq!(whoami(&old), 200);
    api.ok("POST", "/api/v1/users/pat", json!({ "password": second }));
    assert_eq!(
        whoami(&old),
        401,
        "a session from before the password change lives on"
    );
    assert_eq!(whoami(&other), 401, "every session of the user ends");
    let new = sign_in(&daemon, "pat", second);
    assert_eq!(whoami(&new), 200);
    api.ok("POST", "/api/v1/users/pat", json!({ "role": "auditor" }));
    assert_eq!(whoami(&new), 200, "other changes keep the session");
    api.ok("POST", "/api/v1/users/pat", json!({ "disabled": true }));
    assert_eq!(whoami(&new), 401, "a disabled user's session lives on");
}

#[test]
fn a_refused_revocation_is_audited_as_tried_and_failed() {
    let mut daemon = Daemon::new("");
    organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let dir = daemon.path("certs");
    std::fs::create_dir_all(&dir).unwrap();
    let pem = common::self_signed(&dir, "elsewhere.corp.test", 30);
    let (status, text) = http(
        "POST",
        &daemon.url("/api/v1/import"),
        Some(&pem),
        &[("Authorization", &format!("Bearer {ROOT}"))],
    );
    assert_eq!(status, 200, "{text}");
    let fp = serde_json::from_str::<Value>(&text).unwrap()["added"][0]
        .as_str()
        .unwrap()
        .to_owned();
    // Certkeeper did not issue it, so it cannot revoke it.
    let (status, body) = api.call(
        "POST",
        &format!("/api/v1/certificates/{fp}/revoke"),
        Some(ROOT),
        Some(json!({ "reason": "keyCompromise" })),
    );
    assert!((400..500).contains(&status), "{status} {body}");
    let (_, log) = api.call(
        "GET",
        &format!("/api/v1/audit?object={fp}"),
        Some(ROOT),
        None,
    );
    let mut outcomes: Vec<(String, String)> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "certificate_revoke")
        .map(|e| {
            (
                e["seq"].to_string(),
                e["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    outcomes.sort_by_key(|(seq, _)| seq.parse::<u64>().unwrap_or_default());
    let outcomes: Vec<&str> = outcomes.iter().map(|(_, o)| o.as_str()).collect();
    assert_eq!(outcomes, ["attempt", "failure"], "{log}");
}

#[test]
fn an_impossible_user_name_is_refused_before_it_is_stored() {
    let mut daemon = Daemon::new("");
    organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    // Past the API's cap on any text field, and past the longest name an
    // account may have: both refused, naming the field.
    let huge = "x".repeat(100_000);
    let body = json!({ "user": huge, "password": "whatever it is" });
    let (status, _, answer) = raw(&daemon, "POST", "/api/v1/login", &body.to_string(), &[]);
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer.contains("`/user`: longer than 4096 characters"),
        "{answer}"
    );
    let long = "x".repeat(300);
    let body = json!({ "user": long, "password": "whatever it is" });
    let (status, _, answer) = raw(&daemon, "POST", "/api/v1/login", &body.to_string(), &[]);
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("254 characters"), "{answer}");
    let (status, log) = api.call("GET", "/api/v1/audit?limit=1000", Some(ROOT), None);
    assert_eq!(status, 200, "{log}");
    let items = log["items"].as_array().unwrap();
    assert!(
        !items.is_empty(),
        "the organisation's setup is audited: {log}"
    );
    assert!(
        !items.iter().any(|e| e["action"] == "login_failed"),
        "an impossible name is not a sign-in to audit: {log}"
    );
    assert!(
        !log.to_string().contains(&"x".repeat(300)),
        "the name reached the audit log"
    );
}

#[test]
fn behind_a_trusted_proxy_each_client_has_its_own_lockout() {
    let daemon = Daemon::new("");
    std::fs::write(
        &daemon.config,
        format!(
            "[api]\nlisten = \"127.0.0.1:{}\"\ntoken = \"{ROOT}\"\ntrusted_proxies = [\"127.0.0.1\"]\n\n\
             [store]\nurl = \"surrealkv://{}\"\n",
            daemon.port,
            daemon.path("store").display()
        ),
    )
    .unwrap();
    let mut daemon = daemon;
    daemon.start();
    // The proxy (this test, on 127.0.0.1) forwards two clients.
    let whoami = |client: &str, token: &str| {
        let auth = format!("Bearer {token}");
        http(
            "GET",
            &daemon.url("/api/v1/whoami"),
            None,
            &[("Authorization", &auth), ("X-Forwarded-For", client)],
        )
        .0
    };
    let guesser = "203.0.113.5";
    let bystander = "198.51.100.7";
    let statuses: Vec<u16> = (0..25).map(|_| whoami(guesser, "not-a-token")).collect();
    assert_eq!(
        statuses.last(),
        Some(&429),
        "the guesser is locked out: {statuses:?}"
    );
    assert_eq!(whoami(guesser, ROOT), 429, "whatever it presents");
    assert_eq!(
        whoami(bystander, ROOT),
        200,
        "another client behind the same proxy is not locked out with it"
    );
    assert_eq!(whoami(bystander, "not-a-token"), 401);
}

#[test]
fn nobody_approves_their_own_request() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let (status, r) = api.call(
        "POST",
        "/api/v1/requests",
        Some(&tokens["dave"]),
        Some(json!({ "identifiers": ["own.app.corp.test"], "connector": "corp-ca" })),
    );
    assert_eq!(status, 202, "{r}");
    let id = r["id"].as_str().unwrap().to_owned();
    let approve = |user: &str| {
        api.call(
            "POST",
            &format!("/api/v1/requests/{id}/approve"),
            Some(&tokens[user]),
            None,
        )
    };
    let (status, body) = approve("dave");
    assert_eq!(
        status, 403,
        "the department admin approved their own request: {body}"
    );
    assert!(body.to_string().contains("four_eyes"), "{body}");
    let (_, r) = api.call("GET", &format!("/api/v1/requests/{id}"), Some(ROOT), None);
    assert_eq!(r["state"], "pending", "{r}");
    let (status, r) = approve("alice");
    assert_eq!(status, 200, "another approver may: {r}");
    assert_eq!(r["decided_by"], "alice");
}

#[test]
fn a_burst_of_parallel_guesses_gets_no_more_checks_than_the_limit() {
    let mut daemon = Daemon::new("");
    with_pat(&mut daemon);
    let api = Api { daemon: &daemon };
    const GUESSES: usize = 60;
    let barrier = std::sync::Barrier::new(GUESSES);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let guesses: Vec<_> = (0..GUESSES)
            .map(|i| {
                let (barrier, daemon) = (&barrier, &daemon);
                s.spawn(move || {
                    let body = json!({ "user": "pat", "password": format!("guess number {i:04}") });
                    barrier.wait();
                    raw(daemon, "POST", "/api/v1/login", &body.to_string(), &[]).0
                })
            })
            .collect();
        guesses.into_iter().map(|g| g.join().unwrap()).collect()
    });
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(checked + refused, GUESSES, "{statuses:?}");
    assert!(
        (1..=5).contains(&checked),
        "at most 5 guesses of one account may be checked, {checked} were: {statuses:?}"
    );
    let (status, head, _) = raw(
        &daemon,
        "POST",
        "/api/v1/login",
        &json!({ "user": "pat", "password": "correct horse battery staple 42" }).to_string(),
        &[],
    );
    assert_eq!(status, 429, "the account is locked after the burst: {head}");
    let (status, body) = api.call("GET", "/api/v1/whoami", Some(ROOT), None);
    assert_eq!(status, 200, "the API still answers: {body}");
}

#[test]
fn a_user_name_cannot_lock_out_a_token() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    // A token reads `ckt_<12 hex id>_<secret>`; failures with it count
    // against its id. Failed sign-ins for a user *named* like that id, or
    // like the key credential-less sources used, must not lock it.
    let id = &tokens["alice"][4..16];
    for user in [id, "source:127.0.0.1"] {
        for _ in 0..6 {
            let body = json!({ "user": user, "password": "whatever it is" });
            let (status, _, _) = raw(&daemon, "POST", "/api/v1/login", &body.to_string(), &[]);
            assert!(matches!(status, 400 | 401 | 429), "{status}");
        }
    }
    let (status, body) = api.call("GET", "/api/v1/whoami", Some(&tokens["alice"]), None);
    assert_eq!(status, 200, "alice's token still works: {body}");
    let (status, body) = api.call("GET", "/api/v1/whoami", Some(ROOT), None);
    assert_eq!(status, 200, "the CLI's api.token still works: {body}");
}

#[test]
fn the_cli_requests_lists_and_approves_as_the_token_holder() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let run = |user: &str, args: &[&str]| {
        let out = daemon.cli_as(&tokens[user], args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string()
                + &String::from_utf8_lossy(&out.stderr),
        )
    };
    let (ok, text) = run(
        "sam",
        &["request", "www.shop.corp.test", "--connector", "corp-ca"],
    );
    assert!(
        ok && text.contains("approved by the domain policy"),
        "{text}"
    );
    let (ok, text) = run(
        "sam",
        &["request", "api.app.corp.test", "--connector", "corp-ca"],
    );
    assert!(ok && text.contains("pending approval"), "{text}");
    let id = text.split_whitespace().next().unwrap().to_owned();
    let (ok, text) = run(
        "sam",
        &["request", "x.blocked.corp.test", "--connector", "corp-ca"],
    );
    assert!(
        !ok && text.contains("rejected") && text.contains("blocked"),
        "{text}"
    );
    let (ok, text) = run("dave", &["requests", "--state", "pending"]);
    assert!(ok && text.contains(&id), "{text}");
    let (ok, text) = run("fred", &["requests", "--state", "pending"]);
    assert!(
        ok && !text.contains(&id),
        "another unit's admin does not see it: {text}"
    );
    let (ok, text) = run("sam", &["approve", &id]);
    assert!(!ok && text.contains("403"), "{text}");
    let (ok, text) = run("dave", &["approve", &id]);
    assert!(ok && text.contains("approved"), "{text}");
    let csv = daemon.path("merger.csv");
    std::fs::write(
        &csv,
        "identifiers,connector\nm1.shop.corp.test,corp-ca\nm2.pay.corp.test,corp-ca\n",
    )
    .unwrap();
    let (ok, text) = run("dave", &["request", "--csv", csv.to_str().unwrap()]);
    assert!(
        ok && text.contains("line 2: approved") && text.contains("line 3: rejected"),
        "{text}"
    );
    let (ok, text) = run("audrey", &["audit", "verify"]);
    assert!(ok && text.contains("intact"), "{text}");
    let (ok, text) = run("dave", &["audit", "verify"]);
    assert!(!ok && text.contains("403"), "{text}");
    // A configuration reload is audited too.
    daemon.signal("HUP");
    let api = Api { daemon: &daemon };
    eventually(Duration::from_secs(20), || {
        let (_, log) = api.call("GET", "/api/v1/audit?actor=system", Some(ROOT), None);
        log["items"]
            .as_array()?
            .iter()
            .any(|e| e["action"] == "config_reload" && e["outcome"] == "success")
            .then_some(())
    })
    .expect("config_reload in the audit log");
}

#[test]
fn renewals_wait_for_approval_when_configured() {
    let mut daemon = Daemon::new("");
    // organisation() writes the config; add the setting and restart.
    let tokens = organisation(&mut daemon);
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        text + "\n[admin]\nauto_approve_renewals = false\n",
    )
    .unwrap();
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
    daemon.start();
    let api = Api { daemon: &daemon };
    let (status, r) = api.call(
        "POST",
        "/api/v1/requests",
        Some(&tokens["sam"]),
        Some(json!({ "identifiers": ["short.shop.corp.test"], "connector": "corp-ca", "validity_seconds": 30 })),
    );
    assert_eq!(status, 201, "{r}");
    let name = r["managed"].as_str().unwrap().to_owned();
    issued(&api, &name);
    // Due after two thirds of 30 s: a renewal request is filed, nothing renews.
    let renewal = format!("renew-{name}-g2");
    let pending = eventually(Duration::from_secs(60), || {
        let (status, r) = api.call(
            "GET",
            &format!("/api/v1/requests/{renewal}"),
            Some(&tokens["dave"]),
            None,
        );
        (status == 200).then_some(r)
    })
    .unwrap_or_else(|| panic!("no renewal request\n{}", daemon.log()));
    assert_eq!(pending["state"], "pending", "{pending}");
    assert_eq!(pending["managed"], json!(name));
    std::thread::sleep(Duration::from_secs(3));
    let (_, managed) = api.call("GET", "/api/v1/managed", Some(ROOT), None);
    let generation = |m: &Value| {
        m["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["name"] == json!(name))
            .unwrap()["generation"]
            .clone()
    };
    assert_eq!(generation(&managed), 1, "not renewed before approval");
    let (status, r) = api.call(
        "POST",
        &format!("/api/v1/requests/{renewal}/approve"),
        Some(&tokens["dave"]),
        None,
    );
    assert_eq!(status, 200, "{r}");
    eventually(Duration::from_secs(60), || {
        let (_, managed) = api.call("GET", "/api/v1/managed", Some(ROOT), None);
        (generation(&managed) == 2).then_some(())
    })
    .unwrap_or_else(|| panic!("not renewed after approval\n{}", daemon.log()));
}

/// A daemon stopped between recording an approval and starting the
/// issuance (the store then holds an approved request with no managed
/// certificate, as after a crash there) issues it at its next start.
#[test]
fn an_approval_the_daemon_stopped_after_is_issued_at_the_next_start() {
    let mut daemon = Daemon::new("");
    let tokens = organisation(&mut daemon);
    let api = Api { daemon: &daemon };
    let (status, request) = api.call(
        "POST",
        "/api/v1/requests",
        Some(&tokens["sam"]),
        Some(json!({ "identifiers": ["crash.app.corp.test"], "connector": "corp-ca", "org_unit": "web" })),
    );
    assert_eq!(status, 202, "{request}");
    let id = request["id"].as_str().unwrap().to_owned();
    daemon.signal("TERM");
    daemon.wait_exit(Duration::from_secs(30));
    // What the store holds when the daemon dies right after the approval's
    // transaction: approved, decided, no managed certificate.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let config = certkeeper::config::Config::load(&daemon.config).unwrap();
    runtime.block_on(async {
        let store = certkeeper_store::Store::open(&config.store).await.unwrap();
        store
            .execute(
                "UPDATE type::record('request', $id) SET state = 'approved', decided_by = 'dave', decided = time::unix(time::now())",
                json!({ "id": id }),
            )
            .await
            .unwrap();
        store.close(Duration::from_secs(10)).await;
    });
    daemon.start();
    let api = Api { daemon: &daemon };
    let fingerprint = issued(&api, &id);
    let (_, after) = api.call("GET", &format!("/api/v1/requests/{id}"), Some(ROOT), None);
    assert_eq!(after["state"], "approved", "{after}");
    assert_eq!(after["managed"], id.as_str(), "{after}");
    assert_eq!(fingerprint.len(), 64);
    assert!(
        daemon
            .log()
            .contains("resumed the issuance of an approved request"),
        "{}",
        daemon.log()
    );
}
