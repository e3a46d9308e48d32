//! Reading what every route needs from a request: the Host, the scheme nginx saw, and
//! the body's declared type. Pure functions over the headers.

use http::{header, Request};

/// The Host header (the authority for HTTP/2-style requests).
pub fn host_of<B>(req: &Request<B>) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default()
}

/// `http` or `https`, from `X-Forwarded-Proto` when nginx sets it (anything else is `http`).
pub fn scheme_of<B>(req: &Request<B>) -> String {
    req.headers()
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(',').next().unwrap_or("").trim().to_string())
        .filter(|v| v == "https" || v == "http")
        .unwrap_or_else(|| "http".into())
}

/// Whether the request announces a body (a non-zero length, or chunked).
pub fn has_body<B>(req: &Request<B>) -> bool {
    let len = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match len {
        Some(n) => n > 0,
        None => req.headers().contains_key(header::TRANSFER_ENCODING),
    }
}

/// The request's Content-Type header, as sent.
pub fn content_type<B>(req: &Request<B>) -> Option<&str> {
    req.headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
}

/// The MIME type of the body, lower-cased, without parameters.
pub fn mime<B>(req: &Request<B>) -> Option<String> {
    content_type(req).map(mime_of)
}

/// A Content-Type's MIME type, lower-cased, without parameters.
pub fn mime_of(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// A form body, as BBB clients send one.
pub fn is_form(m: &str) -> bool {
    m == "application/x-www-form-urlencoded" || m == "multipart/form-data"
}

/// An XML body (`create` with slides, `insertDocument`).
pub fn is_xml(m: &str) -> bool {
    m == "application/xml" || m == "text/xml" || m == "application/x-xml"
}
