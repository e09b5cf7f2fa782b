//! The layering of the library (docs/ARCHITECTURE.md): every module imports only from modules
//! before it in the pipeline, no files import each other in a cycle, and the table of imports
//! in docs/ARCHITECTURE.md is the one the code has.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The pipeline, in order.
const ORDER: &[&str] = &[
    "error",
    "fsio",
    "digest",
    "kernels",
    "data",
    "model",
    "train",
    "config",
    "setup",
    "metrics",
    "analysis",
    "rundir",
    "experiment",
    "job",
    "progress",
    "analyze",
    "sweep",
    "report",
    "bench",
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, recursively.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every library source file with its module path (`src/train/mlp.rs` → `["train", "mlp"]`).
fn files() -> Vec<(Vec<String>, PathBuf)> {
    let mut all = Vec::new();
    walk(&src(), &mut all);
    all.sort();
    all.into_iter()
        .filter_map(|p| {
            let rel = p.strip_prefix(src()).unwrap().with_extension("");
            let mut segs: Vec<String> = rel
                .iter()
                .map(|s| s.to_string_lossy().to_string())
                .collect();
            // The binary (main.rs and its subcommands in cli/) is a shell over the library,
            // not a stage of it.
            if segs == ["lib"] || segs == ["main"] || segs[0] == "cli" {
                return None;
            }
            if segs.last().is_some_and(|s| s == "mod") {
                segs.pop();
            }
            Some((segs, p))
        })
        .collect()
}

/// The file that defines the longest prefix of `path` (a module path from the crate root).
fn resolve(path: &[String]) -> Option<PathBuf> {
    for n in (1..=path.len()).rev() {
        let rel: PathBuf = path[..n].iter().collect();
        for cand in [
            src().join(&rel).with_extension("rs"),
            src().join(&rel).join("mod.rs"),
        ] {
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    None
}

fn ident(s: &str) -> String {
    s.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// The paths a file refers to: `crate::…`, `super::…` and `use child::…` (a module it
/// declares), each item of a `{…}` group as its own path; unit tests left out.
fn references(module: &[String], text: &str) -> Vec<Vec<String>> {
    let children: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            l.strip_prefix("mod ")
                .map(|r| r.trim_end_matches(';').trim().to_string())
        })
        .collect();
    // Unit tests (`#[cfg(test)] mod tests`, at the end of a file) are not part of the layering.
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let code: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut push = |base: Vec<String>, rest: &str| {
        // `rest` follows `base::`: a path, or a `{…}` group of paths.
        let mut path = base;
        let mut r = rest;
        loop {
            if let Some(group) = r.strip_prefix('{') {
                let body = group.split('}').next().unwrap_or("");
                for item in body.split(',') {
                    let first = ident(item.trim());
                    if !first.is_empty() && first != "self" {
                        let mut p = path.clone();
                        p.push(first);
                        out.push(p);
                    }
                }
                out.push(path);
                return;
            }
            let seg = ident(r);
            if seg.is_empty() {
                out.push(path);
                return;
            }
            path.push(seg.clone());
            r = &r[seg.len()..];
            match r.strip_prefix("::") {
                Some(next) => r = next,
                None => {
                    out.push(path);
                    return;
                }
            }
        }
    };
    for (i, _) in code.match_indices("crate::") {
        if i > 0 && code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_') {
            continue;
        }
        push(Vec::new(), &code[i + 7..]);
    }
    for (i, _) in code.match_indices("super::") {
        push(module[..module.len() - 1].to_vec(), &code[i + 7..]);
    }
    for line in code.lines() {
        let l = line.trim();
        let l = l.strip_prefix("pub ").unwrap_or(l);
        if let Some(rest) = l.strip_prefix("use ") {
            let first = ident(rest);
            if children.contains(&first) {
                push(module.to_vec(), rest);
            }
        }
    }
    out
}

/// Edges between files, and the top-level modules each top-level module imports.
fn graph() -> (
    BTreeMap<PathBuf, BTreeSet<PathBuf>>,
    BTreeMap<String, BTreeSet<String>>,
) {
    let mut edges: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    let mut tops: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, path) in files() {
        let text = std::fs::read_to_string(&path).unwrap();
        tops.entry(module[0].clone()).or_default();
        for r in references(&module, &text) {
            let Some(target) = resolve(&r) else { continue };
            if target != path {
                edges.entry(path.clone()).or_default().insert(target);
            }
            if r[0] != module[0] {
                tops.get_mut(&module[0]).unwrap().insert(r[0].clone());
            }
        }
    }
    (edges, tops)
}

