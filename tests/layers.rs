//! The crate's modules import downward only: each top-level module of `src/` may name (through
//! `crate::`) modules of its own layer's rank or lower, never one above it. Test code
//! (`#[cfg(test)] mod tests` and `tests.rs` files) is not checked.

use std::path::Path;

/// Lowest first. Modules on one line may not import each other either, except where noted.
const LAYERS: &[&[&str]] = &[
    &[
        "error",
        "verbose",
        "fpmode",
        "malloc",
        "cache_dir",
        "Error",
        "Result",
        "errln",
    ],
    &["config", "pool"],
    &["data"],
    &["ops"],
    &["optim"],
    &["models"],
    &["rundir", "progress", "compile"],
    &["train"],
    &["run"],
    &["verify", "report"],
    &["sweep"],
    &["cli"],
];

fn rank(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// The `crate::<module>` names in `text`, before its test module.
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    code.match_indices("crate::")
        .map(|(at, m)| {
            code[at + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect()
        })
        .collect()
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn modules_import_only_from_their_layer_or_below() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut upward = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        if rel.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if matches!(top.as_str(), "lib" | "main") {
            continue;
        }
        let own = rank(&top).unwrap_or_else(|| panic!("src/{top}: add it to LAYERS"));
        for name in imports(&std::fs::read_to_string(file).unwrap()) {
            let theirs = rank(&name).unwrap_or_else(|| panic!("crate::{name}: add it to LAYERS"));
            if theirs > own {
                upward.push(format!("{} -> crate::{name}", rel.display()));
            }
        }
    }
    upward.sort();
    upward.dedup();
    assert!(
        upward.is_empty(),
        "imports up the layers:\n{}",
        upward.join("\n")
    );
}

/// Sibling modules (files of one directory, named through `super::`) import each other in one
/// direction only: no two modules of a directory depend on each other, directly or through
/// others (issue 36 found `cli/sweep.rs` <-> `cli/sweep_tpe.rs`).
#[test]
fn sibling_modules_form_no_circle() {
    use std::collections::{BTreeMap, BTreeSet};
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // Edges per directory: module -> siblings it names.
    let mut graphs: BTreeMap<std::path::PathBuf, BTreeMap<String, BTreeSet<String>>> =
        BTreeMap::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        if matches!(name.as_str(), "tests" | "mod" | "lib" | "main") {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let code: String = text
            .split("#[cfg(test)]\nmod tests")
            .next()
            .unwrap_or(&text)
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect::<Vec<_>>()
            .join("\n");
        let named: BTreeSet<String> = code
            .match_indices("super::")
            .map(|(at, m)| {
                code[at + m.len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect::<String>()
            })
            .filter(|n| !n.is_empty() && *n != name)
            .collect();
        let dir = file.parent().unwrap().to_path_buf();
        graphs.entry(dir).or_default().insert(name, named);
    }
    let mut circles = Vec::new();
    for (dir, graph) in &graphs {
        for start in graph.keys() {
            // Depth-first search for a path from `start` back to itself.
            let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, path)) = stack.pop() {
                for next in graph.get(&at).into_iter().flatten() {
                    if next == start {
                        circles.push(format!(
                            "{}: {} -> {start}",
                            dir.strip_prefix(&src).unwrap().display(),
                            path.join(" -> ")
                        ));
                    } else if graph.contains_key(next) && seen.insert(next.clone()) {
                        let mut p = path.clone();
                        p.push(next.clone());
                        stack.push((next.clone(), p));
                    }
                }
            }
        }
    }
    assert!(
        circles.is_empty(),
        "modules that import each other:\n{}",
        circles.join("\n")
    );
}
