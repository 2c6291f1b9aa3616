//! Files read and written safely, one helper each, for every reader and writer in awxguard.
//!
//! Reading: [`open_regular`] opens a path only if it is a regular file, and checks again on the
//! opened descriptor (`fstat`), so a FIFO, a device or a socket swapped in between listing and
//! opening is never read (the open is non-blocking: a FIFO cannot hang it). [`read_capped`]
//! adds a size cap checked before reading (a 2 GB sparse file is refused by its size) and while
//! reading (a file that grows is still held to it).
//!
//! Writing: [`AtomicFile`] / [`write_atomic`] write a temporary file beside the target, `fsync`
//! it, rename it over the target and `fsync` the directory: a reader sees the old file or the
//! new one, never half of one, and a failure (full disk, size limit, read-only directory) leaves
//! the old file as it was and says so. New files are created owner-only (0600) unless the
//! caller says otherwise; a file that already exists keeps its mode. [`create_private_dir_all`]
//! makes directories 0700.
//!
//! Rank 0: uses nothing of the crate. Non-blocking open takes `libc::O_NONBLOCK` (the constant
//! only: the crate forbids unsafe code, and std's `File::metadata` is the `fstat`).

use std::fs::{File, Metadata};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Caps for the small files awxguard reads whole.
pub mod cap {
    /// `awxguard.toml` (100,000 keys fit in well under this).
    pub const CONFIG: u64 = 128 << 20;
    /// `.gitignore`, `.awxguardignore`, `.git/info/exclude`.
    pub const IGNORE_FILE: u64 = 4 << 20;
    /// A file holding one API key, password or URL.
    pub const SECRET_FILE: u64 = 64 << 10;
    /// A rule file (leak, privilege, anomaly, watch rules).
    pub const RULE_FILE: u64 = 4 << 20;
    /// A baseline (`scan --baseline`).
    pub const BASELINE: u64 = 64 << 20;
    /// A PEM bundle of CA certificates.
    pub const CERTIFICATES: u64 = 4 << 20;
    /// A simulator state file.
    pub const STATE: u64 = 64 << 20;
    /// A git index, `HEAD`, a ref or `packed-refs` (a million-file index is about 100 MiB).
    pub const GIT_METADATA: u64 = 1 << 30;
}

/// Why a file could not be read or written. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: is {kind}, not a regular file; not read", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error(
        "{}: {} is over the {} limit for {what}; not read",
        path.display(), human(*size), human(*max)
    )]
    TooLarge {
        path: PathBuf,
        size: u64,
        max: u64,
        what: &'static str,
    },
    #[error("{}: {what}: {source}", path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: io::Error,
    },
    #[error("{}: cannot write: {source}; {}", path.display(), unchanged(path, *existed))]
    Write {
        path: PathBuf,
        existed: bool,
        source: io::Error,
    },
}

fn unchanged(path: &Path, existed: bool) -> String {
    if existed {
        format!("the previous {} is unchanged", path.display())
    } else {
        "nothing was written".to_string()
    }
}

impl FileError {
    /// The error as an `io::Error` (for callers whose errors are I/O errors), its message kept.
    pub fn into_io(self) -> io::Error {
        let kind = match &self {
            FileError::Io { source, .. } | FileError::Write { source, .. } => source.kind(),
            FileError::NotRegular { .. } | FileError::TooLarge { .. } => {
                io::ErrorKind::InvalidInput
            }
        };
        io::Error::new(kind, self.to_string())
    }

    /// The underlying I/O error kind (`NotFound` for a missing file).
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            FileError::Io { source, .. } | FileError::Write { source, .. } => source.kind(),
            _ => io::ErrorKind::InvalidInput,
        }
    }
}

/// `1.5 MB`, `64 KiB`-style sizes for messages.
fn human(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} bytes");
    }
    let mut v = n as f64;
    let mut unit = "bytes";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// What a non-regular file is, for messages.
pub fn kind_of(meta: &Metadata) -> &'static str {
    let ft = meta.file_type();
    if ft.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if ft.is_char_device() {
            return "a character device";
        }
        if ft.is_block_device() {
            return "a block device";
        }
        if ft.is_socket() {
            return "a socket";
        }
    }
    if ft.is_file() {
        return "a regular file";
    }
    "a special file"
}

