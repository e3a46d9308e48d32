//! `POST /bigbluebutton/recording/upload`: a tarball pushed by a BBB server's hook. The
//! handler reads the headers, runs [`upload::accept`] and answers JSON: 2xx only once the
//! import committed; 4xx when retrying cannot help (bad token, bad tarball — then kept in
//! `failed/`); 503 when it can.

use http::{header, Method, StatusCode};
use hyper::body::Incoming;
use hyper::Request;
use serde_json::json;

use crate::app::App;
use crate::http::response::{self, HttpResponse};
use crate::recordings::upload::{self, ReceiveError, UploadError};

fn upload_answer(status: StatusCode, v: serde_json::Value) -> HttpResponse {
    response::with_status(status, "application/json; charset=utf-8", v.to_string())
}

fn upload_failed(status: StatusCode, key: &str, message: impl Into<String>) -> HttpResponse {
    upload_answer(
        status,
        json!({"returncode": "FAILED", "messageKey": key, "message": message.into()}),
    )
}

/// The status code and message key of a failed upload (pure).
pub fn status_of(e: &UploadError) -> (StatusCode, &'static str) {
    match e {
        UploadError::Disabled => (StatusCode::NOT_FOUND, "recordingDisabled"),
        UploadError::Token(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
        UploadError::StoreUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "storeUnavailable"),
        UploadError::Declared(_) => (StatusCode::PAYLOAD_TOO_LARGE, "requestTooLarge"),
        UploadError::SpoolUnavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "spoolUnavailable"),
        UploadError::Body(b) => (
            match b {
                ReceiveError::TimedOut(_) => StatusCode::REQUEST_TIMEOUT,
                ReceiveError::Interrupted(_) => StatusCode::BAD_REQUEST,
                ReceiveError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
                ReceiveError::Spool(_) => StatusCode::SERVICE_UNAVAILABLE,
            },
            "uploadFailed",
        ),
        UploadError::ChecksumMismatch => (StatusCode::UNPROCESSABLE_ENTITY, "checksumMismatch"),
        UploadError::Partial(_) | UploadError::Refused(_) => {
            (StatusCode::UNPROCESSABLE_ENTITY, "importFailed")
        }
        UploadError::Retry(_) => (StatusCode::SERVICE_UNAVAILABLE, "importUnavailable"),
    }
}

pub async fn upload(app: &App, req: Request<Incoming>) -> HttpResponse {
    if req.method() != Method::POST {
        return upload_failed(
            StatusCode::METHOD_NOT_ALLOWED,
            "methodNotAllowed",
            "Use POST with the tarball as the body.",
        );
    }
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    let token = header(header::AUTHORIZATION)
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string());
    let declared = header(header::CONTENT_LENGTH).and_then(|v| v.parse::<u64>().ok());
    match upload::accept(app, token.as_deref(), declared, req.into_body()).await {
        Ok(done) => upload_answer(
            StatusCode::OK,
            json!({"returncode": "SUCCESS", "recordID": done.record_id, "formats": done.formats}),
        ),
        Err(e) => {
            let (status, key) = status_of(&e);
            upload_failed(status, key, e.to_string())
        }
    }
}
