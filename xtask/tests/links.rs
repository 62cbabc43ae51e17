//! Every relative link of the repository's Markdown files resolves inside a clone (issue 40):
//! no page may point at `../shared/` or at a file that moved. Web links are not fetched.

mod common;

use std::path::{Path, PathBuf};

use common::root;

/// The Markdown files git tracks or would track (untracked, not ignored), vendored crates'
/// own pages aside (their links point into their upstream repositories).
fn pages(root: &Path) -> Vec<PathBuf> {
    let out = std::process::Command::new("git").args(["ls-files", "--cached", "--others", "--exclude-standard", "*.md"]).current_dir(root).output().expect("git runs");
    assert!(out.status.success(), "git ls-files: {}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<PathBuf> = String::from_utf8(out.stdout).unwrap().lines().filter(|f| !f.starts_with("vendor/") || f == &"vendor/README.md").map(|f| root.join(f)).collect();
    assert!(files.len() > 10, "too few Markdown files found: {files:?}");
    files
}

/// The targets of inline links and images, `[text](target)`, outside fenced code blocks.
fn targets(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let mut fenced = false;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let mut rest = line;
        while let (false, Some(at)) = (fenced, rest.find("](")) {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = after[..end].split_whitespace().next().unwrap_or_default();
            found.push((n + 1, target.to_string()));
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn every_relative_link_in_the_markdown_resolves() {
    let root = root();
    let mut broken = Vec::new();
    let mut checked = 0;
    for page in pages(&root) {
        let text = std::fs::read_to_string(&page).unwrap();
        for (line, target) in targets(&text) {
            let path = target.split('#').next().unwrap_or_default();
            if path.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let resolved = if let Some(abs) = path.strip_prefix('/') { root.join(abs) } else { page.parent().unwrap().join(path) };
            checked += 1;
            if !resolved.exists() {
                broken.push(format!("{}:{line}: {target}", page.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(checked > 20, "only {checked} relative links found: is the parser reading the pages?");
    assert!(broken.is_empty(), "{} broken links:\n{}", broken.len(), broken.join("\n"));
}

#[test]
fn the_link_reader_finds_links_and_skips_code() {
    let text = "See [a](docs/A.md#x) and ![f](f.svg \"title\").\n```\n[not](this.md)\n```\n[b](https://x.org)";
    let found: Vec<String> = targets(text).into_iter().map(|(_, t)| t).collect();
    assert_eq!(found, ["docs/A.md#x", "f.svg", "https://x.org"]);
}

/// docs/METHOD.md's table of equations and the functions implementing them names items that
/// exist: each `landermt_crate::…::name` is defined (fn, struct, enum, trait, type, const or
/// module) somewhere in that crate's sources, so a rename cannot leave the spec behind.
#[test]
fn every_item_the_method_tables_name_exists() {
    let root = root();
    let method = std::fs::read_to_string(root.join("docs/METHOD.md")).unwrap();
    let table = method.split("## Equations and the functions").nth(1).expect("METHOD.md has its function table");
    let mut missing = Vec::new();
    let mut checked = 0;
    for path in table.split('`').skip(1).step_by(2).filter(|s| s.starts_with("landermt_") && s.contains("::")) {
        let segments: Vec<&str> = path.split("::").collect();
        let krate = segments[0].replace('_', "-");
        let name = segments.last().unwrap().split(|c: char| !c.is_alphanumeric() && c != '_').next().unwrap();
        let src = root.join("crates").join(&krate).join("src");
        let mut defined = false;
        for (file, bytes) in common::files(&src, &|_| false).iter().filter(|(f, _)| f.ends_with(".rs")) {
            let text = String::from_utf8_lossy(bytes);
            let stem = Path::new(file).file_stem().unwrap().to_string_lossy().into_owned();
            defined |= stem == name || ["fn", "struct", "enum", "trait", "type", "const", "mod"].iter().any(|kw| text.contains(&format!("{kw} {name}")));
        }
        checked += 1;
        if !defined {
            missing.push(path.to_string());
        }
    }
    assert!(checked > 20, "only {checked} items read from METHOD.md's table");
    assert!(missing.is_empty(), "docs/METHOD.md names items that are not in the code: {missing:?}");
}
