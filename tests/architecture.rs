//! The crate's structure, checked from its sources: modules import only their own layer or the
//! layers below (math and model <- data and checkpoints <- backends <- loops <- command line), no
//! two modules import each other even indirectly, clap appears only in the command line (the
//! binary's `src/cli/`), and no source file grows past the length a reader takes in at once.
//!
//! A module is a file (`src/a.rs` or `src/a/mod.rs` is `a`, `src/a/b.rs` is `a::b`); it imports
//! another when its text names a path into it (`crate::a::b::Item`, `super::b`, `use crate::{a,
//! b}`). Comments are ignored; test modules inside a file count like the rest of it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each top-level module of the library and its layer.
const LAYERS: &[(&str, u32)] = &[
    ("error", 0),
    ("rng", 0),
    ("util", 0),
    ("model", 0),
    ("config", 0),
    ("metrics", 0),
    ("data", 1),
    ("checkpoint", 1),
    ("backend", 2),
    ("cpu", 2),
    ("cuda", 2),
    ("plot", 3),
    ("train", 3),
    ("pretrain", 3),
    ("evaluate", 3),
    ("matrix", 3),
    ("bench", 3),
    ("verify", 3),
    ("recommend", 3),
    ("serve", 3),
];

const LAYER_NAMES: [&str; 4] = [
    "math and model",
    "data and checkpoints",
    "backends",
    "training, pretraining, evaluation and experiment loops",
];

/// Longest source file (lines), tests included.
const MAX_LINES: usize = 620;

fn src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The module path of a library file (`None` for the binary's files: main.rs and cli/).
fn module_of(file: &Path) -> Option<Vec<String>> {
    let rel = file.strip_prefix(src()).unwrap();
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    if parts[0] == "main" || parts[0] == "cli" {
        return None;
    }
    let mut parts = parts;
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    Some(parts)
}

/// The text without comments, string literals and character literals (good enough for paths).
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r' && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#')) {
            // raw string r"..." / r#"..."#
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
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            while j < b.len() && !b[j..].starts_with(&close) {
                j += 1;
            }
            i = j + close.len();
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') {
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into full paths.
fn expand_use(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    fn go(prefix: &str, t: &str, out: &mut Vec<String>) {
        if let Some(open) = t.find('{') {
            let head = &t[..open];
            let inner = &t[open + 1..t.len() - 1];
            let mut depth = 0;
            let mut start = 0;
            for (i, c) in inner.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        go(&format!("{prefix}{head}"), &inner[start..i], out);
                        start = i + 1;
                    }
                    _ => {}
                }
            }
            go(&format!("{prefix}{head}"), &inner[start..], out);
        } else if !t.is_empty() {
            out.push(format!("{prefix}{t}"));
        }
    }
    let mut out = Vec::new();
    go("", &tree, &mut out);
    out
}

/// Every path a file's code names that starts at `crate`, `super` or `self`, as written.
fn paths_in(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    // use statements (braces expanded)
    let mut rest = code;
    while let Some(pos) = rest.find("use ") {
        let before_ok = pos == 0 || !is_ident(rest[..pos].chars().last().unwrap());
        let after = &rest[pos + 4..];
        if before_ok {
            if let Some(end) = after.find(';') {
                let tree = after[..end].trim();
                if tree.starts_with("crate::") || tree.starts_with("super::") {
                    out.extend(expand_use(tree));
                }
            }
        }
        rest = after;
    }
    // paths in expressions and types
    for start in ["crate::", "super::"] {
        let mut i = 0;
        while let Some(p) = code[i..].find(start) {
            let at = i + p;
            let ok = at == 0 || !is_ident(code[..at].chars().last().unwrap());
            let end = code[at..]
                .find(|c: char| !(is_ident(c) || c == ':'))
                .map_or(code.len(), |e| at + e);
            let path = code[at..end].trim_end_matches(':');
            if ok && path.contains("::") {
                out.push(path.to_string());
            }
            i = at + start.len();
        }
    }
    out
}

/// The module a path leads into: the longest prefix that is a module of the crate.
fn resolve(from: &[String], path: &str, modules: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    let segs: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = Vec::new();
    let mut it = segs.iter().peekable();
    match it.next() {
        Some(&"crate") => {}
        Some(&"super") => {
            base = from.to_vec();
            base.pop();
            while it.peek() == Some(&&"super") {
                it.next();
                base.pop();
            }
        }
        _ => return None,
    }
    let mut best = base.clone();
    let mut cur = base;
    for s in it {
        cur.push(s.to_string());
        if modules.contains(&cur) {
            best = cur.clone();
        } else {
            break;
        }
    }
    Some(best)
}

