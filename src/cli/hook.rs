//! `awxguard hook`: installs the pre-commit hook that runs `awxguard scan --staged`, where git
//! looks for hooks (`git rev-parse --git-path hooks`, so `core.hooksPath` is honoured), and never
//! overwrites or removes a hook awxguard did not write unless told to.

use super::Context;
use crate::scan::git::Git;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};

/// The line that marks a hook as awxguard's.
pub const MARKER: &str = "# awxguard pre-commit hook";

/// Where a replaced foreign hook is kept, beside the hook.
const BACKUP: &str = "pre-commit.awxguard-backup";

#[derive(Debug, Subcommand)]
pub enum HookCommand {
    /// Write a pre-commit hook that blocks commits adding Airwallex credentials.
    Install(InstallArgs),
    /// Remove awxguard's pre-commit hook (and put back the hook it replaced, if any).
    Uninstall(RepoArg),
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Replace a pre-commit hook awxguard did not write (kept as pre-commit.awxguard-backup).
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub repo: RepoArg,
}

#[derive(Debug, Args)]
pub struct RepoArg {
    /// The repository (any directory inside its work tree).
    #[arg(value_name = "REPO", default_value = ".")]
    pub repo: PathBuf,
}

pub fn run(_ctx: &Context, cmd: HookCommand) -> anyhow::Result<u8> {
    match cmd {
        HookCommand::Install(a) => install(&a.repo.repo, a.force),
        HookCommand::Uninstall(a) => uninstall(&a.repo),
    }
}

/// The hooks directory git uses for `repo`.
fn hooks_dir(repo: &Path) -> anyhow::Result<PathBuf> {
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

fn install(repo: &Path, force: bool) -> anyhow::Result<u8> {
    let dir = hooks_dir(repo)?;
    let hook = dir.join("pre-commit");
    let mut verb = "installed";
    match std::fs::read(&hook) {
        Ok(bytes) if is_ours(&String::from_utf8_lossy(&bytes)) => verb = "updated",
        Ok(_) if !force => anyhow::bail!(
            "{} is a pre-commit hook awxguard did not write; left alone. Call `awxguard scan \
             --staged` from it, or run `awxguard hook install --force` to replace it (it is kept \
             as {BACKUP})",
            hook.display()
        ),
        Ok(_) => {
            let backup = dir.join(BACKUP);
            std::fs::rename(&hook, &backup)
                .with_context(|| format!("cannot move {} aside", hook.display()))?;
            say!("kept the previous hook as {}", backup.display());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", hook.display())),
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    crate::files::write_atomic(&hook, script().as_bytes(), 0o755)?;
    make_executable(&hook)?;
    say!("{verb} {} (runs `awxguard scan --staged`)", hook.display());
    Ok(0)
}

fn uninstall(repo: &Path) -> anyhow::Result<u8> {
    let dir = hooks_dir(repo)?;
    let hook = dir.join("pre-commit");
    match std::fs::read(&hook) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            say!("no pre-commit hook at {}; nothing to do", hook.display());
            return Ok(0);
        }
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", hook.display())),
        Ok(bytes) if !is_ours(&String::from_utf8_lossy(&bytes)) => anyhow::bail!(
            "{} is a pre-commit hook awxguard did not write; left alone",
            hook.display()
        ),
        Ok(_) => {}
    }
    std::fs::remove_file(&hook).with_context(|| format!("cannot remove {}", hook.display()))?;
    say!("removed {}", hook.display());
    let backup = dir.join(BACKUP);
    if backup.is_file() {
        std::fs::rename(&backup, &hook)
            .with_context(|| format!("cannot restore {}", backup.display()))?;
        say!("restored the previous hook from {}", backup.display());
    }
    Ok(0)
}

#[cfg(unix)]
fn make_executable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("cannot make {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_path: &Path) -> anyhow::Result<()> {
    Ok(())
}
