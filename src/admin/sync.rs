//! Declarative server configuration: `servers sync`, `servers yaml`, `servers add-all`.
//!
//! The file format is Scalelite's `servers:sync` YAML:
//!
//! ```yaml
//! servers:
//!   bbb1.example.com:
//!     secret: 7c3d…              # required
//!     url: https://bbb1.example.com/bigbluebutton/api   # default: https://<id>/bigbluebutton/api
//!     enabled: true              # default true; false cordons the server
//!     state: disabled            # optional: enabled, cordoned or disabled (wins over `enabled`)
//!     load_multiplier: 1.0       # default 1.0, must be > 0
//!     tag: gpu                   # optional
//! ```
//!
//! [`parse`] validates the whole file first (unknown keys, bad ids, URLs, multipliers are
//! reported with their line) and [`plan`] is a pure function from the current pool and
//! the file to a list of [`Action`]s, so a bad file changes nothing and `--dry-run` prints
//! exactly what a real run would do. `servers yaml` writes this format back, with the
//! multiplier always present (Scalelite dumps `0.0` for a missing one, which its own sync
//! then rejects) and the `state` always present, so `servers yaml` then `servers sync`
//! gives back exactly the pool it printed (a disabled server stays disabled).

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use super::progress::{Display, Progress};
use super::{servers, AdminError, AdminResult};
use crate::app::App;
use crate::store::{Server, ServerPatch, ServerState};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub secret: Option<String>,
    pub url: Option<String>,
    pub enabled: Option<bool>,
    pub load_multiplier: Option<f64>,
    pub tag: Option<String>,
    /// Written by `servers yaml`; when given it must agree with `enabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    // Written by `servers yaml --verbose`; accepted and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbb_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub online: Option<bool>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct File {
    servers: Option<BTreeMap<String, Entry>>,
}

/// One server as the file wants it, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub id: String,
    pub url: String,
    pub secret: String,
    pub state: ServerState,
    pub load_multiplier: f64,
    pub tag: Option<String>,
}

fn line_of(text: &str, id: &str) -> usize {
    text.lines()
        .position(|l| {
            let t = l.trim_start().trim_start_matches(['"', '\'']);
            t.starts_with(id)
                && t[id.len()..]
                    .trim_start_matches(['"', '\''])
                    .starts_with(':')
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

/// Parses and validates a sync file; the first problem is reported with its line.
pub fn parse(text: &str) -> AdminResult<Vec<Desired>> {
    let file: File = serde_yaml::from_str(text)
        .map_err(|e| AdminError::Invalid(format!("the file is not valid: {e}")))?;
    let mut out = Vec::new();
    let mut urls: Vec<(String, String)> = Vec::new();
    for (id, e) in file.servers.unwrap_or_default() {
        let at = |m: String| {
            AdminError::Invalid(format!("line {}: server '{id}': {m}", line_of(text, &id)))
        };
        if id.is_empty()
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        {
            return Err(at(
                "ids may only contain letters, digits, '_', '.' and '-'".into()
            ));
        }
        let secret = e
            .secret
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| at("a secret is required".into()))?;
        let url = e
            .url
            .unwrap_or_else(|| format!("https://{id}/bigbluebutton/api"));
        let parsed = servers::validate_url(&url).map_err(|err| at(err.to_string()))?;
        let load_multiplier = e.load_multiplier.unwrap_or(1.0);
        servers::validate_multiplier(load_multiplier).map_err(|err| at(err.to_string()))?;
        let state = match (e.state.as_deref(), e.enabled) {
            (None, enabled) => {
                if enabled.unwrap_or(true) {
                    ServerState::Enabled
                } else {
                    ServerState::Cordoned
                }
            }
            (Some(text), enabled) => {
                let state = ServerState::parse(text.trim()).ok_or_else(|| {
                    at(format!(
                        "state must be enabled, cordoned or disabled, got '{text}'"
                    ))
                })?;
                if enabled.is_some_and(|en| en != (state == ServerState::Enabled)) {
                    return Err(at(format!(
                        "enabled: {} contradicts state: {text}",
                        enabled.unwrap_or_default()
                    )));
                }
                state
            }
        };
        let normal = servers::normalize_url(&parsed);
        if let Some((_, other)) = urls.iter().find(|(u, _)| *u == normal) {
            return Err(at(format!("has the same URL as server '{other}'")));
        }
        urls.push((normal, id.clone()));
        out.push(Desired {
            id,
            url,
            secret: secret.trim().to_string(),
            state,
            load_multiplier,
            tag: e
                .tag
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty()),
        });
    }
    Ok(out)
}

/// What to do with servers the file does not mention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// Leave them alone.
    Keep,
    /// Remove them if they hold no meetings, cordon them otherwise.
    Cordon,
    /// End their meetings and remove them.
    Force,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Create(Desired),
    Update {
        id: String,
        patch: Vec<String>,
        desired: Desired,
    },
    SetState {
        id: String,
        state: ServerState,
    },
    Remove {
        id: String,
    },
    Cordon {
        id: String,
    },
    EndAndRemove {
        id: String,
        meetings: usize,
    },
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Create(d) => write!(f, "[{}] create ({}, {})", d.id, d.url, d.state),
            Action::Update { id, patch, .. } => write!(f, "[{id}] update {}", patch.join(", ")),
            Action::SetState { id, state } => write!(f, "[{id}] set state {state}"),
            Action::Remove { id } => write!(f, "[{id}] remove (not in the file, no meetings)"),
            Action::Cordon { id } => {
                write!(f, "[{id}] cordon (not in the file, still has meetings)")
            }
            Action::EndAndRemove { id, meetings } => write!(
                f,
                "[{id}] end {meetings} meeting(s) and remove (not in the file)"
            ),
        }
    }
}

