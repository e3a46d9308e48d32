//! A verified API call as its handler receives it: which call, its parameters (checksum
//! removed), the algorithm it was signed with, the tenant and the body left to read.

use bytes::Bytes;
use hyper::body::Incoming;

use crate::bbb::calls::ApiCall;
use crate::bbb::checksum::Algorithm;
use crate::bbb::params::Params;
use crate::tenant::TenantScope;

/// The body a handler may still consume.
pub enum CallBody {
    None,
    /// A buffered XML body (`create` with slides).
    Xml(Bytes),
    /// An XML body left unread, to be streamed to the backend (`insertDocument`).
    Stream(Incoming),
    /// A multipart form body, kept for the call (`putRecordingTextTrack`'s file).
    Multipart {
        body: Bytes,
        content_type: String,
    },
}

/// A verified API call, ready for its handler.
pub struct Call {
    pub kind: ApiCall,
    /// `kind`'s name, for logs and for code that builds BBB URLs.
    pub name: &'static str,
    pub params: Params,
    /// The algorithm of the request's checksum; calls forwarded to BBB use it too.
    pub alg: Algorithm,
    /// Empty when multitenancy is off (or on the bare `BASE_URL` host).
    pub tenant_id: String,
    /// The tenant named by the Host, when multitenancy is on.
    pub tenant: Option<crate::store::Tenant>,
    pub body: CallBody,
    /// `http` or `https`, from `X-Forwarded-Proto` when nginx sets it.
    pub scheme: String,
    pub host: String,
}

impl Call {
    /// The tenant the call is scoped to.
    pub fn scope(&self) -> TenantScope<'_> {
        TenantScope::from_stored(&self.tenant_id)
    }

    /// `<scheme>://<host>` of the request: the prefix of the URLs an answer links to.
    pub fn url_prefix(&self) -> String {
        format!("{}://{}", self.scheme, self.host)
    }
}
