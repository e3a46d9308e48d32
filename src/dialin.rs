//! FreeSWITCH dial-in: the XML dialplans Ferrolite answers to a call gateway's
//! `mod_xml_curl` requests (Scalelite's `/fsapi`), as pure functions.
//!
//! A call first gets a PIN prompt; FreeSWITCH then asks again with `variable_pin` set, and
//! Ferrolite answers with a bridge to the BBB server holding the meeting with that voice
//! bridge, or a re-prompt. Every value a caller controls (caller ID, dialled number, PIN)
//! and the meeting ID pass through [`fs_escape`] before they reach action data, because
//! FreeSWITCH expands `${…}` there (Scalelite's advisory: a caller ID `${system(…)}` ran
//! commands on the gateway); everything is XML-escaped too. Unlike Scalelite, the re-prompt
//! uses the same `\d+` digit pattern as the first prompt (Scalelite's says `d+`).

use crate::http::response::escape;

/// Neutralises FreeSWITCH variable expansion: `\` → `\\` and `${` → `\${` (a lone `$` is
/// left alone; FreeSWITCH only unescapes around `${`).
pub fn fs_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace("${", "\\${")
}

/// Escapes regular-expression metacharacters (for the `condition expression`).
pub fn regex_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) || c.is_whitespace() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The caller as shown in the meeting: digits masked but the first `len − 4`
/// (`5554321` → `555XXXX`), a name as given; hidden or empty → `Unavailable`.
pub fn caller_id(name: &str, hide_number: bool, hide_name: bool) -> String {
    let name = name.trim();
    let numeric = !name.is_empty() && name.chars().all(|c| c.is_ascii_digit());
    if name.is_empty() || (numeric && hide_number) || (!numeric && hide_name) {
        return "Unavailable".into();
    }
    if numeric {
        let keep = name.len().saturating_sub(4);
        return name[..keep].to_string() + &"X".repeat(name.len() - keep);
    }
    name.to_string()
}

/// One `<action application=… data=…/>`.
fn action(app: &str, data: &str) -> String {
    format!(
        "<action application=\"{}\" data=\"{}\"/>",
        escape(app),
        escape(data)
    )
}

fn document(description: &str, extension: &str, expression: &str, actions: &[String]) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<document type=\"freeswitch/xml\"><section name=\"dialplan\" description=\"{}\"><context name=\"public\"><extension name=\"{}\"><condition field=\"destination_number\" expression=\"{}\">{}</condition></extension></context></section></document>",
        escape(description),
        escape(extension),
        escape(expression),
        actions.concat()
    )
}

fn expression(destination: &str) -> String {
    format!("^{}$", fs_escape(&regex_escape(destination)))
}

fn get_digits(min: u32, max: u32) -> String {
    action(
        "play_and_get_digits",
        &format!("{min} {max} 3 7000 # conference/conf-enter_conf_pin.wav conference/conf-bad-pin.wav pin \\d+"),
    )
}

/// "Not found": the request is not for a dialplan.
pub fn not_found() -> String {
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<document type=\"freeswitch/xml\"><section name=\"result\"><result status=\"not found\"/></section></document>".into()
}

/// The first answer: welcome, then ask for the PIN and ask again with it.
pub fn pin_prompt(destination: &str, max_minutes: u64, min: u32, max: u32) -> String {
    let mut actions = vec![action("answer", "")];
    if max_minutes > 0 {
        actions.push(action(
            "sched_hangup",
            &format!("+{} normal_clearing", max_minutes * 60),
        ));
    }
    actions.extend([
        action("sleep", "500"),
        action("playback", "ivr/ivr-welcome.wav"),
        action("sleep", "200"),
        get_digits(min, max),
        action("transfer", "${pin} XML public"),
    ]);
    document(
        "Match DID and Pin for Conference",
        "match_did_and_prompt_for_pin",
        &expression(destination),
        &actions,
    )
}

/// A PIN that names no meeting: say so and ask again.
pub fn reprompt(destination: &str, min: u32, max: u32) -> String {
    document(
        "Reprompt Pin for Conference",
        "reprompt_for_pin",
        &expression(destination),
        &[
            action("playback", "conference/conf-bad-pin.wav"),
            action("sleep", "500"),
            get_digits(min, max),
            action("transfer", "${pin} XML public"),
        ],
    )
}

/// Bridges the call to the BBB server (`host`) that holds the meeting.
pub fn bridge(destination: &str, meeting_id: &str, caller: &str, pin: &str, host: &str) -> String {
    document(
        "Bridge Call to BBB Server",
        "bridge_to_bbb_server",
        &expression(destination),
        &[
            action("set", &format!("meeting_id={}", fs_escape(meeting_id))),
            action(
                "set",
                &format!("effective_caller_id_name={}", fs_escape(caller)),
            ),
            action(
                "bridge",
                &format!("sofia/external/{}@{}", fs_escape(pin), fs_escape(host)),
            ),
        ],
    )
}

/// The voice bridges to look up for a dialled PIN: the PIN, then (longer than 5 digits)
/// the PIN without its last digit, which breakout rooms append.
pub fn pin_candidates(pin: &str) -> Vec<String> {
    let mut out = vec![pin.to_string()];
    if pin.len() > 5 && pin.is_ascii() {
        out.push(pin[..pin.len() - 1].to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_is_neutralised() {
        assert_eq!(fs_escape("${system(id)}"), "\\${system(id)}");
        assert_eq!(fs_escape("a\\${x}"), "a\\\\\\${x}");
        assert_eq!(fs_escape("cost $5"), "cost $5");
        let doc = bridge(
            "5551234",
            "m${x}",
            "${system(rm -rf /)}",
            "123456789",
            "bbb.example.com",
        );
        assert!(!doc.contains("=${"), "{doc}");
        assert!(doc.contains("effective_caller_id_name=\\${system(rm -rf /)}"));
    }

    #[test]
    fn caller_ids_are_masked() {
        assert_eq!(caller_id("5554321", false, false), "555XXXX");
        assert_eq!(caller_id("1234", false, false), "XXXX");
        assert_eq!(caller_id("5554321", true, false), "Unavailable");
        assert_eq!(caller_id("Test User", false, false), "Test User");
        assert_eq!(caller_id("Test User", false, true), "Unavailable");
        assert_eq!(caller_id("", false, false), "Unavailable");
    }

    #[test]
    fn prompts_and_reprompts_use_the_same_digit_pattern() {
        let p = pin_prompt("5551234", 90, 5, 9);
        assert!(p.contains("expression=\"^5551234$\""));
        assert!(p.contains("data=\"+5400 normal_clearing\""));
        assert!(p.contains(
            "5 9 3 7000 # conference/conf-enter_conf_pin.wav conference/conf-bad-pin.wav pin \\d+"
        ));
        assert!(!pin_prompt("1", 0, 5, 9).contains("sched_hangup"));
        let r = reprompt("5551234", 5, 9);
        assert!(r.contains("conference/conf-bad-pin.wav"));
        assert!(r.contains("pin \\d+\""));
        // A hostile destination cannot break out of the regex or the attribute.
        let evil = pin_prompt("1.*\"/><x", 0, 5, 9);
        assert!(evil.contains("&quot;/&gt;&lt;x$\""), "{evil}");
        assert!(!evil.contains("\"/><x"), "{evil}");
    }

    #[test]
    fn breakout_pins_fall_back_to_the_parent() {
        assert_eq!(
            pin_candidates("1234567890"),
            vec!["1234567890", "123456789"]
        );
        assert_eq!(pin_candidates("12345"), vec!["12345"]);
    }
}
