//! The source tree has no import cycle. Between crates: no workspace crate depends on another
//! that depends back on it, test-only (dev) dependencies included, which Cargo alone would
//! allow. Within each crate: a file that names another (`use crate::…`, `super::…`, or a path
//! written out in the code) sits above it, and nothing below names it back. Test code
//! (`#[cfg(test)]` items) is left out; the binary (`src/main.rs`, `src/cli/`) is read as a
//! crate of its own. `cargo test --test imports` is the check; on failure it names every file
//! (or crate) of each cycle and what ties them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A source file's text with comments and the insides of string and character literals
/// blanked out (braces in them would confuse the item boundaries, and a path in a doc
/// comment is not an import).
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend_from_slice(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            // A raw string: r"…" or r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let close: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let end = b[j + 1..]
                .windows(close.len())
                .position(|w| w == close.as_slice())
                .map(|p| j + 1 + p + close.len())
                .unwrap_or(b.len());
            out.extend(
                b[i..end]
                    .iter()
                    .map(|&x| if x == b'\n' { b'\n' } else { b' ' }),
            );
            i = end;
        } else if c == b'"' {
            out.push(b' ');
            i += 1;
            while i < b.len() && b[i] != b'"' {
                let skip = if b[i] == b'\\' { 2 } else { 1 };
                for _ in 0..skip.min(b.len() - i) {
                    out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                    i += 1;
                }
            }
            out.push(b' ');
            i += 1;
        } else if c == b'\'' {
            // A character literal ('{', '\'', '\u{7f}'), not a lifetime ('a).
            let lit = if b.get(i + 1) == Some(&b'\\') {
                b[i + 2..]
                    .iter()
                    .position(|&x| x == b'\'')
                    .map(|p| i + 3 + p)
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 3)
            } else {
                None
            };
            match lit {
                Some(end) => {
                    out.extend(std::iter::repeat_n(b' ', end - i));
                    i = end;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `code` without its `#[cfg(test)]` items (a test module, a test-only function or import).
fn without_tests(code: &str) -> String {
    let mut out = String::with_capacity(code.len());
    let mut rest = code;
    while let Some(at) = rest.find("#[cfg(test)]") {
        out.push_str(&rest[..at]);
        let item = &rest[at..];
        let b = item.as_bytes();
        // The item ends at its first `;` outside braces, or where its first brace closes.
        let mut depth = 0usize;
        let mut end = b.len();
        for (k, &c) in b.iter().enumerate().skip("#[cfg(test)]".len()) {
            match c {
                b'{' => depth += 1,
                b'}' => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        end = k + 1;
                        break;
                    }
                }
                b';' if depth == 0 => {
                    end = k + 1;
                    break;
                }
                _ => {}
            }
        }
        rest = &item[end..];
    }
    out.push_str(rest);
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Every path a `use` tree names, its braces expanded (`a::{b, c::{d, self}}` → `a::b`,
/// `a::c::d`, `a::c`).
fn expand(tree: &str) -> Vec<String> {
    // Renames (`x as y`) go before the spaces do: `password_spray` holds an "as" too.
    let words: Vec<&str> = tree.split_whitespace().collect();
    let mut kept = String::new();
    let mut k = 0;
    while k < words.len() {
        if words[k] == "as" {
            // The new name goes; what closes the tree after it (`}`, `,`) stays.
            if let Some(next) = words.get(k + 1) {
                kept.push_str(next.trim_start_matches(is_ident));
            }
            k += 2;
            continue;
        }
        kept.push_str(words[k]);
        k += 1;
    }
    let tree = kept;
    let Some(open) = tree.find('{') else {
        return vec![tree.trim_end_matches("::*").to_string()];
    };
    let prefix = tree[..open].trim_end_matches("::");
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    let mut out = Vec::new();
    for p in parts.into_iter().filter(|p| !p.is_empty()) {
        if p == "self" || p == "*" {
            out.push(prefix.to_string());
            continue;
        }
        for sub in expand(p) {
            out.push(if prefix.is_empty() {
                sub
            } else {
                format!("{prefix}::{sub}")
            });
        }
    }
    out
}

/// The paths a file's code names that start at `crate`, `super` or `self`.
fn paths_named(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    let mut rest = String::new();
    let mut text = code;
    // `use` trees first (their braces), then paths written out in the code.
    while let Some(at) = text.find("use ") {
        let word_start = at == 0 || !is_ident(text[..at].chars().last().unwrap_or(' '));
        if !word_start {
            rest.push_str(&text[..at + 4]);
            text = &text[at + 4..];
            continue;
        }
        rest.push_str(&text[..at]);
        let end = text[at..].find(';').map(|e| at + e).unwrap_or(text.len());
        paths.extend(expand(&text[at + 4..end]));
        text = &text[(end + 1).min(text.len())..];
    }
    rest.push_str(text);
    let chars: Vec<char> = rest.chars().collect();
    let mut k = 0;
    while k < chars.len() {
        let starts = ["crate::", "super::", "self::"]
            .iter()
            .find(|p| chars[k..].starts_with(&p.chars().collect::<Vec<_>>()));
        let boundary = k == 0 || !(is_ident(chars[k - 1]) || chars[k - 1] == ':');
        if let (Some(_), true) = (starts, boundary) {
            let mut j = k;
            while j < chars.len() && (is_ident(chars[j]) || chars[j] == ':') {
                j += 1;
            }
            paths.push(
                chars[k..j]
                    .iter()
                    .collect::<String>()
                    .trim_end_matches(':')
                    .to_string(),
            );
            k = j;
        } else {
            k += 1;
        }
    }
    paths
        .into_iter()
        .filter(|p| p.starts_with("crate") || p.starts_with("super") || p.starts_with("self"))
        .collect()
}

/// A crate's files by module path (`store::ingest` → `src/store/ingest.rs`).
type Modules = BTreeMap<Vec<String>, PathBuf>;

/// The file `path` (named in the module `from`) leads to: the deepest module it names.
fn resolve(modules: &Modules, from: &[String], path: &str) -> Option<PathBuf> {
    let mut segs = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut at: Vec<String> = match segs.peek().copied() {
        Some("crate") => {
            segs.next();
            Vec::new()
        }
        Some("self") => {
            segs.next();
            from.to_vec()
        }
        _ => from.to_vec(),
    };
    while segs.peek() == Some(&"super") {
        segs.next();
        at.pop();
    }
    let mut found = modules.get(&at).cloned();
    for s in segs {
        at.push(s.to_string());
        match modules.get(&at) {
            Some(f) => found = Some(f.clone()),
            None => break,
        }
    }
    found
}

/// Which file names which, for the files of one crate: (module path, text).
fn graph(
    files: &[(Vec<String>, PathBuf, String)],
) -> BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> {
    let modules: Modules = files
        .iter()
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    let mut edges: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> = BTreeMap::new();
    for (module, file, text) in files {
        let code = without_tests(&code_only(text));
        let entry = edges.entry(file.clone()).or_default();
        for p in paths_named(&code) {
            if let Some(to) = resolve(&modules, module, &p) {
                if &to != file {
                    entry.entry(to).or_default().insert(p);
                }
            }
        }
    }
    edges
}

/// The cycles of a graph: its strongly connected components of more than one file.
fn cycles(edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>) -> Vec<Vec<PathBuf>> {
    // Kosaraju: finish order on the graph, then components on the reversed graph.
    let nodes: Vec<&PathBuf> = edges.keys().collect();
    let mut seen = BTreeSet::new();
    let mut order = Vec::new();
    for &n in &nodes {
        if seen.contains(n) {
            continue;
        }
        let mut stack = vec![(n, false)];
        while let Some((v, done)) = stack.pop() {
            if done {
                order.push(v);
                continue;
            }
            if !seen.insert(v) {
                continue;
            }
            stack.push((v, true));
            for w in edges.get(v).into_iter().flat_map(|m| m.keys()) {
                if !seen.contains(w) {
                    stack.push((w, false));
                }
            }
        }
    }
    let mut back: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (v, out) in edges {
        for w in out.keys() {
            back.entry(w).or_default().push(v);
        }
    }
    let mut placed = BTreeSet::new();
    let mut found = Vec::new();
    for &v in order.iter().rev() {
        if placed.contains(v) {
            continue;
        }
        let mut comp = Vec::new();
        let mut stack = vec![v];
        placed.insert(v);
        while let Some(x) = stack.pop() {
            comp.push(x.clone());
            for &w in back.get(x).into_iter().flatten() {
                if placed.insert(w) {
                    stack.push(w);
                }
            }
        }
        if comp.len() > 1 {
            comp.sort();
            found.push(comp);
        }
    }
    found
}

fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap_or(file);
    let mut m: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(m.last().map(String::as_str), Some("mod" | "lib" | "main")) {
        m.pop();
    }
    m
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("the source tree").flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn report(
    edges: &BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>>,
    found: &[Vec<PathBuf>],
) -> String {
    let mut s = String::new();
    for comp in found {
        s.push_str(&format!("a cycle of {}:\n", comp.len()));
        for a in comp {
            for (b, names) in edges.get(a).into_iter().flatten() {
                if comp.contains(b) {
                    let names: Vec<&str> = names.iter().map(String::as_str).collect();
                    s.push_str(&format!(
                        "  {} -> {}: {}\n",
                        a.display(),
                        b.display(),
                        names.join(", ")
                    ));
                }
            }
        }
    }
    s
}

/// The workspace's crates: each one's directory, under the workspace's root.
fn crate_dirs(root: &Path) -> Vec<PathBuf> {
    let mut dirs = vec![root.to_path_buf()];
    for group in ["crates", "dev"] {
        let mut found: Vec<PathBuf> = std::fs::read_dir(root.join(group))
            .expect("the workspace's crates")
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join("Cargo.toml").is_file())
            .collect();
        found.sort();
        dirs.extend(found);
    }
    dirs
}

/// Checks `files`, all or part of the crate whose sources are under `src`, for cycles.
fn check_crate(src: &Path, files: Vec<PathBuf>) {
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files: Vec<(Vec<String>, PathBuf, String)> = files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("a source file");
            let rel = p.strip_prefix(base).unwrap_or(&p).to_path_buf();
            (module_of(src, &p), rel, text)
        })
        .collect();
    let edges = graph(&files);
    let found = cycles(&edges);
    assert!(found.is_empty(), "{}", report(&edges, &found));
}

