//! The house's layout, checked: no two top-level modules of a crate import each other (a
//! circle means a type lives in the wrong room), and no source file grows far past 500 lines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a source file may be (the rule is "about 500 lines").
const MAX_LINES: usize = 550;

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("source folder") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to (`payments/refunds/mod.rs` → `payments`).
fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (!matches!(name, "lib" | "main")).then(|| name.to_string())
}

/// Which top-level modules each one names through `crate::…` (tests left out).
fn imports(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    sources(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let Some(from) = top_module(src, &file) else {
            continue;
        };
        let text = std::fs::read_to_string(&file).expect("source");
        // A file's unit tests (`#[cfg(test)] mod tests`, at its end) may import anything.
        let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or_default();
        let mut names = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // `use crate::{a, b::c}`: every first segment in the braces.
                let inner = &group[..group.find('}').unwrap_or(group.len())];
                for part in inner.split(',') {
                    let head: String = part
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    names.insert(head);
                }
            } else {
                let head: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                names.insert(head);
            }
        }
        names.retain(|n| !n.is_empty() && *n != from);
        graph.entry(from).or_default().extend(names);
    }
    graph
}

/// The modules on a circle, if any (depth-first search for a back edge).
fn circle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|n| n == node) {
            let mut found = path[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|n| visit(n, graph, &mut Vec::new(), &mut done))
}

fn crate_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name)
        .join("src")
}

#[test]
fn no_two_top_level_modules_import_each_other() {
    for krate in ["server", "app"] {
        let graph = imports(&crate_src(krate));
        assert!(
            graph.len() > 5,
            "{krate}: the scan found its modules: {graph:?}"
        );
        if let Some(found) = circle(&graph) {
            panic!("{krate}: an import circle: {}", found.join(" → "));
        }
    }
    // The check does find a circle where there is one.
    let mut made_up = BTreeMap::new();
    made_up.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    made_up.insert("b".to_string(), BTreeSet::from(["c".to_string()]));
    made_up.insert("c".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        circle(&made_up).map(|c| c.join(" → ")),
        Some("a → b → c → a".to_string())
    );
}

#[test]
fn no_source_file_grows_far_past_500_lines() {
    let mut long = Vec::new();
    for krate in ["server", "app"] {
        let mut files = Vec::new();
        sources(&crate_src(krate), &mut files);
        assert!(files.len() > 10, "{krate}: the scan found its files");
        for file in files {
            let lines = std::fs::read_to_string(&file)
                .expect("source")
                .lines()
                .count();
            if lines > MAX_LINES {
                long.push(format!("{} ({lines})", file.display()));
            }
        }
    }
    assert!(long.is_empty(), "over {MAX_LINES} lines: {long:?}");
}
