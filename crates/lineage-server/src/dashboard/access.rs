//! Who may read the dashboard, and the headers every dashboard answer carries.
//!
//! The dashboard shows what the API guards with a `read` token, so it asks for one: from an
//! `Authorization: Bearer` header (curl) or from the cookie the login form sets (a browser).
//! Both go through [`AppState::authorize_token`], the one token decision of the server.
//! `lineage serve --public-dashboard` opens the pages to anyone, as before tokens guarded them.
//!
//! The cookie's value is the token itself, looked up by its SHA-256 like a header token. That
//! is safe here because:
//! - it is `HttpOnly`, and the pages run no script at all (the CSP forbids it), so nothing in
//!   a page can read it;
//! - it is `SameSite=Strict`, so a browser sends it only on requests that start on this
//!   server: another site can neither make the browser read a page with it nor post with it;
//! - only the dashboard's pages read it; the JSON API and its writes accept nothing but an
//!   `Authorization` header, so a cookie can never make a write happen (no CSRF);
//! - it is `Secure` when the server serves TLS, so it never travels in clear text then.
//!
//! In exchange, revoking the token ends the browser's access on the next index refresh, and
//! replicas need no shared session table: any replica checks the cookie as it checks a header.

use std::sync::{Arc, LazyLock};

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

use maud::html;

use super::{document, STYLE};
use crate::auth::{self, Scope};
use crate::AppState;

/// Who may read the dashboard, and how its login cookie is marked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DashboardConfig {
    /// `lineage serve --public-dashboard`: every page is readable without a token.
    pub public: bool,
    /// The server serves TLS: the login cookie is marked `Secure`.
    pub secure_cookie: bool,
}

/// The cookie the login form sets.
pub const COOKIE: &str = "lineage_token";

/// A login form holds a token (about 60 bytes) and a path; anything much larger is not one.
pub const LOGIN_FORM_LIMIT: usize = 4 * 1024;

/// The page a refused browser is sent to.
pub const LOGIN: &str = "/login";

/// `Content-Security-Policy` of every dashboard answer: no script, no frame, no plug-in; the
/// only style is the inline stylesheet, allowed by its hash, so an injected `<style>` or
/// `style=` does nothing; forms post only here; the page cannot be framed (click-jacking).
pub static CSP: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(STYLE));
    HeaderValue::from_str(&format!(
        "default-src 'none'; style-src 'sha256-{hash}'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ))
    .expect("a base64 hash is a header value")
});

/// `/login` and `/logout`: open to everyone, or no one could log in.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            LOGIN,
            get(login_form)
                .post(login)
                .layer(DefaultBodyLimit::max(LOGIN_FORM_LIMIT)),
        )
        .route("/logout", post(logout))
}

/// Adds the security headers to a dashboard answer: pages, login, errors and redirects alike.
pub(super) async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, CSP.clone());
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Pages show ledger data; a shared or back-button cache must not keep them after logout.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What a request presents to read the dashboard.
enum Presented<'a> {
    Nothing,
    /// An `Authorization` header; `None` when it is not a bearer token.
    Header(Option<&'a str>),
    Cookie(&'a str),
}

fn presented(headers: &HeaderMap) -> Presented<'_> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        return Presented::Header(value.to_str().ok().and_then(auth::bearer));
    }
    match cookie(headers) {
        Some(token) => Presented::Cookie(token),
        None => Presented::Nothing,
    }
}

/// The login cookie's value, if the request carries a non-empty one.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|v| !v.is_empty())
}

