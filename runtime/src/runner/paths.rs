//! Refuses a run whose files overlap: `--output` naming the input (spelled differently,
//! through a symlink or a hard link) would empty it before the first read.

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

/// How deep dangling symlinks are followed before giving up (as the kernel's ELOOP).
const MAX_LINKS: u32 = 40;

/// Two paths of a run that name one file, or a file inside the checkpoint store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathClash {
    /// Two flags name the same file.
    SameFile {
        /// First flag and its path.
        a: (String, PathBuf),
        /// Second flag and its path.
        b: (String, PathBuf),
    },
    /// A file flag names the checkpoint directory or a file inside its `checkpoints/`.
    InCheckpointDir {
        /// The flag and its path.
        file: (String, PathBuf),
        /// The checkpoint directory.
        dir: PathBuf,
    },
}

impl fmt::Display for PathClash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathClash::SameFile { a, b } => write!(
                f,
                "{} ({}) and {} ({}) are the same file: refusing to start, since writing one would destroy the other; give each its own path",
                a.0,
                a.1.display(),
                b.0,
                b.1.display()
            ),
            PathClash::InCheckpointDir { file, dir } => write!(
                f,
                "{} ({}) lies in the checkpoint directory {}, whose files the program writes and deletes: refusing to start; put it elsewhere",
                file.0,
                file.1.display(),
                dir.display()
            ),
        }
    }
}

impl std::error::Error for PathClash {}

/// Where a path leads: its resolved absolute path and, if it exists, its file identity.
#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    id: Option<(u64, u64)>,
}

impl Resolved {
    fn same(&self, other: &Resolved) -> bool {
        self.path == other.path || (self.id.is_some() && self.id == other.id)
    }
}

/// Checks that the `files` (flag, path) are pairwise different files, and that none is
/// `checkpoint_dir` or lies in its `checkpoints/` tree. Opens nothing for writing.
pub fn check_distinct(
    files: &[(&str, &Path)],
    checkpoint_dir: Option<&Path>,
) -> Result<(), PathClash> {
    let resolved: Vec<Resolved> = files.iter().map(|(_, p)| resolve(p)).collect();
    let named = |i: usize| (files[i].0.to_string(), files[i].1.to_path_buf());
    for i in 0..files.len() {
        for j in i + 1..files.len() {
            if resolved[i].same(&resolved[j]) {
                return Err(PathClash::SameFile {
                    a: named(i),
                    b: named(j),
                });
            }
        }
    }
    if let Some(dir) = checkpoint_dir {
        let root = resolve(dir);
        let tree = root.path.join("checkpoints");
        for (i, r) in resolved.iter().enumerate() {
            if r.same(&root) || r.path.starts_with(&tree) {
                return Err(PathClash::InCheckpointDir {
                    file: named(i),
                    dir: dir.to_path_buf(),
                });
            }
        }
    }
    Ok(())
}

/// Resolves `p` as opening it for writing would: through symlinks (dangling ones too),
/// and for a file not yet created, through its nearest existing ancestor.
fn resolve(p: &Path) -> Resolved {
    let abs = std::env::current_dir()
        .map(|d| d.join(p))
        .unwrap_or_else(|_| p.to_path_buf());
    resolve_at(&abs, 0)
}

fn resolve_at(abs: &Path, depth: u32) -> Resolved {
    if let Ok(meta) = fs::metadata(abs) {
        return Resolved {
            path: fs::canonicalize(abs).unwrap_or_else(|_| abs.to_path_buf()),
            id: Some(identity(&meta)),
        };
    }
    if depth < MAX_LINKS {
        if let Some(target) = dangling_target(abs) {
            return resolve_at(&target, depth + 1);
        }
    }
    // Not there yet: the nearest existing ancestor decides where it will be created.
    let mut base = abs;
    let mut rest: Vec<&OsStr> = Vec::new();
    while fs::symlink_metadata(base).is_err() {
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name);
                base = parent;
            }
            _ => break,
        }
    }
    let mut path = fs::canonicalize(base).unwrap_or_else(|_| base.to_path_buf());
    path.extend(rest.iter().rev());
    Resolved { path, id: None }
}

/// The target of `p` if it is a symlink to nothing (opening it would create the target).
fn dangling_target(p: &Path) -> Option<PathBuf> {
    let meta = fs::symlink_metadata(p).ok()?;
    if !meta.file_type().is_symlink() {
        return None;
    }
    let target = fs::read_link(p).ok()?;
    Some(match p.parent() {
        Some(parent) if target.is_relative() => parent.join(target),
        _ => target,
    })
}

#[cfg(unix)]
fn identity(meta: &fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &fs::Metadata) -> (u64, u64) {
    // No inode numbers in std here: the canonical path alone decides.
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clash(files: &[(&str, &Path)], ckpt: Option<&Path>) -> Option<String> {
        check_distinct(files, ckpt).err().map(|e| e.to_string())
    }

    #[test]
    fn different_spellings_symlinks_and_hard_links_are_one_file() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir(d.join("sub")).unwrap();
        let input = d.join("in.jsonl");
        fs::write(&input, b"x\n").unwrap();
        let dotted = d.join("sub/../in.jsonl");
        let link = d.join("link.jsonl");
        #[cfg(unix)]
        std::os::unix::fs::symlink(&input, &link).unwrap();
        let hard = d.join("hard.jsonl");
        fs::hard_link(&input, &hard).unwrap();
        for out in [input.clone(), dotted, d.join("./in.jsonl"), link, hard] {
            let msg = clash(&[("--input", &input), ("--output", &out)], None)
                .unwrap_or_else(|| panic!("{} not refused", out.display()));
            assert!(msg.contains("are the same file"), "{msg}");
            assert!(msg.starts_with("--input ("), "{msg}");
        }
        assert_eq!(
            clash(
                &[("--input", &input), ("--output", &d.join("out.jsonl"))],
                None
            ),
            None
        );
    }

    #[test]
    fn files_not_yet_created_compare_by_where_they_will_be() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        fs::create_dir(d.join("sub")).unwrap();
        let a = d.join("out.jsonl");
        let b = d.join("sub/../out.jsonl");
        assert!(clash(&[("--output", &a), ("--late-output", &b)], None).is_some());
        // A dangling symlink: opening it creates its target.
        #[cfg(unix)]
        {
            let link = d.join("late-link");
            std::os::unix::fs::symlink("sub/target", &link).unwrap();
            let target = d.join("sub/target");
            assert!(clash(&[("--output", &target), ("--late-output", &link)], None).is_some());
        }
        let other = d.join("missing-dir/out.jsonl");
        assert!(clash(&[("--output", &a), ("--late-output", &other)], None).is_none());
    }

    #[test]
    fn files_in_the_checkpoint_tree_are_refused() {
        let t = tempfile::tempdir().unwrap();
        let d = t.path();
        let ckpt = d.join("ckpt");
        let inside = ckpt.join("checkpoints/app/latest.json");
        let msg = clash(&[("--output", &inside)], Some(&ckpt)).unwrap();
        assert!(msg.contains("lies in the checkpoint directory"), "{msg}");
        assert!(clash(&[("--output", &ckpt)], Some(&ckpt)).is_some());
        fs::create_dir_all(ckpt.join("checkpoints")).unwrap();
        let spelled = d.join("ckpt/../ckpt/checkpoints/x");
        assert!(clash(&[("--late-output", &spelled)], Some(&ckpt)).is_some());
        // Next to the store is fine.
        assert!(clash(&[("--output", &ckpt.join("out.jsonl"))], Some(&ckpt)).is_none());
    }
}
