//! The BBB API calls Ferrolite answers, as one type: the router, each family's dispatch,
//! the recording-disabled stubs and the metrics labels all read this one list.
//!
//! Parsing a call name gives an [`ApiCall`]; everything else about the call (methods,
//! accepted bodies, family) is a `match` on it, so adding a call is one variant and the
//! compiler points at every place that must know about it.

/// One call of `/bigbluebutton/api/<call>` that takes a checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiCall {
    Create,
    Join,
    End,
    IsMeetingRunning,
    GetMeetingInfo,
    GetMeetings,
    InsertDocument,
    SendChatMessage,
    GetRecordings,
    PublishRecordings,
    UpdateRecordings,
    DeleteRecordings,
    GetRecordingTextTracks,
    PutRecordingTextTrack,
}

/// Which handler module serves a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Meetings,
    Recordings,
}

/// Which request bodies a call accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bodies {
    /// `application/x-www-form-urlencoded` or `multipart/form-data`.
    Form,
    /// A form, or XML (`create` with pre-uploaded slides).
    FormOrXml,
    /// XML only (`insertDocument`).
    Xml,
}

impl ApiCall {
    pub const ALL: [ApiCall; 14] = [
        ApiCall::Create,
        ApiCall::Join,
        ApiCall::End,
        ApiCall::IsMeetingRunning,
        ApiCall::GetMeetingInfo,
        ApiCall::GetMeetings,
        ApiCall::InsertDocument,
        ApiCall::SendChatMessage,
        ApiCall::GetRecordings,
        ApiCall::PublishRecordings,
        ApiCall::UpdateRecordings,
        ApiCall::DeleteRecordings,
        ApiCall::GetRecordingTextTracks,
        ApiCall::PutRecordingTextTrack,
    ];

    /// The call as named in the URL (case-sensitive, as BBB).
    pub fn parse(name: &str) -> Option<ApiCall> {
        ApiCall::ALL.into_iter().find(|c| c.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ApiCall::Create => "create",
            ApiCall::Join => "join",
            ApiCall::End => "end",
            ApiCall::IsMeetingRunning => "isMeetingRunning",
            ApiCall::GetMeetingInfo => "getMeetingInfo",
            ApiCall::GetMeetings => "getMeetings",
            ApiCall::InsertDocument => "insertDocument",
            ApiCall::SendChatMessage => "sendChatMessage",
            ApiCall::GetRecordings => "getRecordings",
            ApiCall::PublishRecordings => "publishRecordings",
            ApiCall::UpdateRecordings => "updateRecordings",
            ApiCall::DeleteRecordings => "deleteRecordings",
            ApiCall::GetRecordingTextTracks => "getRecordingTextTracks",
            ApiCall::PutRecordingTextTrack => "putRecordingTextTrack",
        }
    }

    pub fn family(self) -> Family {
        match self {
            ApiCall::GetRecordings
            | ApiCall::PublishRecordings
            | ApiCall::UpdateRecordings
            | ApiCall::DeleteRecordings
            | ApiCall::GetRecordingTextTracks
            | ApiCall::PutRecordingTextTrack => Family::Recordings,
            _ => Family::Meetings,
        }
    }

    /// Whether GET (and HEAD) is accepted.
    pub fn allows_get(self) -> bool {
        !matches!(
            self,
            ApiCall::InsertDocument | ApiCall::PutRecordingTextTrack
        )
    }

    /// Whether POST is accepted (Scalelite routes these calls GET-only).
    pub fn allows_post(self) -> bool {
        !matches!(
            self,
            ApiCall::Join | ApiCall::PublishRecordings | ApiCall::DeleteRecordings
        )
    }

    pub fn bodies(self) -> Bodies {
        match self {
            ApiCall::Create => Bodies::FormOrXml,
            ApiCall::InsertDocument => Bodies::Xml,
            _ => Bodies::Form,
        }
    }

    /// Answered by Scalelite's fixed stubs while `RECORDING_DISABLED=true`.
    pub fn stubbed_when_recording_disabled(self) -> bool {
        matches!(
            self,
            ApiCall::GetRecordings
                | ApiCall::PublishRecordings
                | ApiCall::UpdateRecordings
                | ApiCall::DeleteRecordings
        )
    }

    /// The `call` label of the request metrics (bounded: one per variant).
    pub fn metrics_label(self) -> &'static str {
        self.name()
    }
}

impl std::fmt::Display for ApiCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_call_parses_back_from_its_name_and_nothing_else_does() {
        for c in ApiCall::ALL {
            assert_eq!(ApiCall::parse(c.name()), Some(c));
        }
        assert_eq!(ApiCall::parse("Create"), None);
        assert_eq!(ApiCall::parse("getMeetings/"), None);
        assert_eq!(ApiCall::parse(""), None);
    }

    #[test]
    fn methods_and_bodies_follow_scalelites_routes() {
        assert!(!ApiCall::Join.allows_post() && ApiCall::Join.allows_get());
        assert!(!ApiCall::InsertDocument.allows_get() && ApiCall::InsertDocument.allows_post());
        assert_eq!(ApiCall::Create.bodies(), Bodies::FormOrXml);
        assert_eq!(ApiCall::GetRecordings.family(), Family::Recordings);
        assert!(!ApiCall::GetRecordingTextTracks.stubbed_when_recording_disabled());
    }
}