/// Lets a request through to a page only with a `read` token, unless the dashboard is public.
/// Nothing presented: 303 to the login page. A bad token: the login page, 401. A token
/// without `read`: an error page, 403.
pub(super) async fn require_read(
    State(st): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    if st.cfg.dashboard.public {
        return next.run(req).await;
    }
    let target = req
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let (token, from_cookie) = match presented(req.headers()) {
        Presented::Nothing => return to_login(&target),
        Presented::Header(t) => (t, false),
        Presented::Cookie(t) => (Some(t), true),
    };
    match st.authorize_token(token, Scope::Read) {
        Ok(_) => next.run(req).await,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => {
            let mut response = login_page(
                &target,
                Some((
                    "the token is not valid: unknown, malformed or revoked",
                    NO_TOKEN_HINT,
                )),
                StatusCode::UNAUTHORIZED,
            );
            if from_cookie {
                // A revoked token in the cookie: forget it, so the next visit is a clean login.
                response
                    .headers_mut()
                    .insert(header::SET_COOKIE, clear_cookie(&st));
            } else {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            response
        }
        Err(e) => super::error_page(&st, e),
    }
}

const NO_TOKEN_HINT: &str = "`lineage token list` shows live tokens; make one with `lineage token create --name NAME --scope read`";

/// Where the login page may send a browser back to: a path on this server, else `/`.
///
/// Only a path that starts with a single `/` qualifies. `//host` and `/\host` are read by
/// browsers as another host, and browsers drop tabs and newlines from URLs (so `/\t/host` is
/// `//host`); anything outside printable ASCII, or with a `\` anywhere, is refused.
pub fn safe_next(input: &str) -> &str {
    let bytes = input.as_bytes();
    let printable = bytes.iter().all(|b| (0x21..=0x7e).contains(b));
    let local = bytes.first() == Some(&b'/') && !matches!(bytes.get(1), Some(b'/') | Some(b'\\'));
    if printable && local && !input.contains('\\') {
        input
    } else {
        "/"
    }
}

/// Percent-encodes everything but unreserved characters and `/`, for a query value.
pub(super) fn encode(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    for b in input.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// 303 to a local path, with a link for clients that do not follow redirects.
fn see_other(location: &str) -> Response {
    let location = safe_next(location);
    let body = html! {
        (maud::DOCTYPE) title { "Lineage" } p { "Continue to " a href=(location) { (location) } "." }
    }
    .into_string();
    let mut response = (StatusCode::SEE_OTHER, Html(body)).into_response();
    response.headers_mut().insert(
        header::LOCATION,
        HeaderValue::from_str(location).expect("safe_next returns printable ASCII"),
    );
    response
}

fn to_login(target: &str) -> Response {
    let target = safe_next(target);
    if target == "/" {
        see_other(LOGIN)
    } else {
        see_other(&format!("{LOGIN}?next={}", encode(target)))
    }
}

fn cookie_attributes(st: &AppState) -> &'static str {
    if st.cfg.dashboard.secure_cookie {
        "HttpOnly; SameSite=Strict; Path=/; Secure"
    } else {
        "HttpOnly; SameSite=Strict; Path=/"
    }
}

fn clear_cookie(st: &AppState) -> HeaderValue {
    HeaderValue::from_str(&format!("{COOKIE}=; Max-Age=0; {}", cookie_attributes(st)))
        .expect("a fixed cookie is a header value")
}

/// The login page, with an error when a login or a presented token failed. What was typed is
/// never put back into the page.
fn login_page(next: &str, error: Option<(&str, &str)>, status: StatusCode) -> Response {
    let body = html! {
        @if let Some((message, hint)) = error {
            p.bad { (message) }
            p { (hint) }
        }
        form.card method="post" action=(LOGIN) {
            p { "The dashboard shows the ledger to holders of a token with the " code { "read" } " scope." }
            input type="hidden" name="next" value=(safe_next(next));
            p { label { "Token " input type="password" name="token" autocomplete="off" required autofocus; } }
            p { button type="submit" { "Sign in" } }
        }
        p.muted {
            "Make one with " code { "lineage token create --name NAME --scope read" }
            "; a token with only " code { "read" } " is the one to keep in a browser."
        }
    };
    (status, Html(document("Sign in", html! {}, body))).into_response()
}

#[derive(Deserialize)]
struct NextQuery {
    next: Option<String>,
}

async fn login_form(
    State(st): State<Arc<AppState>>,
    query: Result<Query<NextQuery>, QueryRejection>,
) -> Response {
    let next = query.ok().and_then(|q| q.0.next).unwrap_or_default();
    if st.cfg.dashboard.public {
        return see_other(&next);
    }
    login_page(&next, None, StatusCode::OK)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
    next: Option<String>,
}

/// Another site's page may not post our forms. Browsers say where a request came from in
/// `Sec-Fetch-Site`; without it (an old browser, curl) the request is let through, as the
/// cookie's `SameSite=Strict` still keeps it from riding along.
fn cross_site(headers: &HeaderMap) -> bool {
    headers
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("cross-site"))
}

