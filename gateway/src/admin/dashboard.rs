//! `GET /admin/dashboard`: one self-contained HTML page (inline CSS, JS and SVG; no
//! external assets). Served without the admin token because it holds no data and no
//! secret: the page asks the operator for the token, keeps it in `sessionStorage`, and
//! calls the admin API with it.

use actix_web::HttpResponse;
use actix_web::http::header;

/// The page.
const PAGE: &str = include_str!("dashboard.html");

/// Serves the page.
pub async fn page() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
        ))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .body(PAGE)
}