/// The actions that turn `current` into what `desired` describes. Pure.
pub fn plan(
    current: &[Server],
    meetings: &HashMap<String, usize>,
    desired: &[Desired],
    mode: Mode,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for d in desired {
        let want_state = d.state;
        match current.iter().find(|s| s.id == d.id) {
            None => actions.push(Action::Create(d.clone())),
            Some(s) => {
                let mut patch = Vec::new();
                if s.url != d.url {
                    patch.push(format!("url {} -> {}", s.url, d.url));
                }
                if s.secret != d.secret {
                    patch.push("secret".to_string());
                }
                if (s.load_multiplier - d.load_multiplier).abs() > f64::EPSILON {
                    patch.push(format!(
                        "load multiplier {} -> {}",
                        s.load_multiplier, d.load_multiplier
                    ));
                }
                if s.tag != d.tag {
                    patch.push(format!(
                        "tag {:?} -> {:?}",
                        s.tag.as_deref().unwrap_or(""),
                        d.tag.as_deref().unwrap_or("")
                    ));
                }
                if !patch.is_empty() {
                    actions.push(Action::Update {
                        id: d.id.clone(),
                        patch,
                        desired: d.clone(),
                    });
                }
                if s.state != want_state {
                    actions.push(Action::SetState {
                        id: d.id.clone(),
                        state: want_state,
                    });
                }
            }
        }
    }
    for s in current
        .iter()
        .filter(|s| !desired.iter().any(|d| d.id == s.id))
    {
        let n = meetings.get(&s.id).copied().unwrap_or(0);
        match mode {
            Mode::Keep => {}
            Mode::Cordon if n == 0 => actions.push(Action::Remove { id: s.id.clone() }),
            Mode::Cordon if s.state != ServerState::Cordoned => {
                actions.push(Action::Cordon { id: s.id.clone() })
            }
            Mode::Cordon => {}
            Mode::Force => actions.push(Action::EndAndRemove {
                id: s.id.clone(),
                meetings: n,
            }),
        }
    }
    actions
}

