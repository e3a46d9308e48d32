//! BBB-style XML answers and the error catalogue Scalelite clients rely on.
//!
//! Every API answer is HTTP 200 with `<response><returncode>…`, errors included, because
//! that is what BBB and Scalelite do and what front ends parse.

use bytes::Bytes;
use http::{header, Response, StatusCode};
use http_body_util::Full;

pub type HttpResponse = Response<Full<Bytes>>;

/// What a handler returns: its answer, or a FAILED document (`?` on a store error gives
/// the generic one, see `From<StoreError>`).
pub type ApiResult = Result<HttpResponse, ApiError>;

/// A FAILED answer: `messageKey` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub key: String,
    pub message: String,
}

impl ApiError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError {
            key: key.into(),
            message: message.into(),
        }
    }

    pub fn checksum() -> ApiError {
        ApiError::new(
            "checksumError",
            "You did not pass the checksum security check",
        )
    }
    pub fn missing_meeting_id() -> ApiError {
        ApiError::new(
            "missingParamMeetingID",
            "You must specify a meeting ID for the meeting.",
        )
    }
    pub fn missing_record_id() -> ApiError {
        ApiError::new("missingParamRecordID", "You must specify a recordID.")
    }
    pub fn meeting_not_found() -> ApiError {
        ApiError::new(
            "notFound",
            "We could not find a meeting with that meeting ID - perhaps the meeting is not yet running?",
        )
    }
    pub fn unsupported_request() -> ApiError {
        ApiError::new("unsupportedRequest", "This request is not supported.")
    }
    pub fn unsupported_content_type() -> ApiError {
        ApiError::new(
            "unsupportedContentType",
            "POST request Content-Type is missing or unsupported",
        )
    }
    pub fn server_unavailable() -> ApiError {
        ApiError::new(
            "serverUnavailable",
            "The server for this meeting is disabled/offline.",
        )
    }
    pub fn no_server() -> ApiError {
        ApiError::new("internalError", "Could not find any available servers.")
    }
    pub fn tag_unavailable(tags: &str) -> ApiError {
        ApiError::new(
            "serverTagUnavailable",
            format!("There is no available server with the required tag={tags}."),
        )
    }
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new("internalError", message)
    }

    pub fn to_xml(&self) -> String {
        format!(
            "<response><returncode>FAILED</returncode><messageKey>{}</messageKey><message>{}</message></response>",
            escape(&self.key),
            escape(&self.message)
        )
    }

    pub fn into_response(self) -> HttpResponse {
        xml(self.to_xml())
    }
}

impl From<ApiError> for HttpResponse {
    fn from(e: ApiError) -> HttpResponse {
        e.into_response()
    }
}

/// A handler's answer either way.
pub fn answer(r: ApiResult) -> HttpResponse {
    r.unwrap_or_else(ApiError::into_response)
}

/// Escapes text for an XML element or attribute value.
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    quick_xml::escape::escape(s)
}

/// `<response><returncode>SUCCESS</returncode>` + the given elements.
pub fn success(elements: &[(&str, &str)]) -> String {
    let mut s = String::from("<response><returncode>SUCCESS</returncode>");
    for (name, value) in elements {
        s.push_str(&format!("<{name}>{}</{name}>", escape(value)));
    }
    s.push_str("</response>");
    s
}

/// An HTTP 200 XML response.
pub fn xml(body: impl Into<Bytes>) -> HttpResponse {
    with_status(StatusCode::OK, "text/xml; charset=utf-8", body)
}

pub fn with_status(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> HttpResponse {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_str(content_type).expect("static content type"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache"),
    );
    r
}

pub fn text(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    with_status(status, "text/plain; charset=utf-8", body)
}

/// A 302 to `location` (join).
pub fn redirect(location: &str) -> HttpResponse {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::FOUND;
    match header::HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => ApiError::internal("Unable to build the join URL.").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_escaped_bbb_documents() {
        let e = ApiError::new("k", "a<b & \"c\"");
        assert_eq!(
            e.to_xml(),
            "<response><returncode>FAILED</returncode><messageKey>k</messageKey><message>a&lt;b &amp; &quot;c&quot;</message></response>"
        );
        assert_eq!(
            success(&[("running", "false")]),
            "<response><returncode>SUCCESS</returncode><running>false</running></response>"
        );
    }
}
