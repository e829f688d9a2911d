//! The web portal: server-rendered pages under `/ui`, on the API's port.
//!
//! Every page is a template compiled into the binary (`daemon/templates`),
//! rendered by minijinja with HTML escaping on; there is no JavaScript and
//! no front-end build. A page reads and acts through the API *in-process*:
//! it sends the API router a request carrying the signed-in
//! [`Principal`](certkeeper_model::admin::Principal) as an [`InProcess`] extension, so
//! the API's permission table and scope checks decide what a portal user
//! sees and may do, exactly as for a token holder. The portal's own route
//! table ([`pages::table`]) also names each page's permission, checked
//! before the handler runs: hiding a button is never the only guard.
//!
//! Sessions are the API's (`ck_session`, HttpOnly, SameSite=Strict, Secure
//! over TLS). Every form that changes something carries the session's CSRF
//! token in a hidden `_csrf` field; the middleware refuses a POST without
//! it, and one whose `Origin` is another site.

mod inventory;
mod operations;
mod pages;
mod workflow;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use minijinja::Environment;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::AppState;
use crate::api::auth::{InProcess, session_cookie, session_principal};
use certkeeper_model::admin::{Permission, Principal, Role, allows, token};

/// What a page needs of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Anyone (sign-in page, stylesheet).
    Public,
    /// A signed-in user whose role has this permission.
    Permission(Permission),
    /// A signed-in administrator or auditor: any role but subscriber
    /// (discovery is not a subscriber's business).
    Staff,
}

impl Need {
    fn met_by(self, role: Role) -> bool {
        match self {
            Need::Public => true,
            Need::Permission(p) => allows(role, p),
            Need::Staff => role != Role::Subscriber,
        }
    }
}

/// What the portal's handlers reach.
#[derive(Clone)]
pub struct Portal {
    state: AppState,
    api: Router,
    templates: Arc<Environment<'static>>,
    needs: Arc<HashMap<(Method, String), Need>>,
}

/// The signed-in user of a request, with the session's CSRF token.
#[derive(Debug, Clone)]
pub struct Session {
    principal: Principal,
    csrf: String,
}

/// The fields of a submitted form (after the CSRF check).
#[derive(Debug, Clone, Default)]
pub struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().trim().to_owned()
    }
}

const TEMPLATES: [(&str, &str); 12] = [
    ("base.html", include_str!("../../templates/base.html")),
    ("login.html", include_str!("../../templates/login.html")),
    (
        "dashboard.html",
        include_str!("../../templates/dashboard.html"),
    ),
    (
        "certificates.html",
        include_str!("../../templates/certificates.html"),
    ),
    (
        "certificate.html",
        include_str!("../../templates/certificate.html"),
    ),
    (
        "requests.html",
        include_str!("../../templates/requests.html"),
    ),
    (
        "discovery.html",
        include_str!("../../templates/discovery.html"),
    ),
    ("alerts.html", include_str!("../../templates/alerts.html")),
    ("reports.html", include_str!("../../templates/reports.html")),
    ("admin.html", include_str!("../../templates/admin.html")),
    ("error.html", include_str!("../../templates/error.html")),
    ("macros.html", include_str!("../../templates/macros.html")),
];

const STYLESHEET: &str = include_str!("../../templates/portal.css");

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    for (name, source) in TEMPLATES {
        // The templates are part of the binary and covered by the tests; a
        // broken one is a build defect, reported when the page renders.
        if let Err(e) = env.add_template(name, source) {
            tracing::error!(template = name, error = %e, "portal template does not parse");
        }
    }
    env.add_filter("date", crate::reports::date);
    env.add_filter("datetime", |t: i64| {
        chrono::DateTime::from_timestamp(t, 0)
            .map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string())
            .unwrap_or_default()
    });
    env.add_filter("days_left", |t: i64| {
        (t - chrono::Utc::now().timestamp()).div_euclid(86_400)
    });
    env.add_filter("bytes", |n: u64| match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    });
    env.add_filter("urlencode_part", |s: String| {
        url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>()
    });
    env
}

/// Every portal route's method and path, as its route table lists them:
/// for tests that walk the portal from the table rather than from a list of
/// their own.
pub fn routes() -> Vec<(Method, &'static str)> {
    pages::table()
        .into_iter()
        .map(|(method, path, _, _)| (method, path))
        .collect()
}

/// The portal's routes, in front of the API router `api` (which its pages
/// call in-process).
pub fn router(state: AppState, api: Router) -> Router {
    let table = pages::table();
    let needs = table
        .iter()
        .map(|(method, path, need, _)| ((method.clone(), (*path).to_owned()), *need))
        .collect();
    let portal = Portal {
        state,
        api,
        templates: Arc::new(environment()),
        needs: Arc::new(needs),
    };
    let mut by_path: std::collections::BTreeMap<&'static str, axum::routing::MethodRouter<Portal>> =
        std::collections::BTreeMap::new();
    for (_, path, _, handler) in table {
        let merged = match by_path.remove(path) {
            Some(existing) => existing.merge(handler),
            None => handler,
        };
        by_path.insert(path, merged);
    }
    let mut router = Router::new();
    for (path, handler) in by_path {
        router = router.route(path, handler);
    }
    router
        .route_layer(axum::middleware::from_fn_with_state(portal.clone(), guard))
        .layer(axum::middleware::from_fn(headers))
        .with_state(portal)
}

