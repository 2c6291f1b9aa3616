//! How a secret is stored: the file's mode (world or group readable) and whether it sits inside
//! a git work tree, where one `git add .` publishes it.

use super::Storage;
use std::path::{Path, PathBuf};

/// The top of the git work tree `path` is in: the nearest ancestor directory holding `.git`
/// (a directory, or a file for worktrees and submodules).
pub fn git_work_tree(path: &Path) -> Option<PathBuf> {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let abs = abs.canonicalize().unwrap_or(abs);
    let mut dir = if abs.is_dir() {
        Some(abs.as_path())
    } else {
        abs.parent()
    };
    while let Some(d) = dir {
        if d.join(".git").exists() {
            return Some(d.to_path_buf());
        }
        dir = d.parent();
    }
    None
}

/// Fills the file facts of `storage` from the file at `path` (missing files leave them unset).
pub fn inspect(path: &Path, storage: &mut Storage) {
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_file() {
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = meta.permissions().mode() & 0o7777;
                storage.file_mode = Some(mode);
                storage.world_readable = mode & 0o004 != 0;
                storage.group_readable = mode & 0o040 != 0;
            }
        }
    }
    storage.in_git_work_tree = git_work_tree(path);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::SecretSource;

    #[test]
    fn mode_and_work_tree() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("repo/.git")).unwrap();
        std::fs::create_dir_all(dir.path().join("repo/conf")).unwrap();
        let inside = dir.path().join("repo/conf/k");
        let outside = dir.path().join("k");
        std::fs::write(&inside, "x").unwrap();
        std::fs::write(&outside, "x").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o644)).unwrap();
            std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let blank = || Storage {
            source: SecretSource::Literal { accepted: false },
            file_mode: None,
            world_readable: false,
            group_readable: false,
            in_git_work_tree: None,
            plaintext_locations: vec![],
        };
        let mut s = blank();
        inspect(&inside, &mut s);
        assert_eq!(s.file_mode, Some(0o644));
        assert!(s.world_readable && s.group_readable);
        assert_eq!(
            s.in_git_work_tree,
            Some(dir.path().join("repo").canonicalize().unwrap())
        );
        let mut s = blank();
        inspect(&outside, &mut s);
        assert_eq!(s.file_mode, Some(0o600));
        assert!(!s.world_readable && !s.group_readable);
    }
}
