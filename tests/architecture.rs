//! The layer rules of ARCHITECTURE.md, checked against the code.
//!
//! This reads the `use` lines and paths of every file under `src/` (as text: no compiler
//! involved) and builds the graph of which file imports which. Two rules must hold:
//!
//! 1. A file never imports a file of a higher layer (the table in [`LAYERS`], from the
//!    ground up). In particular nothing below `api/` imports `api/`.
//! 2. No circle of imports between files. A module declaring its submodules (`mod x;`) or
//!    re-exporting their items (`pub use x::Y;`) is not an import of them.
//!
//! When this fails, the message names the file, the line and the layer rule: move the
//! shared item down to where both sides can see it, rather than adding an exception here.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// The layers, from the ground up. A file belongs to the first entry whose prefix its path
/// (relative to `src/`) starts with; entries are searched longest prefix first.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "primitives",
        &[
            "bbb/",
            "tenant.rs",
            "shutdown.rs",
            "blocking.rs",
            "envfile.rs",
        ],
    ),
    ("config", &["config.rs"]),
    ("http", &["http/"]),
    ("store", &["store/"]),
    ("decisions", &["balancer.rs", "dialin.rs", "autoscale.rs"]),
    (
        "domain",
        &[
            "app.rs",
            "adopt.rs",
            "metrics.rs",
            "lease.rs",
            "lrs.rs",
            "recordings/",
            "playback/",
            "callbacks.rs",
            "admin/",
            "scalelite/",
            "usage",
        ],
    ),
    ("roles", &["poller.rs", "autoscaler.rs", "roles/"]),
    ("api", &["api/"]),
    (
        "entry points",
        &[
            "main.rs",
            "lib.rs",
            "admin/cli.rs",
            "admin/views.rs",
            "bin/",
            "fake/",
            "serve.rs",
        ],
    ),
];

