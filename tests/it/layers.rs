//! Layers point down: a module of `src/` may use `crate::X` only for an X of a strictly lower
//! rank (or itself). This reads every `crate::` path (and every `super::` that climbs to the
//! crate root) in `src/` and fails on an import from a higher or equal-rank sibling; every top
//! module must have a rank, and the README's architecture table must say the same.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The ranks (the README's architecture section lists them, one line per module).
const RANKS: &[(&str, u8)] = &[
    ("finding", 0),
    ("secret", 0),
    ("clock", 0),
    ("redact", 0),
    ("files", 0),
    ("airwallex", 1),
    ("rules", 1),
    ("config", 2),
    ("store", 2),
    ("scan", 3),
    ("usage", 3),
    ("inventory", 4),
    ("privilege", 5),
    ("proxy", 6),
    ("watch", 6),
    ("alert", 6),
    ("report", 7),
    ("rulebook", 7),
    ("daemon", 8),
    ("demo", 8),
    ("cli", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file: `src/scan/job.rs` is `scan::job`, `src/scan/mod.rs` is `scan`.
fn module_path(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|s| s.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap();
    let stem = last.trim_end_matches(".rs");
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    parts
}

/// The top-level modules a file's code names: `crate::x`, `crate::{x, y}`, and `super::`
/// chains that reach the crate root. Line comments are left out.
fn named_modules(text: &str, depth: usize) -> Vec<(usize, String)> {
    let word = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for item in inner.split(',') {
                    let w = word(item.trim());
                    if !w.is_empty() {
                        out.push((i + 1, w));
                    }
                }
            } else {
                out.push((i + 1, word(after)));
            }
            rest = after;
        }
        // `super::super::x` from a file `depth` modules deep names the top module `x`.
        let mut rest = code;
        while let Some(at) = rest.find("super::") {
            let mut chain = &rest[at..];
            let mut supers = 0;
            while let Some(r) = chain.strip_prefix("super::") {
                supers += 1;
                chain = r;
            }
            if supers >= depth && depth > 0 {
                out.push((i + 1, word(chain)));
            }
            rest = &rest[at + "super::".len() * supers..];
        }
    }
    out
}