/// Opens `path` for reading only if it is a regular file (symbolic links followed): the type is
/// checked before opening (a device is never opened), the open is non-blocking (a FIFO swapped
/// in cannot hang it), and the opened descriptor is checked again (`fstat`), so whatever was
/// swapped in between is refused. Returns the file and its metadata (size included).
pub fn open_regular(path: &Path) -> Result<(File, Metadata), FileError> {
    let before = std::fs::metadata(path).map_err(|source| FileError::Io {
        path: path.to_path_buf(),
        what: "cannot read",
        source,
    })?;
    if !before.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&before),
        });
    }
    open_listed_regular(path)
}

/// `open_regular` for a path a directory listing just called a regular file (the tree scan's
/// walk): no `stat` before the open (one path lookup per file instead of two, on tens of
/// thousands of files), but the same non-blocking open and the same `fstat` check of the opened
/// descriptor, so a FIFO or device swapped in since the listing is refused, never read.
pub fn open_listed_regular(path: &Path) -> Result<(File, Metadata), FileError> {
    let io_err = |source| FileError::Io {
        path: path.to_path_buf(),
        what: "cannot read",
        source,
    };
    let mut opts = std::fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY);
    }
    let file = opts.open(path).map_err(io_err)?;
    let meta = file.metadata().map_err(io_err)?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(&meta),
        });
    }
    Ok((file, meta))
}

/// Reads a whole regular file of at most `max` bytes (`what` names it in messages: "ignore
/// files", "secret files"). A larger file is refused by its size before a byte is read.
pub fn read_capped(path: &Path, max: u64, what: &'static str) -> Result<Vec<u8>, FileError> {
    let (file, meta) = open_regular(path)?;
    read_open_capped(path, file, &meta, max, what)
}

