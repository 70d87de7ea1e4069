//! A fresh clone has everything its documentation links: every relative link in
//! `README.md`, `docs/*.md` and every README below `kernel/`, `drivers/`, `boot/` and
//! `tests/` names a file or folder inside the repository, and a `#fragment` names a
//! heading of the page it points at. Host only; no QEMU.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Markdown pages whose links are checked, relative to the root.
fn pages() -> Vec<PathBuf> {
    let root = root();
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .map(|e| e.expect("docs/ entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(&root).expect("under the root").to_path_buf())
        .collect();
    docs.sort();
    pages.extend(docs);
    for dir in ["kernel", "drivers", "boot", "tests"] {
        readmes(&root, &root.join(dir), &mut pages);
    }
    pages
}

/// Every `README.md` below `dir`, skipping build output.
fn readmes(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = entries.map(|e| e.expect("entry").path()).collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n == "target") {
                continue;
            }
            readmes(root, &p, out);
        } else if p.file_name().is_some_and(|n| n == "README.md") {
            out.push(p.strip_prefix(root).expect("under the root").to_path_buf());
        }
    }
}

/// The Markdown text with fenced code blocks and code spans blanked out (links inside
/// code are not links).
fn without_code(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            out.push('\n');
            continue;
        }
        if fenced {
            out.push('\n');
            continue;
        }
        let mut in_span = false;
        for c in line.chars() {
            if c == '`' {
                in_span = !in_span;
                out.push(' ');
            } else {
                out.push(if in_span { ' ' } else { c });
            }
        }
        out.push('\n');
    }
    out
}

/// The targets of the inline links and images in `text` (`[..](target)`,
/// `![..](target)`, with an optional `"title"`), and of reference definitions
/// (`[name]: target`).
fn link_targets(text: &str) -> Vec<String> {
    let text = without_code(text);
    let mut targets = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(off) = text[i..].find("](") {
        let start = i + off + 2;
        let mut depth = 0;
        let mut end = start;
        while end < bytes.len() {
            match bytes[end] {
                b'(' => depth += 1,
                b')' if depth == 0 => break,
                b')' => depth -= 1,
                b'\n' => break,
                _ => {}
            }
            end += 1;
        }
        let inner = text[start..end].trim();
        let target = inner.split_whitespace().next().unwrap_or("");
        targets.push(target.trim_matches(|c| c == '<' || c == '>').to_string());
        i = end;
    }
    for line in text.lines() {
        let l = line.trim_start();
        if let Some(rest) = l.strip_prefix('[')
            && let Some(close) = rest.find("]:")
        {
            let target = rest[close + 2..].split_whitespace().next().unwrap_or("");
            targets.push(target.to_string());
        }
    }
    targets
}

/// The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces
/// as hyphens, repeats numbered.
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let title = line.trim_start_matches('#');
        if !title.starts_with(' ') {
            continue;
        }
        let slug: String = title
            .trim()
            .to_lowercase()
            .chars()
            .filter_map(|c| match c {
                ' ' => Some('-'),
                c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
                _ => None,
            })
            .collect();
        let mut name = slug.clone();
        let mut n = 1;
        while seen.contains(&name) {
            name = format!("{slug}-{n}");
            n += 1;
        }
        seen.insert(name);
    }
    seen
}

/// `path` with `.` and `..` resolved lexically; `None` if it climbs above its start.
fn normalise(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Normal(p) => out.push(p),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// What is wrong with `target`, linked from `page`, if anything.
fn check(root: &Path, page: &Path, target: &str) -> Option<String> {
    if target.is_empty()
        || target.starts_with("http://")
        || target.starts_with("https://")
        || target.starts_with("mailto:")
    {
        return None;
    }
    if target.contains("://") || target.starts_with('/') {
        return Some(format!("'{target}' is not a path inside the repository"));
    }
    let (path, fragment) = match target.split_once('#') {
        Some((p, f)) => (p, Some(f)),
        None => (target, None),
    };
    let resolved = if path.is_empty() {
        page.to_path_buf()
    } else {
        let joined = page.parent().unwrap_or(Path::new("")).join(path);
        match normalise(&joined) {
            Some(p) => p,
            None => return Some(format!("'{target}' points outside the repository")),
        }
    };
    let on_disk = root.join(&resolved);
    if !on_disk.exists() {
        return Some(format!(
            "'{target}' names {}, which a clone does not contain",
            resolved.display()
        ));
    }
    if let Some(fragment) = fragment
        && resolved.extension().is_some_and(|e| e == "md")
        && !fragment.is_empty()
    {
        let text = std::fs::read_to_string(&on_disk).expect("read the linked page");
        if !anchors(&text).contains(fragment) {
            return Some(format!(
                "'{target}': {} has no heading whose anchor is #{fragment}",
                resolved.display()
            ));
        }
    }
    None
}

#[test]
fn every_relative_link_in_the_docs_resolves_inside_the_repository() {
    let root = root();
    let pages = pages();
    assert!(
        pages.len() > 10,
        "expected the README, docs/ and the crate READMEs, found {pages:?}"
    );
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(root.join(page)).expect("read page");
        for target in link_targets(&text) {
            if let Some(why) = check(&root, page, &target) {
                broken.push(format!("{}: {why}", page.display()));
            }
        }
    }
    assert!(
        broken.is_empty(),
        "{} broken link(s):\n{}",
        broken.len(),
        broken.join("\n")
    );
}

#[test]
fn the_checker_finds_what_it_must() {
    let root = root();
    let page = Path::new("docs/architecture.md");
    assert_eq!(check(&root, page, "testing.md"), None);
    assert_eq!(check(&root, page, "../kernel/sync/README.md"), None);
    assert_eq!(check(&root, page, "#the-lock-order"), None);
    assert!(check(&root, page, "../../shared/DESIGN.md").is_some());
    assert!(check(&root, page, "../../../../etc/passwd").is_some());
    assert!(check(&root, page, "no-such-page.md").is_some());
    assert!(check(&root, page, "testing.md#no-such-heading").is_some());
    assert_eq!(
        link_targets("a [x](a.md) `[y](b.md)` ![i](c.svg \"t\")\n```\n[z](d.md)\n```\n[r]: e.md"),
        ["a.md", "c.svg", "e.md"]
    );
    assert!(anchors("## Interrupt remapping (VT-d)\n").contains("interrupt-remapping-vt-d"));
    assert!(anchors("## `sluice debug`\n").contains("sluice-debug"));
}