#[test]
fn no_module_imports_from_a_layer_at_or_above_its_own() {
    let ranks: BTreeMap<&str, u8> = RANKS.iter().copied().collect();
    let root = src();
    let mut files = Vec::new();
    rust_files(&root, &mut files);
    files.sort();
    let mut problems = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&root).unwrap();
        let path = module_path(rel);
        let top = path[0].as_str();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(&own) = ranks.get(top) else {
            problems.push(format!(
                "src/{}: module `{top}` has no rank: add it to RANKS here and to the README's \
                 architecture section",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, name) in named_modules(&text, path.len()) {
            if name == top || name.is_empty() {
                continue;
            }
            match ranks.get(name.as_str()) {
                Some(&r) if r < own => {}
                Some(&r) => problems.push(format!(
                    "src/{}:{line}: `{top}` (rank {own}) uses crate::{name} (rank {r}): layers \
                     point down; move what both need below them",
                    rel.display()
                )),
                None => problems.push(format!(
                    "src/{}:{line}: crate::{name} is not a module with a rank",
                    rel.display()
                )),
            }
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
}

#[test]
fn every_top_module_has_a_rank_and_the_readme_lists_the_same() {
    let root = src();
    let lib = std::fs::read_to_string(root.join("lib.rs")).unwrap();
    let ranks: BTreeMap<&str, u8> = RANKS.iter().copied().collect();
    for line in lib.lines() {
        if let Some(m) = line.trim().strip_prefix("pub mod ") {
            let m = m.trim_end_matches(';');
            assert!(ranks.contains_key(m), "module {m} has no rank");
        }
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let section = readme
        .split("## Architecture")
        .nth(1)
        .expect("README has an Architecture section");
    let mut listed = BTreeMap::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        // | rank | `module` | what it is |
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 {
            continue;
        }
        let (Ok(rank), Some(module)) = (
            cells[1].parse::<u8>(),
            cells[2].strip_prefix('`').and_then(|c| c.strip_suffix('`')),
        ) else {
            continue;
        };
        listed.insert(module.to_string(), rank);
    }
    let expected: BTreeMap<String, u8> = RANKS.iter().map(|(m, r)| (m.to_string(), *r)).collect();
    assert_eq!(listed, expected, "README architecture table vs RANKS");
}

#[test]
fn the_checker_sees_upward_imports() {
    let text = "use crate::finding::Finding;\nuse crate::{report, scan::Matcher};\n\
                // crate::cli in a comment\nlet x = super::super::cli::run();\n";
    let names: Vec<String> = named_modules(text, 2).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["finding", "report", "scan", "cli"]);
}

/// What `src/cli/` may name from the store and the Airwallex module: opening the database (the
/// one the run uses), the planner the proxy is handed, the findings listing job, and the
/// simulator `awxguard sandbox` serves. Anything else there would be a store query or an
/// Airwallex call in the command line.
const CLI_MAY_NAME: &[&str] = &[
    "crate::store::Store",
    "crate::store::open_with",
    "crate::store::OpenOptions",
    "crate::store::default_path",
    "crate::store::AlertPlanner",
    "crate::store::acknowledge",
    // `store migrate`'s job.
    "crate::store::migrate",
    // `findings list`'s job (issue 16 turns it into `store::findings::listing`).
    "crate::store::findings::select",
    "crate::store::findings::listing",
    "crate::airwallex::simulator",
];

/// Problems in one cli file: a store or Airwallex path not in `CLI_MAY_NAME`, SQL, an HTTP
/// client, a method called on a store other than handing it on.
fn cli_problems(name: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    // A method chain broken over lines (`store\n    .acknowledge(`) is read as one line.
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let code = line.trim();
        match lines.last_mut() {
            Some((_, prev)) if code.starts_with('.') && !prev.starts_with("//") => {
                prev.push_str(code)
            }
            _ => lines.push((i, code.to_string())),
        }
    }
    for (i, code) in &lines {
        let (i, code) = (*i, code.as_str());
        if code.starts_with("//") {
            continue;
        }
        for prefix in ["crate::store::", "crate::airwallex::"] {
            let mut rest = code;
            while let Some(at) = rest.find(prefix) {
                let path: String = rest[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !CLI_MAY_NAME.iter().any(|ok| path.starts_with(ok)) {
                    out.push(format!("{name}:{}: names `{path}`", i + 1));
                }
                rest = &rest[at + prefix.len()..];
            }
        }
        for banned in [
            "rusqlite",
            "reqwest",
            "hyper::",
            "Client::new",
            "Logins",
            "SELECT ",
        ] {
            if code.contains(banned) {
                out.push(format!("{name}:{}: `{banned}`", i + 1));
            }
        }
        let mut rest = code;
        while let Some(at) = rest.find("store.") {
            let method: String = rest[at + "store.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let before = rest[..at].chars().last();
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || "_:.".contains(c))
                && !["as_ref", "clone"].contains(&method.as_str())
            {
                out.push(format!("{name}:{}: calls the store's `{method}`", i + 1));
            }
            rest = &rest[at + "store.".len()..];
        }
    }
    out
}

/// Issue 8: `src/cli/` is wiring only (arguments into requests, jobs called, reports emitted):
/// no store query and no Airwallex call in it.
#[test]
fn cli_is_wiring_only() {
    let cli = src().join("cli");
    let mut files = Vec::new();
    rust_files(&cli, &mut files);
    files.sort();
    assert!(files.len() > 5);
    let mut problems = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let name = f.strip_prefix(src()).unwrap().display().to_string();
        problems.extend(cli_problems(&name, &text));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_cli_checker_sees_store_queries_and_airwallex_calls() {
    let bad = "let id = store\n    .acknowledge(&id, &r, None, None, now)?;\n\
               let c = crate::airwallex::client::Client::new(&cfg)?;\n\
               let n: i64 = conn.query_row(\"SELECT count(*) FROM findings\", [], |r| r.get(0))?;\n";
    let p = cli_problems("cli/x.rs", bad);
    assert_eq!(p.len(), 4, "{p:#?}");
    let fine = "let store = ctx.open_store()?;\nlet o = job(store.clone(), store.as_ref());\n\
                use crate::store::acknowledge::{self, AckRequest};\n";
    assert!(cli_problems("cli/x.rs", fine).is_empty());
}