#[test]
fn no_file_of_the_source_tree_imports_its_way_back_to_itself() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut read = 0;
    for dir in crate_dirs(root) {
        let src = dir.join("src");
        let mut all = Vec::new();
        rust_files(&src, &mut all);
        all.sort();
        read += all.len();
        // The binary (main.rs and the command line) is a crate of its own over the library.
        let (bin, lib): (Vec<PathBuf>, Vec<PathBuf>) = all
            .into_iter()
            .partition(|p| p == &src.join("main.rs") || p.starts_with(src.join("cli")));
        check_crate(&src, lib);
        check_crate(&src, bin);
    }
    assert!(
        read > 100,
        "the crates' files were not found under {}",
        root.display()
    );
}

/// A workspace crate's `pgvigil-*` dependencies, of every kind, from its Cargo.toml.
fn workspace_deps(manifest: &str) -> BTreeSet<String> {
    let mut deps = BTreeSet::new();
    let mut section = "";
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line;
        } else if section.ends_with("dependencies]")
            && section != "[workspace.dependencies]"
            && line.starts_with("pgvigil-")
        {
            let name: String = line
                .chars()
                .take_while(|&c| is_ident(c) || c == '-')
                .collect();
            deps.insert(name);
        }
    }
    deps
}

#[test]
fn no_crate_depends_on_itself_through_the_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Each crate as a node named by its package, its dependencies as edges.
    let mut edges: BTreeMap<PathBuf, BTreeMap<PathBuf, BTreeSet<String>>> = BTreeMap::new();
    for dir in crate_dirs(root) {
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("a Cargo.toml");
        let name = manifest
            .lines()
            .find_map(|l| l.trim().strip_prefix("name = "))
            .map(|n| n.trim_matches('"').to_string())
            .expect("a package name");
        let out = edges.entry(PathBuf::from(name)).or_default();
        for d in workspace_deps(&manifest) {
            out.entry(PathBuf::from(&d)).or_default().insert(d);
        }
    }
    assert!(edges.len() > 10, "the workspace's crates were not found");
    let found = cycles(&edges);
    assert!(found.is_empty(), "{}", report(&edges, &found));
}