fn layer_of(rel: &str) -> (usize, &'static str) {
    let mut best: Option<(usize, usize, &'static str)> = None;
    for (i, (name, prefixes)) in LAYERS.iter().enumerate() {
        for p in *prefixes {
            if rel.starts_with(p) && best.is_none_or(|(_, len, _)| p.len() > len) {
                best = Some((i, p.len(), name));
            }
        }
    }
    match best {
        Some((i, _, name)) => (i, name),
        None => panic!(
            "src/{rel} is in no layer: add it to LAYERS in tests/architecture.rs \
             and to the layer table in ARCHITECTURE.md"
        ),
    }
}

struct Edge {
    to: String,
    line: usize,
    text: String,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file: `api/mod.rs` → `["api"]`, `api/meetings.rs` → `["api", "meetings"]`.
fn module_of(rel: &str) -> Vec<String> {
    let trimmed = rel.trim_end_matches(".rs");
    let mut parts: Vec<String> = trimmed.split('/').map(str::to_string).collect();
    if parts
        .last()
        .is_some_and(|p| p == "mod" || p == "lib" || p == "main")
    {
        parts.pop();
    }
    parts
}

/// The file that defines the longest prefix of a module path.
fn file_for(path: &[String], files: &BTreeSet<String>) -> Option<String> {
    for n in (1..=path.len()).rev() {
        let joined = path[..n].join("/");
        for candidate in [format!("{joined}.rs"), format!("{joined}/mod.rs")] {
            if files.contains(&candidate) {
                return Some(candidate);
            }
        }
    }
    None
}

/// Removes comments and string literals, keeping line breaks, so that paths inside them
/// are not read as imports.
fn strip_comments_and_strings(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i < b.len() && !(b[i] == b'*' && b.get(i + 1) == Some(&b'/')) {
                if b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && matches!(b.get(i + 1), Some(b'"') | Some(b'#')) {
            // Raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(b[i] as char);
                i += 1;
                continue;
            }
            j += 1;
            loop {
                if j >= b.len() {
                    break;
                }
                if b[j] == b'"' && (0..hashes).all(|k| b.get(j + 1 + k) == Some(&b'#')) {
                    j += 1 + hashes;
                    break;
                }
                if b[j] == b'\n' {
                    out.push('\n');
                }
                j += 1;
            }
            out.push_str("\"\"");
            i = j;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                if i < b.len() && b[i] == b'\n' {
                    out.push('\n');
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal such as '"'.
            out.push_str("' '");
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let ch = src[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// Removes `#[cfg(test)] mod … { … }` blocks: unit tests may reach anything (and their
/// `use super::*` names their own file, not the parent module).
fn strip_test_modules(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let after = &rest[at..];
        let Some(open) = after.find('{') else {
            out.push_str(after);
            return out;
        };
        let header = &after[..open];
        if !header.contains("mod ") || header.contains(';') {
            out.push_str("#[cfg(test)]");
            rest = &after["#[cfg(test)]".len()..];
            continue;
        }
        let mut depth = 0;
        let mut end = after.len();
        for (i, c) in after[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + i + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        out.extend(after[..end].chars().filter(|&c| c == '\n'));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path that starts at `crate::`, `super::` or `self::`, expanded over `{…}` groups,
/// with the line it stands on and whether it is a `pub use` (a re-export).
fn paths_in(src: &str) -> Vec<(Vec<String>, usize, bool)> {
    let mut found = Vec::new();
    let chars: Vec<char> = src.chars().collect();
    let mut line = 1;
    let mut i = 0;
    // The start of the statement we are in, to tell `pub use` from other uses.
    let mut stmt_start = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\n' {
            line += 1;
        }
        if c == ';' || c == '{' || c == '}' {
            stmt_start = i + 1;
        }
        let at_word_start = i == 0 || !is_ident(chars[i - 1]) && chars[i - 1] != ':';
        if at_word_start {
            for root in ["crate::", "super::", "self::"] {
                let r: Vec<char> = root.chars().collect();
                if chars[i..].starts_with(&r) {
                    let stmt: String = chars[stmt_start..i].iter().collect();
                    let reexport = stmt.trim_start().starts_with("pub use")
                        || stmt.trim_start().starts_with("pub(crate) use");
                    let root_name = root.trim_end_matches("::").to_string();
                    let mut j = i + r.len();
                    let mut out = Vec::new();
                    expand(&chars, &mut j, vec![root_name], &mut out);
                    for p in out {
                        found.push((p, line, reexport));
                    }
                    break;
                }
            }
        }
        i += 1;
    }
    found
}

/// Reads `a::b::{c, d::e}` from `chars[*j..]`, appending each full path to `out`.
fn expand(chars: &[char], j: &mut usize, prefix: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = prefix;
    loop {
        while *j < chars.len() && chars[*j].is_whitespace() {
            *j += 1;
        }
        if *j < chars.len() && chars[*j] == '{' {
            *j += 1;
            loop {
                expand(chars, j, path.clone(), out);
                while *j < chars.len() && chars[*j].is_whitespace() {
                    *j += 1;
                }
                if *j < chars.len() && chars[*j] == ',' {
                    *j += 1;
                    continue;
                }
                if *j < chars.len() && chars[*j] == '}' {
                    *j += 1;
                }
                return;
            }
        }
        let start = *j;
        while *j < chars.len() && is_ident(chars[*j]) {
            *j += 1;
        }
        if *j == start {
            out.push(path);
            return;
        }
        path.push(chars[start..*j].iter().collect());
        if chars[*j..].starts_with(&[':', ':']) {
            *j += 2;
        } else {
            out.push(path);
            return;
        }
    }
}

/// The graph: file → the files it imports, with where.
fn graph() -> (BTreeSet<String>, BTreeMap<String, Vec<Edge>>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut paths = Vec::new();
    rust_files(&src, &mut paths);
    let files: BTreeSet<String> = paths
        .iter()
        .map(|p| {
            p.strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    let mut edges: BTreeMap<String, Vec<Edge>> = BTreeMap::new();
    for rel in &files {
        let text = strip_test_modules(&strip_comments_and_strings(
            &fs::read_to_string(src.join(rel)).unwrap(),
        ));
        let lines: Vec<&str> = text.lines().collect();
        let me = module_of(rel);
        let is_binary = rel.starts_with("bin/") || rel == "main.rs";
        // Submodules this file declares: a plain `child::x` path inside it names one too.
        let children: BTreeSet<String> = lines
            .iter()
            .filter_map(|l| {
                let l = l.trim();
                let rest = l
                    .strip_prefix("pub mod ")
                    .or_else(|| l.strip_prefix("mod "))
                    .or_else(|| l.strip_prefix("pub(crate) mod "))?;
                rest.strip_suffix(';').map(|n| n.trim().to_string())
            })
            .collect();
        let mut found = paths_in(&text);
        // `child::item` (without `self::`) inside a module that declares `child`.
        for (n, l) in lines.iter().enumerate() {
            for child in &children {
                let pat = format!("{child}::");
                let mut from = 0;
                while let Some(pos) = l[from..].find(&pat) {
                    let at = from + pos;
                    let before = l[..at].chars().last();
                    if before.is_none_or(|c| !is_ident(c) && c != ':') {
                        let reexport = l.trim_start().starts_with("pub use");
                        let mut j = 0;
                        let chars: Vec<char> = l[at..].chars().collect();
                        let mut out = Vec::new();
                        expand(&chars, &mut j, vec!["self".to_string()], &mut out);
                        for p in out {
                            found.push((p, n + 1, reexport));
                        }
                    }
                    from = at + pat.len();
                }
            }
        }
        for (path, line, reexport) in found {
            let absolute: Vec<String> = match path[0].as_str() {
                "crate" => path[1..].to_vec(),
                "self" => me
                    .iter()
                    .cloned()
                    .chain(path[1..].iter().cloned())
                    .collect(),
                _ => {
                    // super::…, possibly repeated.
                    let mut base = me.clone();
                    let mut rest = &path[..];
                    while rest.first().is_some_and(|p| p == "super") {
                        base.pop();
                        rest = &rest[1..];
                    }
                    base.into_iter().chain(rest.iter().cloned()).collect()
                }
            };
            // A binary's `crate::` is the binary itself; its library is `ferrolite::`.
            if is_binary {
                continue;
            }
            let Some(to) = file_for(&absolute, &files) else {
                continue;
            };
            if &to == rel {
                continue;
            }
            let declares_child = module_of(&to).starts_with(&me) && module_of(&to).len() > me.len();
            if reexport && declares_child {
                continue;
            }
            edges.entry(rel.clone()).or_default().push(Edge {
                to,
                line,
                text: lines.get(line - 1).unwrap_or(&"").trim().to_string(),
            });
        }
    }
    (files, edges)
}

#[test]
fn no_file_imports_a_higher_layer() {
    let (_, edges) = graph();
    let mut broken = Vec::new();
    for (from, list) in &edges {
        let (lf, nf) = layer_of(from);
        for e in list {
            let (lt, nt) = layer_of(&e.to);
            if lt > lf {
                broken.push(format!(
                    "src/{from}:{} ({nf}) imports src/{} ({nt}): {}",
                    e.line, e.to, e.text
                ));
            }
        }
    }
    broken.sort();
    broken.dedup();
    assert!(
        broken.is_empty(),
        "imports that run up the layers (see ARCHITECTURE.md):\n{}",
        broken.join("\n")
    );
}

#[test]
fn no_circle_of_imports_between_files() {
    let (files, edges) = graph();
    let next: BTreeMap<&str, BTreeSet<&str>> = files
        .iter()
        .map(|f| {
            let to = edges
                .get(f)
                .map(|l| l.iter().map(|e| e.to.as_str()).collect())
                .unwrap_or_default();
            (f.as_str(), to)
        })
        .collect();
    // Tarjan's strongly connected components, iteratively small enough to recurse.
    struct State<'a> {
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        counter: usize,
        circles: Vec<Vec<&'a str>>,
    }
    fn visit<'a>(v: &'a str, next: &BTreeMap<&'a str, BTreeSet<&'a str>>, s: &mut State<'a>) {
        s.index.insert(v, s.counter);
        s.low.insert(v, s.counter);
        s.counter += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for &w in &next[v] {
            if !s.index.contains_key(w) {
                visit(w, next, s);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = s.stack.pop().unwrap();
                s.on_stack.remove(w);
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                s.circles.push(comp);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        counter: 0,
        circles: Vec::new(),
    };
    for f in next.keys() {
        if !s.index.contains_key(f) {
            visit(f, &next, &mut s);
        }
    }
    let described: Vec<String> = s
        .circles
        .iter()
        .map(|comp| {
            let members: BTreeSet<&str> = comp.iter().copied().collect();
            let mut why = Vec::new();
            for f in comp {
                for e in edges.get(*f).into_iter().flatten() {
                    if members.contains(e.to.as_str()) {
                        why.push(format!("  src/{f}:{} -> src/{}: {}", e.line, e.to, e.text));
                    }
                }
            }
            why.dedup();
            format!("circle: {}\n{}", comp.join(", "), why.join("\n"))
        })
        .collect();
    assert!(
        described.is_empty(),
        "files that import each other in a circle:\n{}",
        described.join("\n")
    );
}

/// The scanner itself: paths in groups, `super::`, re-exports, comments and strings.
#[test]
fn the_scanner_reads_groups_super_and_skips_comments() {
    let src = strip_comments_and_strings(
        "use crate::{a::B, c::{d, e::F}};\n// crate::nope\nlet s = \"crate::nope\";\npub use self::x::Y;\nsuper::z::w();\n",
    );
    let found: Vec<(String, usize, bool)> = paths_in(&src)
        .into_iter()
        .map(|(p, l, r)| (p.join("::"), l, r))
        .collect();
    assert_eq!(
        found,
        vec![
            ("crate::a::B".to_string(), 1, false),
            ("crate::c::d".to_string(), 1, false),
            ("crate::c::e::F".to_string(), 1, false),
            ("self::x::Y".to_string(), 4, true),
            ("super::z::w".to_string(), 5, false),
        ]
    );
    assert_eq!(layer_of("api/meetings.rs").1, "api");
    assert_eq!(layer_of("admin/cli.rs").1, "entry points");
    assert_eq!(layer_of("admin/servers.rs").1, "domain");
    assert_eq!(layer_of("bbb/checksum.rs").1, "primitives");
}