/// Security headers on every portal response: no script may run, nothing
/// loads from elsewhere, no framing, nothing cached.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with no-referrer browsers send
    // `Origin: null` on form posts, which the origin check refuses.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

const MAX_FORM_BYTES: usize = 256 * 1024;

/// Authenticates the session, checks the page's need, and for a POST the
/// origin and the CSRF token; the handler gets the [`Session`] and the
/// parsed [`Form`].
async fn guard(State(portal): State<Portal>, request: Request, next: Next) -> Response {
    // HEAD is answered by the GET route, with its need.
    let method = if request.method() == Method::HEAD {
        Method::GET
    } else {
        request.method().clone()
    };
    let need = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|p| portal.needs.get(&(method.clone(), p.as_str().to_owned())))
        .copied()
        .unwrap_or(Need::Permission(Permission::Administer));
    let post = request.method() == Method::POST;
    if post && !same_origin(request.uri(), request.headers()) {
        return portal.error_page(
            None,
            StatusCode::FORBIDDEN,
            "This form was sent from another site; it was refused.",
        );
    }
    let (parts, body) = request.into_parts();
    let mut request = Request::from_parts(parts, Body::empty());
    let form = if post {
        match axum::body::to_bytes(body, MAX_FORM_BYTES).await {
            Ok(bytes) => Form(
                url::form_urlencoded::parse(&bytes)
                    .map(|(k, v)| (k.into_owned(), v.into_owned()))
                    .collect(),
            ),
            Err(_) => {
                return portal.error_page(
                    None,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "The form is too large.",
                );
            }
        }
    } else {
        Form::default()
    };
    let session = match session_cookie(request.headers()) {
        Some(id) => match session_principal(&portal.state, &id).await {
            Ok(Some((principal, key))) => Some((id, principal, key)),
            Ok(None) => None,
            Err(response) => return response,
        },
        None => None,
    };
    if need == Need::Public {
        if let Some((id, principal, key)) = session {
            request.extensions_mut().insert(Session {
                principal,
                csrf: token::csrf_token(&id, key.as_bytes()),
            });
        }
        request.extensions_mut().insert(form);
        return next.run(request).await;
    }
    let Some((id, principal, key)) = session else {
        if post {
            return portal.error_page(
                None,
                StatusCode::UNAUTHORIZED,
                "Your session ended; sign in again.",
            );
        }
        return redirect("/ui/login", None);
    };
    let session = Session {
        csrf: token::csrf_token(&id, key.as_bytes()),
        principal,
    };
    if post
        && !form
            .get("_csrf")
            .is_some_and(|c| token::check_csrf(&id, key.as_bytes(), c))
    {
        return portal.error_page(
            Some(&session),
            StatusCode::FORBIDDEN,
            "The form's security token is missing or stale. Reload the page and try again.",
        );
    }
    if !need.met_by(session.principal.role) {
        return portal.error_page(
            Some(&session),
            StatusCode::FORBIDDEN,
            &format!(
                "Your role ({}) may not open this page or do this.",
                session.principal.role
            ),
        );
    }
    request.extensions_mut().insert(session);
    request.extensions_mut().insert(form);
    next.run(request).await
}

/// A POST is same-origin when its `Origin` (sent by every current browser
/// on a form POST) names the host it was sent to; a request without
/// `Origin` is not from a browser form on another site.
///
/// The host it was sent to is the request target's authority when the
/// request has one (HTTP/2 carries it as `:authority` and browsers send no
/// `Host` header then), else the `Host` header (HTTP/1.1).
fn same_origin(uri: &axum::http::Uri, headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()));
    let Some(host) = host.filter(|h| !h.is_empty()) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

/// A 303 to `location`, with a one-time message for the next page.
fn redirect(location: &str, flash: Option<Flash>) -> Response {
    let mut response = (
        StatusCode::SEE_OTHER,
        [(header::LOCATION, location.to_owned())],
    )
        .into_response();
    if let Some(flash) = flash {
        let (mark, text) = match &flash {
            Flash::Done(t) => ("ok", t),
            Flash::Failed(t) => ("err", t),
        };
        let value: String =
            url::form_urlencoded::byte_serialize(format!("{mark}:{text}").as_bytes()).collect();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "{FLASH_COOKIE}={value}; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=60"
        )) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    response
}

const FLASH_COOKIE: &str = "ck_flash";

/// A message for the page after a redirect.
#[derive(Debug, Clone)]
pub enum Flash {
    /// The action worked.
    Done(String),
    /// The action was refused or failed.
    Failed(String),
}

fn take_flash(headers: &axum::http::HeaderMap) -> Option<Flash> {
    let raw = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == FLASH_COOKIE)
        .map(|(_, value)| value.to_owned())?;
    let decoded: String = url::form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())?;
    let (mark, text) = decoded.split_once(':')?;
    let text: String = text.chars().take(500).collect();
    Some(if mark == "ok" {
        Flash::Done(text)
    } else {
        Flash::Failed(text)
    })
}

