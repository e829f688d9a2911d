//! The web portal end to end, against the real daemon with an internal CA:
//! what each role sees and may do, enforced by the server (forged forms,
//! missing CSRF tokens, foreign origins); then a walk through the portal in
//! headless Chromium (Debian's `chromium`, driven by Playwright from
//! `tests/browser`), with screenshots of the main pages.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{Daemon, eventually, http, http_full};
use serde_json::{Value, json};

const ROOT: &str = "root-token-for-portal-tests-0123";

/// Users by role: (user, role, units, password).
const USERS: [(&str, &str, &str, &str); 5] = [
    ("alice", "primary_admin", "", "tulip-orbit-harbour-71"),
    (
        "dave",
        "department_admin",
        "web",
        "copper-lantern-meadow-72",
    ),
    ("audrey", "auditor", "", "violet-summit-rocket-73"),
    ("sam", "subscriber", "web", "granite-echo-willow-74"),
    (
        "fred",
        "department_admin",
        "finance",
        "amber-falcon-river-75",
    ),
];

fn api(daemon: &Daemon, method: &str, path: &str, body: Value) -> Value {
    let auth = format!("Bearer {ROOT}");
    let body = serde_json::to_vec(&body).unwrap();
    let (status, text) = http(
        method,
        &daemon.url(path),
        (method != "GET").then_some(body.as_slice()),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "application/json"),
        ],
    );
    assert!(
        (200..300).contains(&status),
        "{method} {path}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Starts the daemon and builds the organisation: units web and finance,
/// the five users with passwords, domain rules, and a certificate of web
/// expiring in 5 days (so an open alert) plus one of finance.
fn organisation() -> Daemon {
    let mut daemon = Daemon::new("");
    daemon.write_config(&format!(
        r#"
[alerts]
check_interval_seconds = 1

[renewal]
check_interval_seconds = 1

{}
[[job]]
name = "web-monthly"
type = "report"
kind = "inventory"
schedule = "0 0 0 1 1 *"
org_unit = "web"
directory = "{}"
"#,
        daemon.corp_ca(),
        daemon.path("reports").display()
    ));
    // A file the job wrote (its schedule is yearly).
    std::fs::create_dir_all(daemon.path("reports")).unwrap();
    std::fs::write(
        daemon
            .path("reports")
            .join("web-monthly-20261101-060000.csv"),
        "subject\r\nCN=soon.shop.corp.test\r\n",
    )
    .unwrap();
    // [api] token: the common config writes [api] first; append the token
    // into that table.
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        config.replacen("[api]\n", &format!("[api]\ntoken = \"{ROOT}\"\n"), 1),
    )
    .unwrap();
    daemon.start();
    for name in ["web", "finance"] {
        api(
            &daemon,
            "POST",
            "/api/v1/org-units",
            json!({ "name": name }),
        );
    }
    for (user, role, units, password) in USERS {
        let units: Vec<&str> = units.split(',').filter(|u| !u.is_empty()).collect();
        api(
            &daemon,
            "POST",
            "/api/v1/users",
            json!({ "name": user, "role": role, "units": units, "password": password }),
        );
    }
    for (domain, unit, mode) in [
        ("shop.corp.test", "web", "pre_approved"),
        ("app.corp.test", "web", "requires_approval"),
        ("pay.corp.test", "finance", "pre_approved"),
    ] {
        api(
            &daemon,
            "POST",
            "/api/v1/domains",
            json!({ "domain": domain, "org_unit": unit, "mode": mode }),
        );
    }
    for (cn, unit, days) in [
        ("soon.shop.corp.test", "web", 5),
        ("books.pay.corp.test", "finance", 200),
    ] {
        owned_certificate(&daemon, cn, unit, days);
    }
    daemon
}

