//! The house has one-way layers: this test holds the list and fails when a
//! crate or a module reaches upward.
//!
//! [`LAYERS`] names, lowest first, the workspace's crates and then the
//! modules of the daemon crate (`certkeeper`). A line may use what is on the
//! lines before it, and itself; never a line after it, nor a peer on its own
//! line (peers such as `alerts renewal` stay independent of each other).
//! Checked here:
//! - every `certkeeper-*` dependency in a crate's `Cargo.toml` (dev ones too)
//!   and every `certkeeper_*::` path in its sources points to a lower crate;
//! - the engine crates below the store link no database or web server
//!   (`surrealdb`, `axum`), so their tests build without them;
//! - every `crate::X` path in the daemon crate's modules (in `use crate::{..}`
//!   lists too) names a module on an earlier line, or the module itself;
//! - `docs/ARCHITECTURE.md` quotes [`LAYERS`] exactly, so the picture a
//!   newcomer reads is the one enforced.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers, lowest first: `crate NAME...` lines, then `module NAME...`
/// lines for the daemon crate's top-level modules (`lib.rs` and `main.rs`
/// are the crate's roots and may name any module).
const LAYERS: &str = "\
crate certkeeper-base
crate certkeeper-connectors certkeeper-integrations
crate certkeeper-model
crate certkeeper-discovery
crate certkeeper-store
crate certkeeper
module systemd
module deploy
module config
module alerts renewal
module reports
module scheduler
module api
module portal
module daemon
module cli
";

/// Where each crate lives, from the workspace root.
const CRATE_DIRS: &[(&str, &str)] = &[
    ("certkeeper-base", "connectors/base"),
    ("certkeeper-connectors", "connectors"),
    ("certkeeper-integrations", "integrations"),
    ("certkeeper-model", "daemon/model"),
    ("certkeeper-discovery", "daemon/discovery"),
    ("certkeeper-store", "daemon/store"),
    ("certkeeper", "daemon"),
];

/// Crates below the store: they must build without a database or web server.
const ENGINE_CRATES: &[&str] = &[
    "certkeeper-base",
    "certkeeper-connectors",
    "certkeeper-integrations",
    "certkeeper-model",
    "certkeeper-discovery",
];

/// Dependencies the engine crates may not have.
const HEAVY: &[&str] = &[
    "surrealdb",
    "surrealdb-cnf",
    "surrealdb-engine-local",
    "axum",
];

/// The parsed list: `(kind, names)` per line, lowest first.
fn layers() -> Vec<(&'static str, Vec<&'static str>)> {
    LAYERS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let kind = words.next().unwrap_or_default();
            (kind, words.collect())
        })
        .collect()
}