/// What the API answered an in-process call.
#[derive(Debug)]
pub struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error message, for a flash.
    fn message(&self) -> String {
        self.body["error"]["message"].as_str().map_or_else(
            || format!("the request failed ({})", self.status),
            str::to_owned,
        )
    }

    /// The body when the call worked, else `fallback` (a section the role
    /// may not read renders empty).
    fn or(self, fallback: Value) -> Value {
        if self.ok() { self.body } else { fallback }
    }
}

impl Portal {
    /// Calls the API as `principal`: the same permission and scope checks
    /// as any API client.
    async fn api(
        &self,
        principal: &Principal,
        method: Method,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(uri);
        if body.is_some() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .extension(InProcess(principal.clone()))
            .body(match body {
                Some(b) => Body::from(serde_json::to_vec(&b).unwrap_or_default()),
                None => Body::empty(),
            });
        let Ok(request) = request else {
            return Answer {
                status: StatusCode::BAD_REQUEST,
                body: json!({ "error": { "message": "bad address" } }),
            };
        };
        let response = match self.api.clone().oneshot(request).await {
            Ok(r) => r,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024 * 1024)
            .await
            .unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// A GET of the API as `principal`: the body when it worked, else an
    /// empty object (a section the role may not read renders empty; use
    /// [`pages::items`] for lists).
    async fn read(&self, principal: &Principal, uri: &str) -> Value {
        self.api(principal, Method::GET, uri, None)
            .await
            .or(json!({}))
    }

    /// Renders `template` with the page's `context` and what every page
    /// shows (who is signed in, the menu, the CSRF token, a flash).
    fn render(
        &self,
        session: Option<&Session>,
        headers: Option<&axum::http::HeaderMap>,
        status: StatusCode,
        template: &str,
        context: Value,
    ) -> Response {
        let flash = headers.and_then(take_flash);
        let mut ctx = match context {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        if let Some(s) = session {
            let role = s.principal.role;
            ctx.insert(
                "me".into(),
                json!({ "name": s.principal.user, "role": role.to_string() }),
            );
            ctx.insert("csrf".into(), json!(s.csrf));
            ctx.insert("nav".into(), json!(pages::menu(role)));
            ctx.insert("can".into(), json!(pages::abilities(role)));
        }
        match &flash {
            Some(Flash::Done(t)) => {
                ctx.insert("flash".into(), json!(t));
            }
            Some(Flash::Failed(t)) => {
                ctx.insert("flash_error".into(), json!(t));
            }
            None => {}
        }
        let rendered = self
            .templates
            .get_template(template)
            .and_then(|t| t.render(Value::Object(ctx)));
        let mut response = match rendered {
            Ok(html) => (
                status,
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                html,
            )
                .into_response(),
            Err(e) => {
                tracing::error!(template, error = %e, "portal page failed to render");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                    "internal error; see the daemon's log\n",
                )
                    .into_response()
            }
        };
        if flash.is_some() {
            response.headers_mut().append(
                header::SET_COOKIE,
                HeaderValue::from_static(
                    "ck_flash=; HttpOnly; SameSite=Strict; Path=/ui; Max-Age=0",
                ),
            );
        }
        response
    }

    fn error_page(&self, session: Option<&Session>, status: StatusCode, message: &str) -> Response {
        self.render(
            session,
            None,
            status,
            "error.html",
            json!({ "title": status.canonical_reason().unwrap_or("Error"), "message": message, "status": status.as_u16() }),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        let mut env = Environment::new();
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }

    #[test]
    fn origin_must_name_the_host() {
        let path: axum::http::Uri = "/ui/login".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8443"));
        assert!(same_origin(&path, &h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://127.0.0.1:8443"),
        );
        assert!(same_origin(&path, &h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&path, &h));
        h.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&path, &h));
    }

    #[test]
    fn over_http2_the_origin_is_checked_against_the_authority() {
        // What hyper hands over for an HTTP/2 request: `:authority` in the
        // URI and no Host header.
        let uri: axum::http::Uri = "https://ck.example:8443/ui/login".parse().unwrap();
        let mut h = axum::http::HeaderMap::new();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://ck.example:8443"),
        );
        assert!(same_origin(&uri, &h));
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&uri, &h));
        // Neither an authority nor a Host: nothing to match an Origin to.
        let path: axum::http::Uri = "/ui/login".parse().unwrap();
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://ck.example:8443"),
        );
        assert!(!same_origin(&path, &h));
    }

    #[test]
    fn flash_round_trips_through_its_cookie() {
        let r = redirect("/ui/", Some(Flash::Done("Request a&b; approved".into())));
        let cookie = r.headers()[header::SET_COOKIE].to_str().unwrap().to_owned();
        let pair = cookie.split(';').next().unwrap().to_owned();
        let mut h = axum::http::HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
        match take_flash(&h) {
            Some(Flash::Done(t)) => assert_eq!(t, "Request a&b; approved"),
            other => panic!("{other:?}"),
        }
    }
}
