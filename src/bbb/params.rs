//! API parameters: parsing, encoding, and the create/join rewrite policy.
//!
//! Parameters keep their order (BBB signs the order it receives, and operators read the
//! forwarded URLs). A repeated key keeps its first value, as bbb-web reads it. Invalid
//! percent-encoding or UTF-8 never fails a request: bytes are decoded lossily and the
//! checksum (computed over the raw query) decides whether the request is genuine.

use std::borrow::Cow;

/// An ordered parameter list with unique keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn new() -> Params {
        Params(Vec::new())
    }

    /// Parses `application/x-www-form-urlencoded` bytes (a query string or a form body).
    pub fn parse(raw: &[u8]) -> Params {
        let mut p = Params::new();
        for (k, v) in form_urlencoded::parse(raw) {
            let k = sanitize(k);
            if k.is_empty() || p.get(&k).is_some() {
                continue;
            }
            p.0.push((k.into_owned(), sanitize(v).into_owned()));
        }
        p
    }

    /// The first value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` when present and not blank.
    pub fn non_empty(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.trim().is_empty())
    }

    /// Sets `key`, keeping the position of an existing entry.
    pub fn set(&mut self, key: &str, value: impl Into<String>) {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == key) {
            Some(entry) => entry.1 = value,
            None => self.0.push((key.to_string(), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }

    /// The `(key, value)` entries whose key equals `key` ignoring ASCII case, in order.
    /// BBB lower-cases `meta_` keys, so every spelling of one must be treated alike.
    pub fn matching(&self, key: &str) -> Vec<(String, String)> {
        self.0
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(key))
            .cloned()
            .collect()
    }

    /// Removes every entry whose key equals `key` ignoring ASCII case; returns their values
    /// in order.
    pub fn remove_ignore_case(&mut self, key: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.0.retain(|(k, v)| {
            let hit = k.eq_ignore_ascii_case(key);
            if hit {
                out.push(v.clone());
            }
            !hit
        });
        out
    }

    /// Adds the entries of `other` whose keys are not present yet (query parameters win
    /// over form-body parameters).
    pub fn merge_missing(&mut self, other: Params) {
        for (k, v) in other.0 {
            if self.get(&k).is_none() {
                self.0.push((k, v));
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|(k, _)| k.as_str())
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Encodes like Ruby's `URI.encode_www_form`: space as `+`, `*-._` and alphanumerics as
    /// they are, everything else `%XX`.
    pub fn encode(&self) -> String {
        let mut s = form_urlencoded::Serializer::new(String::new());
        for (k, v) in &self.0 {
            s.append_pair(k, v);
        }
        s.finish()
    }

    /// Keeps only the listed keys, in the order they appear here.
    pub fn only(&self, keys: &[&str]) -> Params {
        Params(
            self.0
                .iter()
                .filter(|(k, _)| keys.contains(&k.as_str()))
                .cloned()
                .collect(),
        )
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Params {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(iter: I) -> Self {
        let mut p = Params::new();
        for (k, v) in iter {
            p.set(&k.into(), v);
        }
        p
    }
}

/// Strips control characters and surrounding blanks, as bbb-web does before validating.
fn sanitize(s: Cow<'_, str>) -> Cow<'_, str> {
    if s.chars().any(char::is_control) || s.trim().len() != s.len() {
        Cow::Owned(
            s.chars()
                .filter(|c| !c.is_control())
                .collect::<String>()
                .trim()
                .to_string(),
        )
    } else {
        s
    }
}

/// The layers Scalelite combines for `create` and `join`, lowest precedence first:
/// operator defaults, tenant defaults, the request, operator overrides, tenant overrides.
/// Excluded keys are dropped from the request only; an override keeps the position of the
/// key it replaces.
pub struct Policy<'a> {
    pub defaults: &'a [(String, String)],
    pub tenant_defaults: &'a [(String, String)],
    pub overrides: &'a [(String, String)],
    pub tenant_overrides: &'a [(String, String)],
    pub exclude: &'a [String],
}

impl Policy<'_> {
    pub fn apply(&self, request: &Params) -> Params {
        let mut out = Params::new();
        let layer = |out: &mut Params, list: &[(String, String)]| {
            for (k, v) in list.iter().filter(|(k, _)| k != "meta_server-tag") {
                out.set(k, v.clone());
            }
        };
        layer(&mut out, self.defaults);
        layer(&mut out, self.tenant_defaults);
        for (k, v) in request.iter() {
            if k != "checksum" && !self.exclude.iter().any(|e| e == k) {
                out.set(k, v);
            }
        }
        layer(&mut out, self.overrides);
        layer(&mut out, self.tenant_overrides);
        out
    }
}

/// `MAX_MEETING_DURATION`: a missing, zero, unreadable or longer duration becomes the
/// maximum; shorter ones pass.
pub fn cap_duration(params: &mut Params, max_minutes: u64) {
    if max_minutes == 0 {
        return;
    }
    let keep = params
        .get("duration")
        .and_then(|d| d.trim().parse::<i64>().ok())
        .is_some_and(|d| d != 0 && d <= max_minutes as i64);
    if !keep {
        params.set("duration", max_minutes.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Params {
        Params::parse(s.as_bytes())
    }

    fn list(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn parsing_keeps_order_and_the_first_of_repeated_keys() {
        let q = p("b=2&a=1&b=3&c=x+y&d=%C3%B6");
        assert_eq!(q.encode(), "b=2&a=1&c=x+y&d=%C3%B6");
        assert_eq!(q.get("b"), Some("2"));
        assert_eq!(q.get("c"), Some("x y"));
    }

    #[test]
    fn malformed_input_never_fails() {
        let q = p("a=%zz&%ff=1&=novalue&&b&c=%00x");
        assert_eq!(q.get("a"), Some("%zz"));
        assert_eq!(q.get("b"), Some(""));
        assert_eq!(q.get("c"), Some("x"));
        assert!(q.get("\u{fffd}").is_some());
    }

    #[test]
    fn encoding_matches_ruby_encode_www_form() {
        let q: Params = [("k", "a b*-._~!'()/ö")].into_iter().collect();
        assert_eq!(q.encode(), "k=a+b*-._%7E%21%27%28%29%2F%C3%B6");
    }

    #[test]
    fn policy_layers_in_scalelite_order() {
        let defaults = list(&[
            ("param1", "not-param1"),
            ("param2", "param2"),
            ("meta_server-tag", "x"),
        ]);
        let overrides = list(&[("forced", "yes")]);
        let tenant_overrides = list(&[("param2", "tenant")]);
        let exclude = vec!["test2".to_string()];
        let policy = Policy {
            defaults: &defaults,
            tenant_defaults: &[],
            overrides: &overrides,
            tenant_overrides: &tenant_overrides,
            exclude: &exclude,
        };
        let out = policy.apply(&p(
            "meetingID=m&param1=param1&test2=&forced=no&checksum=abc",
        ));
        assert_eq!(
            out.encode(),
            "param1=param1&param2=tenant&meetingID=m&forced=yes"
        );
    }

    #[test]
    fn duration_is_capped_as_scalelite_does() {
        for (given, want) in [
            (None, "3600"),
            (Some("5000"), "3600"),
            (Some("0"), "3600"),
            (Some("1200"), "1200"),
            (Some("x"), "3600"),
        ] {
            let mut q = Params::new();
            if let Some(g) = given {
                q.set("duration", g);
            }
            cap_duration(&mut q, 3600);
            assert_eq!(q.get("duration"), Some(want), "{given:?}");
        }
        let mut q = Params::new();
        cap_duration(&mut q, 0);
        assert!(q.get("duration").is_none());
    }
}