struct Crate {
    modules: BTreeSet<Vec<String>>,
    /// module -> modules it names (itself excluded)
    imports: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn load() -> Crate {
    let files = rust_files(&src());
    let modules: BTreeSet<Vec<String>> = files.iter().filter_map(|f| module_of(f)).collect();
    let mut imports = BTreeMap::new();
    for f in &files {
        let Some(m) = module_of(f) else { continue };
        let code = code_only(&std::fs::read_to_string(f).unwrap());
        let mut to = BTreeSet::new();
        for p in paths_in(&code) {
            if let Some(target) = resolve(&m, &p, &modules) {
                if target != m && !target.is_empty() {
                    to.insert(target);
                }
            }
        }
        imports.insert(m, to);
    }
    Crate { modules, imports }
}

fn name(m: &[String]) -> String {
    m.join("::")
}

fn layer(m: &[String]) -> Option<u32> {
    LAYERS
        .iter()
        .find(|(n, _)| m.first().is_some_and(|f| f == n))
        .map(|&(_, l)| l)
}

#[test]
fn every_top_level_module_has_a_layer() {
    let c = load();
    let unknown: Vec<String> = c
        .modules
        .iter()
        .filter(|m| !m.is_empty() && layer(m).is_none())
        .map(|m| name(m))
        .collect();
    assert!(
        unknown.is_empty(),
        "modules without a layer in tests/architecture.rs: {unknown:?}"
    );
}

#[test]
fn modules_import_only_their_layer_and_below() {
    let c = load();
    let mut bad = Vec::new();
    for (m, to) in &c.imports {
        let (Some(lm), false) = (layer(m), m.is_empty()) else {
            continue;
        };
        for t in to {
            if let Some(lt) = layer(t) {
                if lt > lm {
                    bad.push(format!(
                        "{} ({}) imports {} ({})",
                        name(m),
                        LAYER_NAMES[lm as usize],
                        name(t),
                        LAYER_NAMES[lt as usize]
                    ));
                }
            }
        }
    }
    assert!(bad.is_empty(), "imports that point up:\n{}", bad.join("\n"));
}

/// Tarjan's strongly connected components over the module graph.
fn cycles(imports: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    let nodes: Vec<&Vec<String>> = imports.keys().collect();
    let idx: BTreeMap<&Vec<String>, usize> =
        nodes.iter().enumerate().map(|(i, n)| (*n, i)).collect();
    let adj: Vec<Vec<usize>> = nodes
        .iter()
        .map(|n| {
            imports[*n]
                .iter()
                .filter_map(|t| idx.get(t).copied())
                .collect()
        })
        .collect();
    let n = nodes.len();
    let (mut index, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
    let (mut stack, mut next, mut out) = (Vec::new(), 0, Vec::new());
    fn strong(
        v: usize,
        adj: &[Vec<usize>],
        st: &mut (Vec<usize>, Vec<usize>, Vec<bool>, Vec<usize>, usize),
        out: &mut Vec<Vec<usize>>,
    ) {
        st.0[v] = st.4;
        st.1[v] = st.4;
        st.4 += 1;
        st.3.push(v);
        st.2[v] = true;
        for &w in &adj[v] {
            if st.0[w] == usize::MAX {
                strong(w, adj, st, out);
                st.1[v] = st.1[v].min(st.1[w]);
            } else if st.2[w] {
                st.1[v] = st.1[v].min(st.0[w]);
            }
        }
        if st.1[v] == st.0[v] {
            let mut comp = Vec::new();
            while let Some(w) = st.3.pop() {
                st.2[w] = false;
                comp.push(w);
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                out.push(comp);
            }
        }
    }
    let mut st = (
        std::mem::take(&mut index),
        std::mem::take(&mut low),
        std::mem::take(&mut on),
        std::mem::take(&mut stack),
        std::mem::take(&mut next),
    );
    let mut comps = Vec::new();
    for v in 0..n {
        if st.0[v] == usize::MAX {
            strong(v, &adj, &mut st, &mut comps);
        }
    }
    for comp in comps {
        let mut names: Vec<String> = comp.iter().map(|&i| name(nodes[i])).collect();
        names.sort();
        out.push(names);
    }
    out
}

#[test]
fn no_module_cycle() {
    let c = load();
    let found = cycles(&c.imports);
    assert!(
        found.is_empty(),
        "modules that import each other (directly or through others):\n{}",
        found
            .iter()
            .map(|c| c.join(" <-> "))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let m = |s: &str| vec![s.to_string()];
    let mut g = BTreeMap::new();
    g.insert(m("a"), BTreeSet::from([m("b")]));
    g.insert(m("b"), BTreeSet::from([m("c")]));
    g.insert(m("c"), BTreeSet::from([m("a")]));
    g.insert(m("d"), BTreeSet::from([m("a")]));
    assert_eq!(cycles(&g), vec![vec!["a", "b", "c"]]);
    g.insert(m("c"), BTreeSet::new());
    assert!(cycles(&g).is_empty());
}

#[test]
fn use_trees_and_paths_are_read() {
    let code = code_only(
        "use crate::{a::{b, c::D}, e};\n// use crate::commented;\nfn f() { crate::g::h(); let s = \"crate::in_string\"; }\nuse super::x::Y;",
    );
    let mut p = paths_in(&code);
    p.sort();
    p.dedup();
    assert_eq!(
        p,
        vec![
            "crate::a::b",
            "crate::a::c::D",
            "crate::e",
            "crate::g::h",
            "super::x::Y"
        ]
    );
}

#[test]
fn clap_only_in_the_command_line() {
    let mut bad = Vec::new();
    for f in rust_files(&src()) {
        if module_of(&f).is_none() {
            continue;
        }
        let code = code_only(&std::fs::read_to_string(&f).unwrap());
        if code.contains("clap::") || code.contains("clap;") {
            bad.push(f.display().to_string());
        }
    }
    assert!(bad.is_empty(), "clap outside src/cli/ and main.rs: {bad:?}");
}

#[test]
fn no_source_file_is_too_long_to_read() {
    let mut long = Vec::new();
    for f in rust_files(&src()) {
        let n = std::fs::read_to_string(&f).unwrap().lines().count();
        if n > MAX_LINES {
            long.push(format!("{} ({n} lines)", f.display()));
        }
    }
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}