/// Applies a sync file; returns the actions taken (or that would be, with `dry_run`).
/// Progress is shown as `display` says.
pub async fn sync(
    app: &App,
    text: &str,
    mode: Mode,
    dry_run: bool,
    display: Display,
) -> AdminResult<Vec<Action>> {
    let desired = parse(text)?;
    let current = app.store.servers().await?;
    let mut counts = HashMap::new();
    for m in app.store.meetings().await? {
        *counts.entry(m.server_id).or_insert(0) += 1;
    }
    let actions = plan(&current, &counts, &desired, mode);
    if dry_run {
        return Ok(actions);
    }
    let mut progress = Progress::new("syncing", actions.len() as u64, display);
    for a in &actions {
        progress.inc();
        match a {
            Action::Create(d) => {
                let mut s = Server::new(
                    d.id.clone(),
                    d.url.clone(),
                    d.secret.clone(),
                    d.load_multiplier,
                    d.tag.clone(),
                );
                s.state = d.state;
                app.store.add_server(&s).await?;
            }
            Action::Update { id, desired: d, .. } => {
                let patch = ServerPatch {
                    url: Some(d.url.clone()),
                    secret: Some(d.secret.clone()),
                    load_multiplier: Some(d.load_multiplier),
                    tag: Some(d.tag.clone()),
                    state: None,
                };
                app.store.update_server(id, &patch).await?;
            }
            Action::SetState { id, state } => {
                servers::set_state(app, id, *state).await?;
            }
            Action::Cordon { id } => {
                servers::set_state(app, id, ServerState::Cordoned).await?;
            }
            Action::Remove { id } => {
                servers::remove(app, id, false).await?;
            }
            Action::EndAndRemove { id, .. } => {
                servers::panic(app, id, true, false).await?;
                servers::remove(app, id, false).await.map_err(|e| match e {
                    AdminError::Refused(_) => AdminError::Refused(format!("new meetings appeared on '{id}' while it was being removed; run the sync again")),
                    e => e,
                })?;
            }
        }
    }
    progress.finish();
    Ok(actions)
}

/// The pool as sync YAML (`verbose` adds state, load, version and health, which sync ignores).
pub fn to_yaml(list: &[Server], verbose: bool) -> String {
    let servers: BTreeMap<String, Entry> = list
        .iter()
        .map(|s| {
            let e = Entry {
                secret: Some(s.secret.clone()),
                url: Some(s.url.clone()),
                enabled: Some(s.state == ServerState::Enabled),
                load_multiplier: Some(s.load_multiplier),
                tag: s.tag.clone(),
                state: Some(s.state.to_string()),
                load: if verbose {
                    Some(s.load.unwrap_or(-1.0))
                } else {
                    None
                },
                bbb_version: verbose.then(|| s.bbb_version.clone()),
                online: verbose.then_some(s.online),
            };
            (s.id.clone(), e)
        })
        .collect();
    serde_yaml::to_string(&File {
        servers: Some(servers),
    })
    .unwrap_or_default()
}