/// `read_capped` for a file opened with `open_regular`.
pub fn read_open_capped(
    path: &Path,
    file: File,
    meta: &Metadata,
    max: u64,
    what: &'static str,
) -> Result<Vec<u8>, FileError> {
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        max,
        what,
    };
    if meta.len() > max {
        return Err(too_large(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    file.take(max + 1)
        .read_to_end(&mut buf)
        .map_err(|source| FileError::Io {
            path: path.to_path_buf(),
            what: "cannot read",
            source,
        })?;
    if buf.len() as u64 > max {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// `read_capped` for UTF-8 text.
pub fn read_text_capped(path: &Path, max: u64, what: &'static str) -> Result<String, FileError> {
    let bytes = read_capped(path, max, what)?;
    String::from_utf8(bytes).map_err(|_| FileError::Io {
        path: path.to_path_buf(),
        what: "cannot read",
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// Creates `dir` and any missing parents owner-only (0700). Existing directories are left as
/// they are.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A file being written in place of `target`: a temporary file beside it until [`commit`]
/// renames it over the target. Dropped without committing, the temporary file is removed and the
/// target is untouched.
///
/// [`commit`]: AtomicFile::commit
pub struct AtomicFile {
    target: PathBuf,
    tmp: PathBuf,
    file: Option<File>,
    existed: bool,
    /// The target is not a regular file (`/dev/stdout`, a FIFO someone reads): written directly,
    /// nothing to rename.
    direct: bool,
}

impl AtomicFile {
    /// Starts writing `target`. A new file gets `mode` (0600 for anything holding findings);
    /// an existing one keeps its own.
    pub fn create(target: &Path, mode: u32) -> Result<AtomicFile, FileError> {
        let werr = |existed, source| FileError::Write {
            path: target.to_path_buf(),
            existed,
            source,
        };
        let existing = std::fs::metadata(target).ok();
        if existing
            .as_ref()
            .is_some_and(|m| !m.is_file() && !m.is_dir())
        {
            // A device or a pipe: a stream, not a file to replace.
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(target)
                .map_err(|e| werr(false, e))?;
            return Ok(AtomicFile {
                target: target.to_path_buf(),
                tmp: PathBuf::new(),
                file: Some(file),
                existed: false,
                direct: true,
            });
        }
        if existing.as_ref().is_some_and(Metadata::is_dir) {
            return Err(werr(
                false,
                io::Error::new(io::ErrorKind::InvalidInput, "is a directory"),
            ));
        }
        let existed = existing.is_some();
        #[cfg(unix)]
        let mode = match &existing {
            Some(m) => {
                use std::os::unix::fs::PermissionsExt;
                m.permissions().mode() & 0o7777
            }
            None => mode,
        };
        let dir = match target.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = target
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "file".into());
        let tmp = dir.join(format!(
            ".{name}.{}.{}.tmp",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(mode);
        }
        let file = opts.open(&tmp).map_err(|e| werr(existed, e))?;
        #[cfg(unix)]
        {
            // The umask may have taken bits away; an existing file's mode is kept exactly.
            use std::os::unix::fs::PermissionsExt;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(mode));
        }
        Ok(AtomicFile {
            target: target.to_path_buf(),
            tmp,
            file: Some(file),
            existed,
            direct: false,
        })
    }

    fn fail(&self, source: io::Error) -> FileError {
        FileError::Write {
            path: self.target.clone(),
            existed: self.existed,
            source,
        }
    }

    /// Syncs the temporary file, renames it over the target and syncs the directory.
    pub fn commit(mut self) -> Result<(), FileError> {
        let mut file = self.file.take().expect("an uncommitted file is open");
        if self.direct {
            return file.flush().map_err(|e| self.fail(e));
        }
        if let Err(e) = file.flush().and_then(|_| file.sync_all()) {
            self.file = Some(file);
            return Err(self.fail(e));
        }
        drop(file);
        if let Err(e) = std::fs::rename(&self.tmp, &self.target) {
            return Err(self.fail(e));
        }
        self.tmp = PathBuf::new();
        if let Some(dir) = self.target.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// The target path.
    pub fn target(&self) -> &Path {
        &self.target
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.as_mut().expect("open until committed").write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.as_mut().expect("open until committed").flush()
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if !self.direct && !self.tmp.as_os_str().is_empty() {
            self.file.take();
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Writes `bytes` to `target` atomically (see [`AtomicFile`]); a new file gets `mode`.
pub fn write_atomic(target: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let mut f = AtomicFile::create(target, mode)?;
    if let Err(e) = f.write_all(bytes) {
        return Err(f.fail(e));
    }
    f.commit()
}

/// Whether `path` (which must exist) is readable by its group or by others.
#[cfg(unix)]
pub fn readable_by_others(meta: &Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o044 != 0
}

#[cfg(not(unix))]
pub fn readable_by_others(_meta: &Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_are_read_special_ones_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "hello").unwrap();
        assert_eq!(read_capped(&p, 10, "test files").unwrap(), b"hello");
        let err = read_capped(&p, 3, "test files").unwrap_err().to_string();
        assert!(
            err.ends_with("5 bytes is over the 3 bytes limit for test files; not read"),
            "{err}"
        );
        let err = read_capped(Path::new("/dev/zero"), 10, "x")
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "/dev/zero: is a character device, not a regular file; not read"
        );
        let err = read_capped(dir.path(), 10, "x").unwrap_err().to_string();
        assert!(err.contains("is a directory"), "{err}");
        #[cfg(unix)]
        {
            let fifo = dir.path().join("fifo");
            assert!(std::process::Command::new("mkfifo")
                .arg(&fifo)
                .status()
                .unwrap()
                .success());
            let err = read_capped(&fifo, 10, "x").unwrap_err().to_string();
            assert!(err.contains("is a FIFO (named pipe)"), "{err}");
            let link = dir.path().join("link");
            std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
            let err = read_capped(&link, 10, "x").unwrap_err().to_string();
            assert!(err.contains("is a character device"), "{err}");
        }
    }

    #[test]
    fn a_sparse_giant_is_refused_by_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sparse");
        let f = File::create(&p).unwrap();
        f.set_len(2 << 30).unwrap();
        let t = std::time::Instant::now();
        let err = read_capped(&p, 1 << 20, "ignore files")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("2 GiB is over the 1 MiB limit for ignore files"),
            "{err}"
        );
        assert!(t.elapsed() < std::time::Duration::from_secs(1));
    }

    #[test]
    fn atomic_writes_replace_whole_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("out.json");
        write_atomic(&p, b"one", 0o600).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o644, "an existing file keeps its mode");
        }
        // Dropped without commit: the old file stays, no temporary file is left.
        {
            let mut f = AtomicFile::create(&p, 0o600).unwrap();
            f.write_all(b"half").unwrap();
        }
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        // A directory that cannot be written: an error that says the old file is unchanged.
        let err = write_atomic(&dir.path().join("no/such/dir/x"), b"x", 0o600)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing was written"), "{err}");
    }

    #[test]
    fn private_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_private_dir_all(&d).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            for p in [dir.path().join("a"), d] {
                let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o700, "{}", p.display());
            }
        }
    }
}