#[test]
fn every_module_imports_only_from_earlier_modules() {
    let (_, tops) = graph();
    let rank = |m: &str| {
        ORDER
            .iter()
            .position(|o| *o == m)
            .unwrap_or_else(|| panic!("module {m} is not in the pipeline order"))
    };
    for (m, imports) in &tops {
        for i in imports {
            assert!(
                rank(i) < rank(m),
                "`{m}` imports `{i}`, which comes later in the pipeline"
            );
        }
    }
    assert_eq!(tops.len(), ORDER.len(), "every stage has files: {tops:?}");
}

#[test]
fn no_files_import_each_other_in_a_cycle() {
    let (edges, _) = graph();
    // Depth-first search; a back edge is a cycle.
    fn visit(
        n: &PathBuf,
        edges: &BTreeMap<PathBuf, BTreeSet<PathBuf>>,
        state: &mut BTreeMap<PathBuf, u8>,
        stack: &mut Vec<PathBuf>,
    ) {
        state.insert(n.clone(), 1);
        stack.push(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            match state.get(m).copied().unwrap_or(0) {
                0 => visit(m, edges, state, stack),
                1 => {
                    let at = stack.iter().position(|x| x == m).unwrap();
                    panic!("a cycle of files: {:?} → {}", &stack[at..], m.display());
                }
                _ => {}
            }
        }
        stack.pop();
        state.insert(n.clone(), 2);
    }
    let mut state = BTreeMap::new();
    for n in edges.keys() {
        if state.get(n).copied().unwrap_or(0) == 0 {
            visit(n, &edges, &mut state, &mut Vec::new());
        }
    }
    // The resolver sees real imports: the MLP engine uses the engine types.
    let mlp = src().join("train/mlp/mod.rs");
    assert!(edges[&mlp].contains(&src().join("train/engine.rs")));
}

#[test]
fn architecture_doc_lists_the_real_imports() {
    let (_, tops) = graph();
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/ARCHITECTURE.md"))
            .unwrap();
    let section = doc
        .split("## Module order and imports")
        .nth(1)
        .expect("docs/ARCHITECTURE.md has a section `## Module order and imports`");
    let mut documented: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut order = Vec::new();
    for line in section.lines().take_while(|l| !l.starts_with("## ")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 4 || !cells[2].starts_with('`') {
            continue;
        }
        let m = cells[2].trim_matches('`').to_string();
        let imports = cells[3]
            .split(',')
            .map(|x| x.trim().trim_matches('`').to_string())
            .filter(|x| !x.is_empty() && x != "—")
            .collect();
        order.push(m.clone());
        documented.insert(m, imports);
    }
    assert_eq!(order, ORDER, "the documented order is the pipeline's");
    assert_eq!(documented, tops, "docs/ARCHITECTURE.md's import table");
}

#[test]
fn config_is_a_pure_schema() {
    // The config reads, checks and expands; building the network from it is the setup stage's.
    let (_, tops) = graph();
    let allowed = ["data", "error", "model"];
    let config = &tops["config"];
    assert!(
        config.iter().all(|m| allowed.contains(&m.as_str())),
        "`config` imports {config:?}; it may import only {allowed:?}"
    );
}

#[test]
fn no_source_file_is_over_700_lines() {
    // One concept per file, each readable in one sitting.
    let mut all = Vec::new();
    walk(&src(), &mut all);
    let long: Vec<String> = all
        .iter()
        .filter_map(|p| {
            let n = std::fs::read_to_string(p).unwrap().lines().count();
            (n > 700).then(|| format!("{} ({n} lines)", p.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over 700 lines: {long:?}");
}
