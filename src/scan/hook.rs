//! The git pre-commit hook that runs `awxguard scan --staged`: written where git looks for hooks
//! (`git rev-parse --git-path hooks`, so `core.hooksPath` is honoured), never overwriting or
//! removing a hook awxguard did not write unless told to.

use super::git::{Git, GitError};
use std::path::{Path, PathBuf};

/// The line that marks a hook as awxguard's.
pub const MARKER: &str = "# awxguard pre-commit hook";

/// Where a replaced foreign hook is kept, beside the hook.
const BACKUP: &str = "pre-commit.awxguard-backup";

/// Why the hook could not be installed or removed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Write(#[from] crate::files::FileError),
    #[error(
        "{} is a pre-commit hook awxguard did not write; left alone. Call `awxguard scan \
         --staged` from it, or run `awxguard hook install --force` to replace it (it is kept \
         as {BACKUP})",
        .0.display()
    )]
    Foreign(PathBuf),
    #[error("{} is a pre-commit hook awxguard did not write; left alone", .0.display())]
    ForeignKept(PathBuf),
    #[error("{message}")]
    Io {
        message: String,
        #[source]
        source: std::io::Error,
    },
}

/// `cannot read PATH`; `{}` in `what` stands for the path (`cannot move {} aside`).
fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HookError {
    let shown = path.display().to_string();
    let message = if what.contains("{}") {
        format!("cannot {}", what.replace("{}", &shown))
    } else {
        format!("cannot {what} {shown}")
    };
    move |source| HookError::Io { message, source }
}

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub hook: PathBuf,
    /// `installed` or `updated` (awxguard's own hook rewritten).
    pub verb: &'static str,
    /// Where a foreign hook replaced with `force` was kept.
    pub backup: Option<PathBuf>,
}

/// What `uninstall` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uninstalled {
    /// No hook there.
    Nothing(PathBuf),
    /// Removed, and the hook it had replaced put back, if any.
    Removed {
        hook: PathBuf,
        restored: Option<PathBuf>,
    },
}

/// The hooks directory git uses for `repo`.
fn hooks_dir(repo: &Path) -> Result<PathBuf, HookError> {
    let git = Git::new(repo);
    git.check_repository()?;
    let out = git.output(&["rev-parse", "--git-path", "hooks"])?;
    let dir = PathBuf::from(String::from_utf8_lossy(&out).trim_end_matches('\n'));
    Ok(if dir.is_absolute() || repo == Path::new(".") {
        dir
    } else {
        repo.join(dir)
    })
}

fn is_ours(text: &str) -> bool {
    text.lines().any(|l| l.trim_end() == MARKER)
}

/// The hook script: this binary by its absolute path when it is still there, else `awxguard`
/// from PATH.
pub fn script() -> String {
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| p.to_str().map(str::to_string))
        .unwrap_or_else(|| "awxguard".into());
    let quoted = format!("'{}'", exe.replace('\'', r"'\''"));
    format!(
        "#!/bin/sh\n\
         {MARKER}\n\
         # Blocks commits that add Airwallex API keys or access tokens. Installed by\n\
         # `awxguard hook install`; remove with `awxguard hook uninstall`. A line holding\n\
         # `awxguard:allow` is not reported.\n\
         AWXGUARD={quoted}\n\
         [ -x \"$AWXGUARD\" ] || AWXGUARD=awxguard\n\
         \"$AWXGUARD\" scan --staged --color never\n\
         code=$?\n\
         [ $code -eq 1 ] && echo \"awxguard: commit blocked: the staged change adds the credential(s) \
         above. Take them out (and rotate any key that was ever pushed or shared); for a test \
         fixture, put awxguard:allow on its line.\" >&2\n\
         exit $code\n"
    )
}

/// Writes (or updates) the hook in `repo`; a foreign hook is replaced only with `force`, and kept.
pub fn install(repo: &Path, force: bool) -> Result<Installed, HookError> {
    let dir = hooks_dir(repo)?;
    let hook = dir.join("pre-commit");
    let mut verb = "installed";
    let mut backup = None;
    match std::fs::read(&hook) {
        Ok(bytes) if is_ours(&String::from_utf8_lossy(&bytes)) => verb = "updated",
        Ok(_) if !force => return Err(HookError::Foreign(hook)),
        Ok(_) => {
            let b = dir.join(BACKUP);
            std::fs::rename(&hook, &b).map_err(io("move {} aside", &hook))?;
            backup = Some(b);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io("read", &hook)(e)),
    }
    std::fs::create_dir_all(&dir).map_err(io("create", &dir))?;
    crate::files::write_atomic(&hook, script().as_bytes(), 0o755)?;
    make_executable(&hook)?;
    Ok(Installed { hook, verb, backup })
}

/// Removes awxguard's hook from `repo` (never a foreign one) and puts back the hook it replaced.
pub fn uninstall(repo: &Path) -> Result<Uninstalled, HookError> {
    let dir = hooks_dir(repo)?;
    let hook = dir.join("pre-commit");
    match std::fs::read(&hook) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Uninstalled::Nothing(hook))
        }
        Err(e) => return Err(io("read", &hook)(e)),
        Ok(bytes) if !is_ours(&String::from_utf8_lossy(&bytes)) => {
            return Err(HookError::ForeignKept(hook))
        }
        Ok(_) => {}
    }
    std::fs::remove_file(&hook).map_err(io("remove", &hook))?;
    let backup = dir.join(BACKUP);
    let mut restored = None;
    if backup.is_file() {
        std::fs::rename(&backup, &hook).map_err(io("restore", &backup))?;
        restored = Some(backup);
    }
    Ok(Uninstalled::Removed { hook, restored })
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<(), HookError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .map_err(io("make {} executable", path))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> Result<(), HookError> {
    Ok(())
}
