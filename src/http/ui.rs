//! The score builder page at `/ui`: a static page (HTML, one script, one
//! stylesheet from `ui/`) compiled into the binary, so it is served the same
//! way by `scorehook serve` and by the Lambda function, offline, with no CDN
//! and no build step.
//!
//! The page works only through the admin API: this module serves bytes and
//! headers, and must not grow handlers of its own. Every answer carries a
//! strict `Content-Security-Policy` (same origin only, no inline script or
//! style), `nosniff`, and an `ETag` over the content with `Cache-Control:
//! no-cache`, so a browser revalidates cheaply and a new binary's page is
//! never served stale.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Only our own origin, and nothing inline: the page never renders data as markup.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; \
                   form-action 'none'; base-uri 'none'; frame-ancestors 'none'";

/// One compiled-in file and what it is served as.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    etag: OnceLock<String>,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Self {
        Self { body, content_type, etag: OnceLock::new() }
    }

    /// A strong validator: the content's hash, computed once per process.
    fn etag(&self) -> &str {
        self.etag.get_or_init(|| format!("\"{}\"", &hex::encode(Sha256::digest(self.body.as_bytes()))[..32]))
    }

    fn respond(&self, request: &HeaderMap) -> Response {
        let etag = self.etag();
        let fresh = request
            .get(header::IF_NONE_MATCH)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|tags| tags.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
        let mut response = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { self.body.into_response() };
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(self.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        if let Ok(value) = HeaderValue::from_str(etag) {
            headers.insert(header::ETAG, value);
        }
        response
    }
}

static INDEX: Asset = Asset::new(include_str!("../../ui/index.html"), "text/html; charset=utf-8");
static SCRIPT: Asset = Asset::new(include_str!("../../ui/app.js"), "text/javascript; charset=utf-8");
static STYLE: Asset = Asset::new(include_str!("../../ui/app.css"), "text/css; charset=utf-8");

/// `/ui` (the page), `/ui/` (to the page), `/ui/app.js`, `/ui/app.css`.
/// Generic over the state so it merges into any router and tests need no service.
pub fn router<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new().routes(routes!(page)).routes(routes!(to_page)).routes(routes!(script)).routes(routes!(style))
}

/// The score builder page (public; everything it shows comes from the admin API).
#[utoipa::path(
    get,
    path = "/ui",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The page", content_type = "text/html"),
        (status = 304, description = "Not modified since the `If-None-Match` ETag")
    )
)]
async fn page(headers: HeaderMap) -> Response {
    INDEX.respond(&headers)
}

/// To the page.
#[utoipa::path(
    get,
    path = "/ui/",
    tag = "meta",
    security(()),
    responses((status = 308, description = "To `/ui`", headers(("Location" = String))))
)]
async fn to_page() -> Redirect {
    Redirect::permanent("/ui")
}

/// The page's script.
#[utoipa::path(
    get,
    path = "/ui/app.js",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The script", content_type = "text/javascript"),
        (status = 304, description = "Not modified since the `If-None-Match` ETag")
    )
)]
async fn script(headers: HeaderMap) -> Response {
    SCRIPT.respond(&headers)
}

/// The page's stylesheet.
#[utoipa::path(
    get,
    path = "/ui/app.css",
    tag = "meta",
    security(()),
    responses(
        (status = 200, description = "The stylesheet", content_type = "text/css"),
        (status = 304, description = "Not modified since the `If-None-Match` ETag")
    )
)]
async fn style(headers: HeaderMap) -> Response {
    STYLE.respond(&headers)
}

#[cfg(test)]
mod tests {
    use axum::body::{to_bytes, Body};
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str, if_none_match: Option<&str>) -> Response {
        let mut request = Request::get(path);
        if let Some(tag) = if_none_match {
            request = request.header(header::IF_NONE_MATCH, tag);
        }
        let request = request.body(Body::empty()).unwrap();
        axum::Router::from(router::<()>()).oneshot(request).await.unwrap()
    }

    fn header_of(response: &Response, name: header::HeaderName) -> &str {
        response.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }

    #[tokio::test]
    async fn each_asset_is_served_with_its_content_type_and_a_strict_policy() {
        for (path, content_type, marker) in [
            ("/ui", "text/html; charset=utf-8", "<title>"),
            ("/ui/app.js", "text/javascript; charset=utf-8", "sessionStorage"),
            ("/ui/app.css", "text/css; charset=utf-8", "{"),
        ] {
            let response = get(path, None).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert_eq!(header_of(&response, header::CONTENT_TYPE), content_type, "{path}");
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache", "{path}");
            assert_eq!(header_of(&response, header::X_CONTENT_TYPE_OPTIONS), "nosniff", "{path}");
            let csp = header_of(&response, header::CONTENT_SECURITY_POLICY);
            assert!(csp.starts_with("default-src 'none'; script-src 'self'"), "{path}: {csp}");
            assert!(!csp.contains("unsafe"), "{path}: {csp}");
            let body = to_bytes(response.into_body(), usize::MAX).await.unwrap();
            assert!(String::from_utf8_lossy(&body).contains(marker), "{path}");
        }
    }

    #[tokio::test]
    async fn the_page_loads_its_script_and_style_from_our_own_origin_only() {
        let html = INDEX.body;
        assert!(html.contains(r#"<script src="/ui/app.js" defer></script>"#));
        assert!(html.contains(r#"<link rel="stylesheet" href="/ui/app.css">"#));
        // Nothing inline, which the policy would block, and nothing remote.
        assert!(!html.contains("<script>") && !html.contains("style=") && !html.contains("<style"));
        for asset in [INDEX.body, SCRIPT.body, STYLE.body] {
            assert!(!asset.contains("http://") && !asset.contains("https://"));
        }
    }

    #[tokio::test]
    async fn a_matching_etag_is_answered_304_and_a_stale_one_gets_the_body() {
        let first = get("/ui/app.js", None).await;
        let etag = header_of(&first, header::ETAG).to_owned();
        assert!(etag.starts_with('"') && etag.len() == 34, "{etag}");
        let again = get("/ui/app.js", Some(&etag)).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(header_of(&again, header::ETAG), etag);
        let stale = get("/ui/app.js", Some("\"0000\"")).await;
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn the_trailing_slash_redirects_to_the_page() {
        let response = get("/ui/", None).await;
        assert_eq!(response.status(), StatusCode::PERMANENT_REDIRECT);
        assert_eq!(header_of(&response, header::LOCATION), "/ui");
    }
}
