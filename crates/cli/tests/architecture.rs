//! The invariants docs/ARCHITECTURE.md states as absences, checked on the real dependency graph
//! (`cargo metadata`) and on the repository's files, so the map cannot silently stop being true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Package name → names of its normal (non-dev) dependencies, from cargo's resolved graph.
struct Graph {
    direct: BTreeMap<String, BTreeSet<String>>,
}

impl Graph {
    fn load() -> Self {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let output = Command::new(cargo)
            .args(["metadata", "--format-version", "1", "--locked"])
            .current_dir(workspace_root())
            .output()
            .expect("run cargo metadata");
        assert!(
            output.status.success(),
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let metadata: Value = serde_json::from_slice(&output.stdout).expect("metadata JSON");
        let names: BTreeMap<&str, &str> = metadata["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .map(|p| {
                (
                    p["id"].as_str().expect("package id"),
                    p["name"].as_str().expect("package name"),
                )
            })
            .collect();
        let mut direct: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for node in metadata["resolve"]["nodes"].as_array().expect("nodes") {
            let name = names[node["id"].as_str().expect("node id")];
            let deps = direct.entry(name.to_owned()).or_default();
            for dep in node["deps"].as_array().expect("deps") {
                // Dev-dependencies build tests, not the crate: only normal and build edges count.
                let shipped = dep["dep_kinds"]
                    .as_array()
                    .expect("dep_kinds")
                    .iter()
                    .any(|kind| kind["kind"].as_str() != Some("dev"));
                if shipped {
                    deps.insert(names[dep["pkg"].as_str().expect("dep pkg")].to_owned());
                }
            }
        }
        Self { direct }
    }

    fn direct(&self, package: &str) -> &BTreeSet<String> {
        self.direct
            .get(package)
            .unwrap_or_else(|| panic!("{package} is not in the workspace graph"))
    }

    /// Every package `package` links, directly or not.
    fn closure(&self, package: &str) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut stack = vec![package.to_owned()];
        while let Some(next) = stack.pop() {
            for dep in self.direct(&next) {
                if seen.insert(dep.clone()) {
                    stack.push(dep.clone());
                }
            }
        }
        seen
    }

    /// The workspace packages that depend on `dependency` directly.
    fn direct_dependents(&self, dependency: &str) -> BTreeSet<String> {
        self.direct
            .iter()
            .filter(|(name, deps)| name.starts_with("wagate") && deps.contains(dependency))
            .map(|(name, _)| name.clone())
            .collect()
    }
}

fn assert_absent(graph: &Graph, package: &str, forbidden: &[&str]) {
    let linked = graph.closure(package);
    let found: Vec<_> = forbidden.iter().filter(|f| linked.contains(**f)).collect();
    assert!(found.is_empty(), "{package} must not link {found:?}");
}

fn assert_only(graph: &Graph, dependency: &str, allowed: &[&str]) {
    let users = graph.direct_dependents(dependency);
    let allowed: BTreeSet<String> = allowed.iter().map(|a| (*a).to_owned()).collect();
    assert!(
        users.is_subset(&allowed),
        "only {allowed:?} may depend on {dependency} directly, found {users:?}"
    );
}

#[test]
fn the_domain_does_no_io() {
    let graph = Graph::load();
    assert_absent(
        &graph,
        "wagate-domain",
        &[
            "tokio", "sled", "postcard", "serde", "hyper", "reqwest", "axum", "rand",
        ],
    );
}

#[test]
fn the_wire_contract_links_no_server() {
    let graph = Graph::load();
    assert_absent(
        &graph,
        "wagate-api",
        &["axum", "hyper", "wagate-app", "wagate-store", "wagate-http"],
    );
}

#[test]
fn the_dispatcher_links_no_http_server() {
    let graph = Graph::load();
    assert_absent(&graph, "wagate-dispatch", &["wagate-http", "axum"]);
}

#[test]
fn only_the_store_knows_sled_and_postcard() {
    let graph = Graph::load();
    assert_only(&graph, "sled", &["wagate-store"]);
    assert_only(&graph, "postcard", &["wagate-store"]);
}

#[test]
fn the_log_is_reached_through_the_app() {
    // The app is the one door to the log; the binary opens the store (the composition root) and
    // the export crate names the store's record type for offline tools.
    let graph = Graph::load();
    assert_only(
        &graph,
        "wagate-store",
        &[
            "wagate-app",
            "wagate-cli",
            "wagate-export",
            "wagate-store-postgres",
        ],
    );
}

#[test]
fn only_the_postgres_store_knows_postgres() {
    // The PostgreSQL backend is its own crate, so the sled store (and what links it alone) never
    // links a database client; the binary opens it (the composition root), nothing else does.
    let graph = Graph::load();
    assert_only(&graph, "tokio-postgres", &["wagate-store-postgres"]);
    assert_only(&graph, "wagate-store-postgres", &["wagate-cli"]);
    assert_absent(&graph, "wagate-store", &["tokio-postgres"]);
    assert_absent(&graph, "wagate-app", &["tokio-postgres"]);
}

#[test]
fn only_http_knows_the_http_server() {
    let graph = Graph::load();
    assert_only(&graph, "axum", &["wagate-http"]);
}

#[test]
fn only_the_binary_uses_anyhow() {
    let graph = Graph::load();
    assert_only(&graph, "anyhow", &["wagate-cli"]);
}

/// Files whose text is checked for references to documents.
fn project_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let path = entry.expect("dir entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            if !matches!(name, "target" | ".git" | "advisory-db" | "wagate-data") {
                project_files(&path, out);
            }
        } else if matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("rs" | "md" | "toml" | "yaml")
        ) {
            out.push(path);
        }
    }
}

#[test]
fn no_file_cites_a_document_outside_the_repository() {
    let root = workspace_root();
    let mut files = Vec::new();
    project_files(&root, &mut files);
    let known: BTreeSet<String> = files
        .iter()
        .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
        .collect();
    let mut missing = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).expect("read file");
        for word in text.split(|c: char| !(c.is_alphanumeric() || "._-/".contains(c))) {
            let Some(stem) = word.strip_suffix(".md") else {
                continue;
            };
            if stem.is_empty() {
                continue;
            }
            let name = format!("{}.md", stem.rsplit('/').next().unwrap_or(stem));
            if !known.contains(&name) {
                missing.push(format!("{} cites {word}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "documents cited but not in the repository:\n{}",
        missing.join("\n")
    );
}

#[test]
fn http_does_not_name_the_store_even_for_its_tests() {
    // The hub is its door to the log in tests too (`Hub::open_temporary*`).
    let manifest = workspace_root().join("crates/http/Cargo.toml");
    let text = std::fs::read_to_string(&manifest).expect("manifest");
    let named: Vec<&str> = text
        .lines()
        .filter(|line| line.trim_start().starts_with("wagate-store"))
        .collect();
    assert!(named.is_empty(), "{}: {named:?}", manifest.display());
}
