//! The service's settings file for the command line: `/etc/default/ferrolite` (or the file
//! named by `FERROLITE_ENV_FILE`) read the way systemd's `EnvironmentFile=` reads it, so
//! that `ferrolite servers add` run by an operator writes the service's database, not a
//! new `./ferrolite.db`. Variables already set in the environment win over the file.
//!
//! The syntax is systemd's: `KEY=VALUE` lines, `#`/`;` comments, whitespace around keys and
//! unquoted values dropped, single quotes literal, double quotes with backslash escapes, a
//! trailing backslash continuing the line, no `$` expansion (`scripts/envfile.sh` is the
//! shell twin).

use std::path::{Path, PathBuf};

/// The default settings file of the systemd service.
pub const DEFAULT_PATH: &str = "/etc/default/ferrolite";

/// Parses an environment file (pure).
pub fn parse(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut logical = String::new();
    for line in text.lines() {
        if let Some(head) = line.strip_suffix('\\') {
            logical.push_str(head);
            continue;
        }
        logical.push_str(line);
        let l = std::mem::take(&mut logical);
        let l = l.trim_start();
        if l.is_empty() || l.starts_with('#') || l.starts_with(';') {
            continue;
        }
        let Some((k, v)) = l.split_once('=') else {
            continue;
        };
        let k = k.trim_end();
        let valid = !k.is_empty()
            && !k.starts_with(|c: char| c.is_ascii_digit())
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            continue;
        }
        let v = v.trim();
        let value = if v.len() >= 2 && v.starts_with('\'') && v.ends_with('\'') {
            v[1..v.len() - 1].to_string()
        } else if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') {
            let mut s = String::new();
            let mut chars = v[1..v.len() - 1].chars();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(n @ ('"' | '\\' | '$' | '`')) => s.push(n),
                        Some(n) => {
                            s.push('\\');
                            s.push(n);
                        }
                        None => s.push('\\'),
                    },
                    c => s.push(c),
                }
            }
            s
        } else {
            v.to_string()
        };
        out.push((k.to_string(), value));
    }
    out
}

/// The settings file the CLI reads, if present.
pub fn service_env_path() -> Option<PathBuf> {
    match std::env::var_os("FERROLITE_ENV_FILE") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        Some(_) => None,
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// Sets every variable of `path` that the environment does not set. Call before any thread
/// starts. An unreadable file is an error (it names the file).
pub fn load(path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the settings file {} (FERROLITE_ENV_FILE): {e}",
            path.display()
        )
    })?;
    let mut n = 0;
    for (k, v) in parse(&text) {
        if std::env::var_os(&k).is_none() {
            std::env::set_var(&k, v);
            n += 1;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn values_mean_what_systemd_gives_the_service() {
        let text = "A=plain\n# comment\n; also\nB = \"with space and $dollar\"\nC='$single \\ raw'\n  D=trail   \nE=\"esc \\\" q\"\nF=a\\\nb\n9X=no\nG\n";
        let got = parse(text);
        let want: Vec<(String, String)> = [
            ("A", "plain"),
            ("B", "with space and $dollar"),
            ("C", "$single \\ raw"),
            ("D", "trail"),
            ("E", "esc \" q"),
            ("F", "ab"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }
}