#[derive(Debug, Deserialize)]
struct AddAllFile {
    servers: Vec<AddAllEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddAllEntry {
    url: String,
    secret: String,
}

/// `servers add-all` (Scalelite's deprecated `servers:addAll`): a list of `{url, secret}`,
/// every entry validated before any is added. New servers start disabled.
pub async fn add_all(app: &App, text: &str) -> AdminResult<Vec<Server>> {
    let file: AddAllFile = serde_yaml::from_str(text)
        .map_err(|e| AdminError::Invalid(format!("the file is not valid: {e}")))?;
    for (i, e) in file.servers.iter().enumerate() {
        servers::validate_url(&e.url)
            .map_err(|err| AdminError::Invalid(format!("entry {}: {err}", i + 1)))?;
        if e.secret.trim().is_empty() {
            return Err(AdminError::Invalid(format!(
                "entry {}: the secret must not be empty",
                i + 1
            )));
        }
    }
    let mut added = Vec::new();
    for e in file.servers {
        added.push(servers::add(app, &e.url, &e.secret, None, None).await?);
    }
    Ok(added)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(id: &str, state: ServerState) -> Server {
        let mut s = Server::new(
            id.into(),
            format!("https://{id}/bigbluebutton/api"),
            "sec".into(),
            1.0,
            None,
        );
        s.state = state;
        s
    }

    #[test]
    fn defaults_and_validation_report_the_line() {
        let ok = parse("servers:\n  bbb1.example.com:\n    secret: s\n  bbb2:\n    secret: t\n    enabled: false\n    load_multiplier: 2\n    tag: gpu\n").unwrap();
        assert_eq!(ok[0].url, "https://bbb1.example.com/bigbluebutton/api");
        assert_eq!(
            (ok[0].state, ok[1].state),
            (ServerState::Enabled, ServerState::Cordoned)
        );
        assert_eq!(
            (ok[1].load_multiplier, ok[1].tag.as_deref()),
            (2.0, Some("gpu"))
        );

        let e = parse("servers:\n  a:\n    secret: s\n  b:\n    url: ftp://b\n    secret: s\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("line 4: server 'b':") && e.contains("http"),
            "{e}"
        );
        let e = parse("servers:\n  a:\n    secret: s\n    colour: red\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `colour`") && e.contains("line 4"),
            "{e}"
        );
        let e = parse("servers:\n  a:\n    url: https://a/bigbluebutton/api\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 2") && e.contains("secret is required"),
            "{e}"
        );
        assert!(parse("servers:\n  'a b':\n    secret: s\n").is_err());
        let states = parse("servers:\n  a:\n    secret: s\n    state: disabled\n  b:\n    secret: s\n    enabled: false\n    state: cordoned\n").unwrap();
        assert_eq!(
            (states[0].state, states[1].state),
            (ServerState::Disabled, ServerState::Cordoned)
        );
        let e = parse("servers:\n  a:\n    secret: s\n    enabled: true\n    state: disabled\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("contradicts"), "{e}");
        assert!(parse("servers:\n  a:\n    secret: s\n    state: asleep\n").is_err());
        let e = parse("servers:\n  a:\n    secret: s\n    url: https://H/bigbluebutton/api/\n  b:\n    secret: s\n    url: https://h/bigbluebutton/api\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 5: server 'b'") && e.contains("same URL as server 'a'"),
            "{e}"
        );
        assert!(parse("servers:\n  a:\n    secret: s\n    load_multiplier: 0\n").is_err());
        assert!(parse("servers: [").is_err());
    }

    #[test]
    fn plan_creates_updates_and_handles_servers_not_in_the_file() {
        let current = vec![
            server("same", ServerState::Enabled),
            server("changed", ServerState::Enabled),
            server("busy", ServerState::Enabled),
            server("idle", ServerState::Disabled),
        ];
        let desired = parse("servers:\n  same:\n    secret: sec\n  changed:\n    secret: new\n    enabled: false\n  fresh:\n    secret: x\n").unwrap();
        let meetings = HashMap::from([("busy".to_string(), 2)]);
        let p = plan(&current, &meetings, &desired, Mode::Cordon);
        let text: Vec<String> = p.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            vec![
                "[changed] update secret",
                "[changed] set state cordoned",
                "[fresh] create (https://fresh/bigbluebutton/api, enabled)",
                "[busy] cordon (not in the file, still has meetings)",
                "[idle] remove (not in the file, no meetings)",
            ]
        );
        assert_eq!(plan(&current, &meetings, &desired, Mode::Keep).len(), 3);
        assert!(
            plan(&current, &meetings, &desired, Mode::Force).contains(&Action::EndAndRemove {
                id: "busy".into(),
                meetings: 2
            })
        );
    }

    #[test]
    fn yaml_output_syncs_back_to_no_change() {
        let mut a = server("a", ServerState::Enabled);
        a.tag = Some("gpu".into());
        a.load_multiplier = 2.5;
        let b = server("b", ServerState::Cordoned);
        let c = server("c", ServerState::Disabled);
        let list = vec![a, b, c];
        for verbose in [false, true] {
            let desired = parse(&to_yaml(&list, verbose)).unwrap();
            assert!(
                plan(&list, &HashMap::new(), &desired, Mode::Cordon).is_empty(),
                "verbose={verbose}"
            );
        }
    }
}