async fn login(
    State(st): State<Arc<AppState>>,
    headers: HeaderMap,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    if cross_site(&headers) {
        return cross_site_refused(&st);
    }
    let form = match form {
        Ok(Form(f)) => f,
        Err(rejection) => {
            // The rejection's own text may quote the body, so it is not shown.
            let status = rejection.status();
            let message = match status {
                StatusCode::PAYLOAD_TOO_LARGE => {
                    format!("the form is larger than {LOGIN_FORM_LIMIT} bytes")
                }
                StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                    "the form must be sent as `application/x-www-form-urlencoded`".to_string()
                }
                _ => "the form could not be read".to_string(),
            };
            return login_page(
                "/",
                Some((&message, "paste the token into the field and press Sign in")),
                status,
            );
        }
    };
    let next = form.next.unwrap_or_default();
    let token = form.token.trim();
    match st.authorize_token(Some(token), Scope::Read) {
        Ok(_) => {
            // A live token was made by `token create` (`lin_`, hex, base64url), so it is a
            // valid cookie value; anything else could not have been found.
            let Ok(cookie) =
                HeaderValue::from_str(&format!("{COOKIE}={token}; {}", cookie_attributes(&st)))
            else {
                return login_page(
                    &next,
                    Some((
                        "the token is not valid: unknown, malformed or revoked",
                        NO_TOKEN_HINT,
                    )),
                    StatusCode::UNAUTHORIZED,
                );
            };
            let mut response = see_other(&next);
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        Err(e) if e.status == StatusCode::UNAUTHORIZED => login_page(
            &next,
            Some((
                "the token is not valid: unknown, malformed or revoked",
                NO_TOKEN_HINT,
            )),
            StatusCode::UNAUTHORIZED,
        ),
        Err(e) => login_page(
            &next,
            Some((&e.message, e.hint.as_deref().unwrap_or(NO_TOKEN_HINT))),
            e.status,
        ),
    }
}

async fn logout(State(st): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    if cross_site(&headers) {
        return cross_site_refused(&st);
    }
    let mut response = see_other(LOGIN);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, clear_cookie(&st));
    response
}

fn cross_site_refused(st: &AppState) -> Response {
    super::error_page(
        st,
        crate::ApiError::new(
            StatusCode::FORBIDDEN,
            "a form from another site was posted here",
            format!("open {LOGIN} on this server and sign in there"),
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_redirect_targets() {
        for ok in ["/", "/services/api", "/incident?q=python%3A3.12", "/log#x"] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "",
            "//evil.example",
            "https://evil.example",
            "/\\evil",
            "/\\/evil",
            "\\\\evil",
            "/\t/evil.example",
            "/ok\r\nSet-Cookie: x=1",
            "/ok\\..",
            "evil.example",
            "/caf\u{e9}",
            "javascript:alert(1)",
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn the_login_target_survives_the_round_trip() {
        assert_eq!(
            encode("/incident?q=python:3.12 slim&x=1"),
            "/incident%3Fq%3Dpython%3A3.12%20slim%26x%3D1"
        );
    }

    #[test]
    fn the_csp_hash_is_the_stylesheet_s() {
        let csp = CSP.to_str().unwrap();
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(!csp.contains("script-src"), "{csp}");
        let page = document("t", html! {}, html! {});
        let style = page
            .split("<style>")
            .nth(1)
            .and_then(|s| s.split("</style>").next())
            .unwrap();
        let hash = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(style));
        assert!(csp.contains(&format!("style-src 'sha256-{hash}'")), "{csp}");
    }
}