/// The layer index of `name` among lines of `kind`.
fn rank(kind: &str, name: &str) -> Option<usize> {
    layers()
        .iter()
        .filter(|(k, _)| *k == kind)
        .position(|(_, names)| names.contains(&name))
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

/// Source text without comments (doc comments mention paths in prose).
fn code_of(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_block = false;
    for line in text.lines() {
        let mut line = line;
        if in_block {
            match line.find("*/") {
                Some(end) => {
                    line = &line[end + 2..];
                    in_block = false;
                }
                None => continue,
            }
        }
        if let Some(start) = line.find("/*") {
            in_block = !line[start..].contains("*/");
            line = &line[..start];
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The top-level module names a piece of code reaches through `crate::`:
/// `crate::api::x`, and each item of `use crate::{api, config::Y}`.
fn crate_paths(code: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().next_back();
        rest = &rest[i + "crate::".len()..];
        // `certkeeper_crate::` or `$crate::` are not this crate.
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        if let Some(list) = rest.strip_prefix('{') {
            let mut depth = 0usize;
            let mut item = String::new();
            for c in list.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(first_segment(&item));
                        item.clear();
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.insert(first_segment(&item));
        } else {
            out.insert(first_segment(rest));
        }
    }
    out.remove("");
    out
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The daemon crate's module a file belongs to (`api/mod.rs` → `api`,
/// `daemon.rs` → `daemon`), or `None` for the crate roots and binaries.
fn module_of(relative: &Path) -> Option<String> {
    let first = relative.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    match name {
        "lib" | "main" | "bin" => None,
        _ => Some(name.to_owned()),
    }
}

/// The upward or sideways imports of one daemon module's code, as messages.
fn module_violations(module: &str, code: &str) -> Vec<String> {
    let Some(own) = rank("module", module) else {
        return vec![format!(
            "module `{module}` is on no line of LAYERS: add it where it belongs"
        )];
    };
    crate_paths(code)
        .into_iter()
        .filter(|used| used != module && used != "self" && used != "super")
        .filter_map(|used| match rank("module", &used) {
            Some(r) if r < own => None,
            Some(r) if r == own => Some(format!(
                "`{module}` uses its peer `{used}`: peers on one line stay independent"
            )),
            Some(_) => Some(format!("`{module}` uses `{used}`, a layer above it")),
            // Macros and the like (`crate::` paths to items in lib.rs).
            None => Some(format!(
                "`{module}` uses `crate::{used}`, which is on no line of LAYERS"
            )),
        })
        .collect()
}

/// `certkeeper-*` crates named in a `Cargo.toml`'s dependency tables.
fn manifest_deps(manifest: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_deps = false;
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_deps = line.ends_with("dependencies]");
            continue;
        }
        if in_deps && let Some((name, _)) = line.split_once(['=', '.']) {
            let name = name.trim();
            if !name.is_empty() && !name.starts_with('#') {
                out.insert(name.to_owned());
            }
        }
    }
    out
}

#[test]
fn crates_depend_only_on_lower_crates() {
    let mut problems = Vec::new();
    for (name, dir) in CRATE_DIRS {
        let own = rank("crate", name).unwrap_or(usize::MAX);
        let dir = root().join(dir);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml"))
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let deps = manifest_deps(&manifest);
        for dep in deps.iter().filter(|d| d.starts_with("certkeeper")) {
            match rank("crate", dep) {
                Some(r) if r < own => {}
                _ => problems.push(format!("{name} depends on {dep}, which is not below it")),
            }
        }
        if ENGINE_CRATES.contains(name) {
            for heavy in HEAVY.iter().filter(|h| deps.contains(**h)) {
                problems.push(format!(
                    "{name} depends on {heavy}; it must build without it"
                ));
            }
        }
        // Sources name only crates below (a path through a dev-dependency
        // or a re-export would otherwise go unseen).
        for file in rust_files(&dir.join("src")) {
            let code = code_of(&std::fs::read_to_string(&file).unwrap_or_default());
            for (other, _) in CRATE_DIRS.iter().filter(|(o, _)| o != name) {
                let path = format!("{}::", other.replace('-', "_"));
                let used = code.match_indices(&path).any(|(i, _)| {
                    !code[..i]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_alphanumeric() || c == '_')
                });
                if used && rank("crate", other) >= Some(own) {
                    problems.push(format!(
                        "{} uses {other}, which is not below {name}",
                        file.display()
                    ));
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layer violations:\n{}",
        problems.join("\n")
    );
}

#[test]
fn daemon_modules_import_only_from_lower_layers() {
    let src = root().join("daemon/src");
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in rust_files(&src) {
        let Ok(relative) = file.strip_prefix(&src) else {
            continue;
        };
        let Some(module) = module_of(relative) else {
            continue;
        };
        seen.insert(module.clone());
        let code = code_of(&std::fs::read_to_string(&file).unwrap_or_default());
        for problem in module_violations(&module, &code) {
            problems.push(format!("{}: {problem}", relative.display()));
        }
    }
    assert!(
        problems.is_empty(),
        "layer violations:\n{}",
        problems.join("\n")
    );
    // Every listed module exists: the list is not a wish.
    for (kind, names) in layers() {
        for name in names.iter().filter(|_| kind == "module") {
            assert!(
                seen.contains(*name),
                "LAYERS lists `{name}`, which has no file in daemon/src"
            );
        }
    }
}

#[test]
fn an_upward_import_is_caught() {
    // The checker itself: what it must refuse and what it must let through.
    let upward = "use crate::api::AppState;\nfn f() { crate::portal::router(); }";
    assert_eq!(module_violations("config", upward).len(), 2);
    let listed = "use crate::{config::Config, api::{self, AppState}};";
    assert_eq!(
        module_violations("reports", listed),
        ["`reports` uses `api`, a layer above it"]
    );
    let peer = "use crate::renewal::Worker;";
    assert_eq!(module_violations("alerts", peer).len(), 1);
    let fine = "use crate::config::Config;\nuse crate::deploy;\nuse certkeeper_store::Store;\n// crate::cli in a comment\n";
    assert!(module_violations("renewal", &code_of(fine)).is_empty());
    assert_eq!(
        manifest_deps(
            "[dependencies]\ncertkeeper-store.workspace = true\n[dev-dependencies]\ntempfile = \"3\"\n"
        ),
        BTreeSet::from(["certkeeper-store".to_owned(), "tempfile".to_owned()])
    );
}

#[test]
fn the_architecture_guide_quotes_the_layers() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap_or_default();
    assert!(
        doc.contains(LAYERS),
        "docs/ARCHITECTURE.md must quote tests/layers.rs's LAYERS exactly, in its `## Layers` section:\n{LAYERS}"
    );
}