/// The check sees what it is for: a file naming another that names it back, through `use`
/// braces, `super`, and a path in the code, but not through a comment, a string or a test.
#[test]
fn the_check_finds_a_cycle_and_only_a_real_one() {
    let file = |m: &[&str], text: &str| {
        let m: Vec<String> = m.iter().map(|s| s.to_string()).collect();
        let p = PathBuf::from(format!("src/{}.rs", m.join("/")));
        (m, p, text.to_string())
    };
    let tied = vec![
        file(&["a"], "use crate::{b::{self, Thing as T}, c};\nfn f() {}"),
        file(&["b"], "pub struct Thing;\nfn g() { crate::c::h(); }"),
        file(&["c"], "use crate::password_spray::Spray;\npub fn h() {}"),
        file(
            &["password_spray"],
            "pub struct Spray;\nuse super::a::f as g;",
        ),
    ];
    let found = cycles(&graph(&tied));
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].len(), 4);
    let loose = vec![
        file(&["a"], "use crate::b::Thing;\nfn f() {}"),
        file(
            &["b"],
            "pub struct Thing; // see crate::a::f\nconst S: &str = \"crate::a::f\";\nconst C: char = '{';\n#[cfg(test)]\nmod tests { use crate::a::f; fn t() { let _ = '}'; } }\nfn after() {}",
        ),
    ];
    let edges = graph(&loose);
    assert!(
        cycles(&edges).is_empty(),
        "{}",
        report(&edges, &cycles(&edges))
    );
    assert_eq!(edges[&PathBuf::from("src/a.rs")].len(), 1);
}
