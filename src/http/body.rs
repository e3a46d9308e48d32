//! Reading request bodies into memory, bounded.

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::response::{self, ApiError, HttpResponse};

/// Largest form body read into memory (a BBB create with many parameters is a few KB).
pub const MAX_FORM_BODY: usize = 4 * 1024 * 1024;
/// Largest XML body buffered for `create` with pre-uploaded slides (kept to retry on
/// another server if the first one fails).
pub const MAX_CREATE_XML_BODY: usize = 64 * 1024 * 1024;

/// Reads a whole body, refusing more than `limit` bytes with `requestTooLarge` (413).
pub async fn read_limited(body: Incoming, limit: usize) -> Result<Bytes, HttpResponse> {
    match Limited::new(body, limit).collect().await {
        Ok(c) => Ok(c.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(response::with_status(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/xml; charset=utf-8",
            ApiError::new(
                "requestTooLarge",
                format!("The request body is larger than {limit} bytes."),
            )
            .to_xml(),
        )),
        Err(_) => Err(response::with_status(
            StatusCode::BAD_REQUEST,
            "text/xml; charset=utf-8",
            ApiError::new("badRequest", "The request body could not be read.").to_xml(),
        )),
    }
}
