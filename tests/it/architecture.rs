//! The shape of the code, checked: no function in the library over 80 lines,
//! each binary under 40 lines, and no two modules that import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const LIBRARY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/lib");
const BINARIES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin");

/// The `.rs` files under `dir`, recursively, in order.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("a source folder")
        .map(|e| e.expect("an entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            found.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            found.push(path);
        }
    }
    found
}

/// Whether `line` starts a function, and its name.
fn function_name(line: &str) -> Option<&str> {
    let mut words = line.split_whitespace();
    while let Some(word) = words.next() {
        match word {
            "pub" | "async" | "const" | "unsafe" | "extern" => continue,
            w if w.starts_with("pub(") => continue,
            "fn" => return words.next()?.split(['(', '<']).next(),
            _ => return None,
        }
    }
    None
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// `(name, lines)` of every function in `text` with a body, its signature
/// and closing brace included.
fn function_lengths(text: &str) -> Vec<(String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut lengths = Vec::new();
    for (start, line) in lines.iter().enumerate() {
        let Some(name) = function_name(line) else {
            continue;
        };
        let Some(open) = (start..lines.len()).find(|&i| {
            let l = lines[i].trim_end();
            l.ends_with('{') || l.ends_with(';')
        }) else {
            continue;
        };
        if lines[open].trim_end().ends_with(';') {
            continue; // a declaration in a trait
        }
        let depth = indentation(line);
        let end = (open + 1..lines.len())
            .find(|&i| indentation(lines[i]) == depth && lines[i].trim_start().starts_with('}'));
        if let Some(end) = end {
            lengths.push((name.to_string(), end - start + 1));
        }
    }
    lengths
}

#[test]
fn no_library_function_is_over_80_lines() {
    let mut long = Vec::new();
    for path in sources(Path::new(LIBRARY)) {
        let text = std::fs::read_to_string(&path).expect("a source file");
        for (name, lines) in function_lengths(&text) {
            if lines > 80 {
                long.push(format!("{} {name}: {lines} lines", path.display()));
            }
        }
    }
    assert!(
        long.is_empty(),
        "functions over 80 lines:\n{}",
        long.join("\n")
    );
}

#[test]
fn each_binary_is_under_40_lines() {
    let entries = std::fs::read_dir(BINARIES).expect("src/bin");
    let mut checked = 0;
    for path in entries.map(|e| e.expect("an entry").path()) {
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let lines = std::fs::read_to_string(&path)
            .expect("a binary")
            .lines()
            .count();
        assert!(lines < 40, "{}: {lines} lines", path.display());
        checked += 1;
    }
    assert_eq!(checked, 6, "the six binaries");
}

/// The module path of a library file: `ec2/handle.rs` → `[ec2, handle]`.
fn module_of(path: &Path) -> Vec<String> {
    let relative = path.strip_prefix(LIBRARY).expect("under src/lib");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The module paths `text` (of module `me`) names with `crate::` or `super::`,
/// outside its tests.
fn references(me: &[String], text: &str) -> Vec<Vec<String>> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or(text);
    let mut found = Vec::new();
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        let preceded = code[..start].chars().last();
        if preceded.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[start..];
        let path: Vec<&str> = rest
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .next()
            .unwrap_or("")
            .split("::")
            .filter(|p| !p.is_empty())
            .collect();
        let mut target: Vec<String> = match path.first() {
            Some(&"crate") => Vec::new(),
            _ => me[..me.len().saturating_sub(1)].to_vec(),
        };
        target.extend(path[1..].iter().map(|p| p.to_string()));
        found.push(target);
    }
    found
}

#[test]
fn no_two_modules_import_each_other() {
    // Sibling modules, at every level, and who uses whom among them.
    let mut uses: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(Path::new(LIBRARY)) {
        let name = path.file_name().unwrap_or_default();
        if name == "tests.rs" || name == "fixtures.rs" {
            continue;
        }
        let me = module_of(&path);
        let text = std::fs::read_to_string(&path).expect("a source file");
        for target in references(&me, &text) {
            let common = me.iter().zip(&target).take_while(|(a, b)| a == b).count();
            if common < me.len() && common < target.len() {
                let from = me[..=common].join("/");
                let to = target[..=common].join("/");
                uses.entry(from).or_default().insert(to);
            }
        }
    }
    assert!(uses.len() > 10, "the walk found the modules: {uses:?}");
    let mut cycles = Vec::new();
    for (from, targets) in &uses {
        for to in targets {
            if from < to && uses.get(to).is_some_and(|back| back.contains(from)) {
                cycles.push(format!("{from} <-> {to}"));
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "modules that import each other: {cycles:?}"
    );
}