/// Imports a self-signed certificate for `cn` expiring in `days`, assigned
/// to `unit` with contact `owner@cn`; returns its fingerprint.
fn owned_certificate(daemon: &Daemon, cn: &str, unit: &str, days: u32) -> String {
    let pem = common::self_signed(daemon.dir.path(), cn, days);
    let auth = format!("Bearer {ROOT}");
    let (status, text) = http(
        "POST",
        &daemon.url("/api/v1/import"),
        Some(&pem),
        &[("Authorization", auth.as_str())],
    );
    assert_eq!(status, 200, "{text}");
    let added: Value = serde_json::from_str(&text).unwrap();
    api(
        daemon,
        "POST",
        "/api/v1/certificates/assign",
        json!({ "fingerprints": added["added"], "org_unit": unit, "contacts": [format!("owner@{cn}")] }),
    );
    added["added"][0].as_str().unwrap().to_owned()
}

/// A signed-in portal session over plain HTTP.
struct Session<'a> {
    daemon: &'a Daemon,
    cookie: String,
}

fn header<'h>(head: &'h str, name: &str) -> Option<&'h str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn form_body(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

impl<'a> Session<'a> {
    fn sign_in(daemon: &'a Daemon, user: &str, password: &str) -> Session<'a> {
        let body = form_body(&[("name", user), ("password", password)]);
        let (status, head, text) = http_full(
            "POST",
            &daemon.url("/ui/login"),
            Some(body.as_bytes()),
            &[("Content-Type", "application/x-www-form-urlencoded")],
        );
        assert_eq!(status, 303, "sign-in of {user}: {text}");
        assert_eq!(header(&head, "location"), Some("/ui/"));
        let set = header(&head, "set-cookie").unwrap();
        assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"));
        Session {
            daemon,
            cookie: set.split(';').next().unwrap().to_owned(),
        }
    }

    /// A page, with the `/` that the templates escape as `&#x2f;` put back.
    fn get(&self, path: &str) -> (u16, String, String) {
        let (status, head, body) = http_full(
            "GET",
            &self.daemon.url(path),
            None,
            &[("Cookie", self.cookie.as_str())],
        );
        (status, head, body.replace("&#x2f;", "/"))
    }

    /// The CSRF token every form of the page carries.
    fn csrf(&self) -> String {
        let (_, _, page) = self.get("/ui/");
        let at = page.find("name=\"_csrf\" value=\"").unwrap() + 20;
        page[at..at + page[at..].find('"').unwrap()].to_owned()
    }

    fn post(&self, path: &str, fields: &[(&str, &str)], origin: Option<&str>) -> (u16, String) {
        let body = form_body(fields);
        let mut headers = vec![
            ("Cookie", self.cookie.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if let Some(o) = origin {
            headers.push(("Origin", o));
        }
        let (status, head, _) = http_full(
            "POST",
            &self.daemon.url(path),
            Some(body.as_bytes()),
            &headers,
        );
        (status, head)
    }
}

/// Every page × every role: the server answers what the role allows, the
/// menu offers only that, and forged or cross-site forms are refused.
#[test]
fn pages_and_actions_follow_the_roles_and_refuse_forgery() {
    let daemon = organisation();
    // Signed out: every page leads to the sign-in page.
    let (status, head, _) = http_full("GET", &daemon.url("/ui/certificates"), None, &[]);
    assert_eq!(
        (status, header(&head, "location")),
        (303, Some("/ui/login"))
    );
    let (status, _, page) = http_full(
        "POST",
        &daemon.url("/ui/login"),
        Some(b"name=alice&password=wrong-password-here"),
        &[("Content-Type", "application/x-www-form-urlencoded")],
    );
    assert_eq!(status, 401);
    assert!(page.contains("class=\"error\""), "{page}");

    let sessions: HashMap<&str, Session> = USERS
        .iter()
        .map(|(u, _, _, p)| (*u, Session::sign_in(&daemon, u, p)))
        .collect();
    // Who may open what, written here from the roles of the issue; the
    // pages walked are every page of the portal's route table that needs
    // no object, so a new page cannot go unchecked.
    const EVERYONE: &[&str] = &["alice", "dave", "audrey", "sam", "fred"];
    let expected = |path: &str| -> Option<&[&str]> {
        match path {
            "/ui/" | "/ui/certificates" | "/ui/requests" | "/ui/alerts" | "/ui/reports" => {
                Some(EVERYONE)
            }
            "/ui/discovery" => Some(&["alice", "dave", "audrey", "fred"]),
            "/ui/admin" => Some(&["alice"]),
            // Public: the sign-in page, redirects to it, the stylesheet.
            "/" | "/ui" | "/ui/login" | "/ui/static/portal.css" => None,
            other => panic!("no expectation for the portal page {other}: add one here"),
        }
    };
    let pages: Vec<(&str, &[&str])> = certkeeper::portal::routes()
        .into_iter()
        .filter(|(method, path)| method == "GET" && !path.contains('{'))
        .filter_map(|(_, path)| expected(path).map(|allowed| (path, allowed)))
        .collect();
    assert_eq!(pages.len(), 7, "{pages:?}");
    for (path, allowed) in pages {
        for (user, session) in &sessions {
            let (status, head, page) = session.get(path);
            let expected = if allowed.contains(user) { 200 } else { 403 };
            assert_eq!(status, expected, "{user} GET {path}: {page}");
            assert!(
                header(&head, "content-security-policy")
                    .is_some_and(|c| c.contains("default-src 'none'")),
                "{path}: {head}"
            );
            assert!(!page.contains("<script"), "{path} has a script");
            // The menu offers the page exactly when the role may open it.
            let (_, _, home) = session.get("/ui/");
            assert_eq!(
                home.contains(&format!("href=\"{path}\"")),
                allowed.contains(user),
                "{user}'s menu and {path}: {home}"
            );
        }
    }

    // An unknown page is an HTML 404 for a person, not the API's JSON.
    let (status, head, page) = sessions["sam"].get("/ui/no-such-page");
    assert_eq!(status, 404);
    assert!(
        header(&head, "content-type").is_some_and(|c| c.starts_with("text/html"))
            && page.contains("id=\"whoami\""),
        "{page}"
    );

    // Scope: dave (web) sees the web certificate, fred (finance) does not,
    // and its page is 404 for fred.
    let soon = api(
        &daemon,
        "GET",
        "/api/v1/certificates?q=soon.shop.corp.test",
        json!(null),
    )["items"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, _, list) = sessions["dave"].get("/ui/certificates");
    assert!(list.contains("soon.shop.corp.test") && !list.contains("books.pay.corp.test"));
    let (_, _, list) = sessions["fred"].get("/ui/certificates");
    assert!(!list.contains("soon.shop.corp.test") && list.contains("books.pay.corp.test"));
    let (status, _, _) = sessions["fred"].get(&format!("/ui/certificates/{soon}"));
    assert_eq!(status, 404);
    let (status, _, detail) = sessions["audrey"].get(&format!("/ui/certificates/{soon}"));
    assert_eq!(status, 200);
    assert!(detail.contains(&soon) && !detail.contains("PRIVATE KEY"));
    assert!(
        !detail.contains("action-revoke"),
        "the auditor has no actions"
    );

    // Forms: no token, a wrong token, another site's origin: refused, and
    // nothing is created.
    let sam = &sessions["sam"];
    let csrf = sam.csrf();
    let request = [
        ("identifiers", "www.app.corp.test"),
        ("connector", "corp-ca"),
        ("org_unit", "web"),
    ];
    let (status, _) = sam.post("/ui/requests", &request, None);
    assert_eq!(status, 403, "no CSRF token");
    let mut wrong = request.to_vec();
    wrong.push(("_csrf", "0000"));
    assert_eq!(sam.post("/ui/requests", &wrong, None).0, 403);
    let mut good = request.to_vec();
    good.push(("_csrf", csrf.as_str()));
    assert_eq!(
        sam.post("/ui/requests", &good, Some("http://evil.example"))
            .0,
        403,
        "cross-site form"
    );
    // Every form of the route table, as alice (who may send them all): from
    // another site, or without the session's token, refused before it acts.
    let alice = &sessions["alice"];
    let alice_csrf = alice.csrf();
    for (method, path) in certkeeper::portal::routes() {
        if method != "POST" {
            continue;
        }
        let path = path
            .replace("{fingerprint}", "00")
            .replace("{action}", "revoke")
            .replace("{id}", "0")
            .replace("{decision}", "approve")
            .replace("{job}", "none")
            .replace("{what}", "users");
        let fields = [("_csrf", alice_csrf.as_str())];
        let (status, _) = alice.post(&path, &fields, Some("https://evil.example"));
        assert_eq!(status, 403, "POST {path} from another site");
        if path != "/ui/login" {
            let (status, _) = alice.post(&path, &[], None);
            assert_eq!(status, 403, "POST {path} without the CSRF token");
        }
    }
    // Another user's token does not pass either.
    let dave_csrf = sessions["dave"].csrf();
    let mut borrowed = request.to_vec();
    borrowed.push(("_csrf", dave_csrf.as_str()));
    assert_eq!(sam.post("/ui/requests", &borrowed, None).0, 403);
    let requests = api(&daemon, "GET", "/api/v1/requests", json!(null));
    assert_eq!(requests["items"].as_array().unwrap().len(), 0, "{requests}");

    // The real form: a pending request, with a flash on the next page.
    let origin = daemon.url("");
    let origin = origin.trim_end_matches('/');
    let (status, head) = sam.post("/ui/requests", &good, Some(origin));
    assert_eq!(
        (status, header(&head, "location")),
        (303, Some("/ui/requests"))
    );
    let flash = header(&head, "set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (_, _, page) = http_full(
        "GET",
        &daemon.url("/ui/requests"),
        None,
        &[("Cookie", &format!("{}; {flash}", sam.cookie))],
    );
    assert!(
        page.contains("class=\"flash\"") && page.contains("pending"),
        "{page}"
    );
    let id = api(&daemon, "GET", "/api/v1/requests", json!(null))["items"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Deciding it: the auditor and the subscriber lack the role (403), the
    // finance admin the scope (404); the web admin approves.
    for (user, expected) in [("audrey", 403), ("sam", 403), ("fred", 404)] {
        let s = &sessions[user];
        let token = s.csrf();
        let (status, _) = s.post(
            &format!("/ui/requests/{id}/approve"),
            &[("_csrf", token.as_str())],
            None,
        );
        assert_eq!(status, expected, "{user} approving");
    }
    let state = api(
        &daemon,
        "GET",
        &format!("/api/v1/requests/{id}"),
        json!(null),
    );
    assert_eq!(state["state"], "pending");
    let dave = &sessions["dave"];
    let token = dave.csrf();
    let (status, _) = dave.post(
        &format!("/ui/requests/{id}/assign"),
        &[("_csrf", token.as_str()), ("to", "dave")],
        None,
    );
    assert_eq!(status, 303);
    let state = api(
        &daemon,
        "GET",
        &format!("/api/v1/requests/{id}"),
        json!(null),
    );
    assert_eq!(state["assignee"], "dave", "{state}");
    let (status, _) = dave.post(
        &format!("/ui/requests/{id}/approve"),
        &[("_csrf", token.as_str())],
        None,
    );
    assert_eq!(status, 303);
    let fingerprint = eventually(Duration::from_secs(60), || {
        let (_, _, page) = dave.get("/ui/requests");
        let at = page.find("<td class=\"certificate\"><a href=\"/ui/certificates/")?;
        let rest = &page[at + 50..];
        Some(rest[..64].to_owned())
    })
    .unwrap_or_else(|| panic!("never issued\n{}", daemon.log()));
    let (status, _, page) = dave.get(&format!("/ui/certificates/{fingerprint}"));
    assert_eq!(status, 200);
    assert!(page.contains("www.app.corp.test"));
    assert!(page.contains("action-renew") && page.contains("action-replace"));
    assert!(!page.contains("PRIVATE KEY"), "no key material on the page");

    // The dashboard's timeline: the 5-day certificate in week 0, the new
    // 89-day one in week 12; the 200-day one is past the 13 weeks.
    let weeks = api(&daemon, "GET", "/api/v1/expiries?weeks=13", json!(null));
    let counts: Vec<u64> = weeks["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["count"].as_u64().unwrap())
        .collect();
    assert_eq!(counts.len(), 13);
    assert_eq!(
        (counts[0], counts[12], counts.iter().sum::<u64>()),
        (1, 1, 2),
        "{weeks}"
    );
    let (_, _, home) = dave.get("/ui/");
    assert!(home.contains("<title>week of"), "the chart's bars: {home}");

    // Inventory order and window, alert states, as the filters say.
    let (_, _, latest) = dave.get("/ui/certificates?sort=latest");
    let (new, old) = (
        latest.find("www.app.corp.test").unwrap(),
        latest.find("soon.shop.corp.test").unwrap(),
    );
    assert!(new < old, "latest expiry first");
    let (_, _, soonest) = dave.get("/ui/certificates");
    assert!(
        soonest.find("soon.shop.corp.test").unwrap() < soonest.find("www.app.corp.test").unwrap()
    );
    // By subject: books (200 days) < soon (5) < www (89), unlike any
    // expiry order.
    let (_, _, by_subject) = sessions["alice"].get("/ui/certificates?sort=subject");
    let at = |name: &str| by_subject.find(name).unwrap();
    assert!(
        at("books.pay.corp.test") < at("soon.shop.corp.test")
            && at("soon.shop.corp.test") < at("www.app.corp.test"),
        "subject A to Z"
    );
    assert!(by_subject.contains("value=\"subject\" selected"));
    // What is sorted is what the column shows: the whole DN.
    assert!(
        by_subject.contains(">CN=books.pay.corp.test</a>"),
        "{by_subject}"
    );
    let (_, _, month) = dave.get("/ui/certificates?within=30");
    assert!(month.contains("soon.shop.corp.test") && !month.contains("www.app.corp.test"));
    eventually(Duration::from_secs(30), || {
        let (_, _, open) = dave.get("/ui/alerts?state=open");
        open.contains("soon.shop.corp.test").then_some(())
    })
    .expect("the open alert is listed under state=open");
    let (_, _, resolved) = dave.get("/ui/alerts?state=resolved");
    assert!(!resolved.contains("soon.shop.corp.test"));
    let auth = format!("Bearer {ROOT}");
    let (status, body) = http(
        "GET",
        &daemon.url("/api/v1/certificates?order=sideways"),
        None,
        &[("Authorization", auth.as_str())],
    );
    assert!(status == 400 && body.contains("order"), "{body}");

    // Administration: a primary admin adds an org unit and a domain rule
    // from the forms; a department admin posting the same form is refused.
    let alice = &sessions["alice"];
    let token = alice.csrf();
    let unit = [
        ("_csrf", token.as_str()),
        ("name", "web-shop"),
        ("parent", "web"),
    ];
    assert_eq!(alice.post("/ui/admin/org-units", &unit, None).0, 303);
    let rule = [
        ("_csrf", token.as_str()),
        ("domain", "shop2.corp.test"),
        ("org_unit", "web-shop"),
        ("mode", "requires_approval"),
    ];
    assert_eq!(alice.post("/ui/admin/domains", &rule, None).0, 303);
    let (_, _, page) = alice.get("/ui/admin");
    assert!(page.contains("web-shop") && page.contains("shop2.corp.test"));
    let token = dave.csrf();
    let unit = [("_csrf", token.as_str()), ("name", "rogue"), ("parent", "")];
    assert_eq!(dave.post("/ui/admin/org-units", &unit, None).0, 403);
    let units = api(&daemon, "GET", "/api/v1/org-units", json!(null));
    assert!(!units.to_string().contains("rogue"), "{units}");

    // Scheduled reports: the web job's file is a download for those who
    // may read it, through the session.
    let link = "/api/v1/reports/files/web-monthly/web-monthly-20261101-060000.csv";
    for (user, shown) in [
        ("alice", true),
        ("dave", true),
        ("fred", false),
        ("sam", false),
    ] {
        let (status, _, page) = sessions[user].get("/ui/reports");
        assert_eq!(status, 200);
        assert_eq!(page.contains(&format!("href=\"{link}\"")), shown, "{user}");
    }
    let (status, _, csv) = dave.get(link);
    assert!(
        status == 200 && csv.contains("CN=soon.shop.corp.test"),
        "{status} {csv}"
    );
    assert_eq!(sessions["fred"].get(link).0, 404);

    // Signing out ends the session for every later request.
    let token = sam.csrf();
    let (status, _) = sam.post("/ui/logout", &[("_csrf", token.as_str())], None);
    assert_eq!(status, 303);
    assert_eq!(sam.get("/ui/").0, 303);
}

/// Ids of the rows of a ledger page (`data-{kind}-id` attributes).
fn row_ids(page: &str, kind: &str) -> Vec<String> {
    let marker = format!("data-{kind}-id=\"");
    page.match_indices(&marker)
        .map(|(at, _)| {
            let rest = &page[at + marker.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

/// The "Next page" link of a page, if any.
fn next_link(page: &str) -> Option<String> {
    let at = page.find("<a rel=\"next\" href=\"")? + 20;
    let rest = &page[at..];
    Some(rest[..rest.find('"').unwrap()].replace("&amp;", "&"))
}

/// Long lists come a page at a time: each request and alert once, newest
/// first, with the filters kept; a scoped admin's pages hold only its own
/// rows however they are spread through the ledger.
#[test]
fn long_lists_page_without_repeats_and_within_scope() {
    let daemon = organisation();
    // 120 requests for web (requires approval, so they stay pending).
    let mut csv = String::from("identifiers,connector,org_unit\n");
    for i in 0..120 {
        csv.push_str(&format!("n{i}.app.corp.test,corp-ca,web\n"));
    }
    let auth = format!("Bearer {ROOT}");
    let (status, body) = http(
        "POST",
        &daemon.url("/api/v1/requests/bulk"),
        Some(csv.as_bytes()),
        &[
            ("Authorization", auth.as_str()),
            ("Content-Type", "text/csv"),
        ],
    );
    assert_eq!(status, 200, "{body}");

    let dave = Session::sign_in(&daemon, "dave", USERS[1].3);
    let mut seen = Vec::new();
    let mut page_sizes = Vec::new();
    let mut next = Some("/ui/requests?state=pending".to_owned());
    while let Some(path) = next.take() {
        let (status, _, page) = dave.get(&path);
        assert_eq!(status, 200, "{path}");
        let ids = row_ids(&page, "request");
        page_sizes.push(ids.len());
        seen.extend(ids);
        assert_eq!(
            page.contains(">First page<"),
            path.contains("cursor="),
            "a first-page link on later pages only: {path}"
        );
        next = next_link(&page);
        if let Some(n) = &next {
            assert!(n.contains("state=pending"), "the filter is kept: {n}");
        }
    }
    assert_eq!(page_sizes, [50, 50, 20]);
    let unique: std::collections::HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 120, "every request once");
    // Newest first: the API's own order, one page of 500.
    let all = api(&daemon, "GET", "/api/v1/requests?limit=500", json!(null));
    let order: Vec<&str> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(seen, order, "the pages are the ledger, newest first");
    // A mangled cursor (a stale bookmark) says so instead of an empty list.
    for page in ["/ui/requests?cursor=junk", "/ui/alerts?cursor=junk"] {
        let (status, _, body) = dave.get(page);
        assert!(
            status == 200 && body.contains("role=\"alert\">cursor: invalid cursor"),
            "{page}: {body}"
        );
    }
    let (_, _, rejected) = dave.get("/ui/requests?state=rejected");
    assert!(row_ids(&rejected, "request").is_empty() && next_link(&rejected).is_none());
    let fred = Session::sign_in(&daemon, "fred", USERS[4].3);
    let (_, _, theirs) = fred.get("/ui/requests");
    assert!(
        row_ids(&theirs, "request").is_empty(),
        "web's requests are not finance's"
    );
    for (path, name) in [
        ("/api/v1/requests?limit=0", "limit"),
        ("/api/v1/requests?cursor=not-a-cursor", "cursor"),
        ("/api/v1/alerts?cursor=not-a-cursor", "cursor"),
        ("/api/v1/managed?owner=me", "owner"),
    ] {
        let (status, body) = http(
            "GET",
            &daemon.url(path),
            None,
            &[("Authorization", auth.as_str())],
        );
        assert!(
            status == 400 && body.contains(name),
            "{path}: {status} {body}"
        );
    }

    // Alerts: 8 more certificates expiring in 3 days, web and finance in
    // turn. Walking dave's ledger two rows at a time gives exactly web's
    // alerts, each once.
    let mut web = std::collections::HashSet::new();
    for i in 0..8 {
        let unit = if i % 2 == 0 { "web" } else { "finance" };
        let cn = format!(
            "a{i}.{}.corp.test",
            if unit == "web" { "shop" } else { "pay" }
        );
        let fp = owned_certificate(&daemon, &cn, unit, 3);
        if unit == "web" {
            web.insert(fp);
        }
    }
    // Every one of the ten certificates in the ledger (the two of the
    // organisation, the eight new ones).
    let everything = eventually(Duration::from_secs(30), || {
        let all = api(&daemon, "GET", "/api/v1/alerts?limit=1000", json!(null));
        let fps: std::collections::HashSet<String> = all["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["fingerprint"].as_str().unwrap().to_owned())
            .collect();
        (fps.len() >= 9).then_some(all)
    })
    .unwrap_or_else(|| panic!("alerts never raised\n{}", daemon.log()));
    let mut expected: Vec<String> = everything["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            web.contains(a["fingerprint"].as_str().unwrap())
                || a["subject"].as_str().unwrap_or("").contains("soon.shop")
        })
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect();
    let dave_token = api(
        &daemon,
        "POST",
        "/api/v1/tokens",
        json!({ "user": "dave", "label": "pager" }),
    )["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let dave_auth = format!("Bearer {dave_token}");
    let mut walked = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/alerts?limit=2&cursor={c}"),
            None => "/api/v1/alerts?limit=2".to_owned(),
        };
        let (status, body) = http(
            "GET",
            &daemon.url(&path),
            None,
            &[("Authorization", dave_auth.as_str())],
        );
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).unwrap();
        let ids: Vec<String> = page["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 2);
        walked.extend(ids);
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    expected.sort();
    walked.sort();
    assert!(!expected.is_empty());
    assert_eq!(walked, expected, "dave's pages: web's alerts, each once");
}

/// `tests/browser`, with its locked packages installed.
fn browser_dir() -> PathBuf {
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/browser");
    if !browser.join("node_modules/playwright-core").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&browser)
            .status()
            .expect("npm (Node.js) is needed for the browser test: tests/run.sh installs it");
        assert!(status.success(), "npm ci in tests/browser failed");
    }
    browser
}

/// `curl` against the daemon over TLS (its certificate is the test's own).
fn curl_tls(url: &str, method: &str, body: Option<&Value>) -> Value {
    let mut command = Command::new("curl");
    command
        .args(["-sSk", "--fail-with-body", "-X", method])
        .args(["-H", &format!("Authorization: Bearer {ROOT}")])
        .args(["-H", "Content-Type: application/json"]);
    if let Some(body) = body {
        command.args(["--data", &body.to_string()]);
    }
    let output = command.arg(url).output().expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "{method} {url}: {text}");
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// The portal over HTTPS, where browsers speak HTTP/2 and send the host as
/// `:authority` (no Host header): signing in and out, both form POSTs that
/// the origin check must accept, in headless Chromium.
#[test]
fn the_portal_works_over_https_and_http2_in_chromium() {
    let daemon = Daemon::new("");
    let cert = daemon.path("api.crt");
    let key = daemon.path("api.key");
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    let config = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        config.replacen(
            "[api]\n",
            &format!(
                "[api]\ntoken = \"{ROOT}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
                cert.display(),
                key.display()
            ),
            1,
        ),
    )
    .unwrap();
    let mut daemon = daemon;
    daemon.start();
    let base = format!("https://127.0.0.1:{}", daemon.port);
    let (user, _, _, password) = USERS[0];
    curl_tls(
        &format!("{base}/api/v1/users"),
        "POST",
        Some(&json!({ "name": user, "role": "primary_admin", "password": password })),
    );
    let output = Command::new("node")
        .arg("tls.mjs")
        .current_dir(browser_dir())
        .env("CERTKEEPER_URL", &base)
        .env(
            "CERTKEEPER_USER",
            json!({ "name": user, "password": password }).to_string(),
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser over TLS failed:\n{stdout}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    // What the browser did is what the audit log holds.
    let audit = curl_tls(&format!("{base}/api/v1/audit?actor={user}"), "GET", None);
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.contains(&"login") && actions.contains(&"logout"),
        "{audit}"
    );
}

/// Where the browser test writes its screenshots.
fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("portal-screenshots")
}

/// The portal in a real browser: every role signs in, sees what it may,
/// a subscriber requests, a department admin approves and sees the
/// certificate issued, acknowledges an alert; an auditor downloads reports.
#[test]
fn a_walk_through_the_portal_in_headless_chromium() {
    let daemon = organisation();
    // The alert the department admin acknowledges must be open first.
    eventually(Duration::from_secs(30), || {
        let alerts = api(&daemon, "GET", "/api/v1/alerts?state=open", json!(null));
        alerts["items"]
            .as_array()?
            .iter()
            .find(|a| {
                a["subject"]
                    .as_str()
                    .is_some_and(|s| s.contains("soon.shop.corp.test"))
            })
            .cloned()
    })
    .unwrap_or_else(|| panic!("no alert raised\n{}", daemon.log()));
    let browser = browser_dir();
    let users: serde_json::Map<String, Value> = [
        ("primary", "alice"),
        ("department", "dave"),
        ("auditor", "audrey"),
        ("subscriber", "sam"),
        ("other_department", "fred"),
    ]
    .iter()
    .map(|(role, user)| {
        let password = USERS.iter().find(|u| u.0 == *user).unwrap().3;
        (
            (*role).to_owned(),
            json!({ "name": user, "password": password }),
        )
    })
    .collect();
    let out = screenshots();
    let _ = std::fs::remove_dir_all(&out);
    let base = daemon.url("");
    let output = Command::new("node")
        .arg("portal.mjs")
        .current_dir(&browser)
        .env("CERTKEEPER_URL", base.trim_end_matches('/'))
        .env("CERTKEEPER_USERS", Value::Object(users).to_string())
        .env("REQUEST_NAME", "www.app.corp.test")
        .env("ALERT_SUBJECT", "soon.shop.corp.test")
        .env("SCREENSHOT_DIR", &out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "browser walk-through failed:\n{stdout}\n{}\n--- daemon log ---\n{}",
        String::from_utf8_lossy(&output.stderr),
        daemon.log()
    );
    for shot in [
        "dashboard-primary.png",
        "dashboard-department.png",
        "dashboard-auditor.png",
        "dashboard-subscriber.png",
        "requests-subscriber.png",
        "certificate-detail.png",
        "inventory.png",
        "alerts.png",
        "reports.png",
        "admin.png",
        "discovery.png",
        "dashboard-phone.png",
    ] {
        let size = std::fs::metadata(out.join(shot))
            .map(|m| m.len())
            .unwrap_or_else(|_| panic!("no screenshot {shot} in {}", out.display()));
        assert!(size > 5_000, "{shot} is {size} bytes");
    }
    // What the browser did is what the store holds.
    let requests = api(&daemon, "GET", "/api/v1/requests", json!(null));
    let request = &requests["items"][0];
    assert_eq!(request["state"], "approved");
    assert_eq!(request["requester"], "sam");
    assert_eq!(request["decided_by"], "dave");
    let alerts = api(&daemon, "GET", "/api/v1/alerts", json!(null));
    assert!(
        alerts["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["state"] == "acknowledged" && a["acked_by"] == "dave"),
        "{alerts}"
    );
    println!("screenshots in {}", out.display());
}

/// A fresh install has no account: the sign-in page says how to make the
/// first one, and stops saying it once there is one.
#[test]
fn the_sign_in_page_says_how_to_make_the_first_account() {
    let mut daemon = Daemon::new("");
    daemon.start();
    let (status, page) = http("GET", &daemon.url("/ui/login"), None, &[]);
    assert_eq!(status, 200);
    assert!(
        page.contains("id=\"first-run\"") && page.contains("admin create"),
        "{page}"
    );
    daemon.cli_ok(&["admin", "create", "alice", "--role", "primary_admin"]);
    let (_, page) = http("GET", &daemon.url("/ui/login"), None, &[]);
    assert!(!page.contains("first-run"), "{page}");
}
