//! Every file operation a user relies on, at the bottom of the pipeline: run directories
//! (`rundir`), sweep directories (`sweep`) and reports write through these, safe for many
//! writers on a shared file system.
//!
//! - [`write_atomic`]: a flushed temporary file with a name unique to the writer, renamed into
//!   place. Readers see the old file or the new one; two writers never share a temporary.
//! - [`create_exclusive`]: a whole file created only if the name is free, by writing a unique
//!   temporary and hard-linking it to the name. `link` fails when the name exists, atomically,
//!   on local file systems, NFS (v2 and later: the classic NFS-safe lock file) and Lustre —
//!   no `flock`, no `O_EXCL` (unreliable on old NFS), and a reader never sees the file half
//!   written.
//!
//! - [`read_bytes`], [`read_text`]: a file read back, refused unless it is a regular file.
//!
//! **Fault injection (the test hooks).** With `GROKSCOPE_SWEEP_FAULT=N` in the environment the
//! process aborts (like `kill -9`: no clean-up, no destructors) just before its N-th sweep
//! file operation (each create, write, flush, rename, link, remove and directory creation
//! counts), so a test can stop a sweep at every file operation and check that the directory
//! it leaves resumes. `GROKSCOPE_SWEEP_FAULT_LOG=FILE` appends `N op path` for each operation. With
//! `GROKSCOPE_FAULT=NAME` it aborts at the named point `NAME` ([`fault_point`]: the steps of a
//! report's or analysis's swap). With `GROKSCOPE_DISK_FULL=NAME` every write of a file named
//! `NAME` fails as on a full disk.

use crate::error::{Error, Result};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

static OPS: AtomicU64 = AtomicU64::new(0);

struct Hook {
    fault_at: Option<u64>,
    log: Option<PathBuf>,
}

fn hook() -> &'static Hook {
    static HOOK: OnceLock<Hook> = OnceLock::new();
    HOOK.get_or_init(|| Hook {
        fault_at: std::env::var("GROKSCOPE_SWEEP_FAULT")
            .ok()
            .and_then(|v| v.trim().parse().ok()),
        log: std::env::var_os("GROKSCOPE_SWEEP_FAULT_LOG").map(PathBuf::from),
    })
}

/// Counts one file operation; aborts the process at the injected fault.
fn op(what: &str, path: &Path) {
    let h = hook();
    if h.fault_at.is_none() && h.log.is_none() {
        return;
    }
    let n = OPS.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(log) = &h.log {
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(log) {
            let _ = writeln!(f, "{n} {what} {}", path.display());
        }
    }
    if h.fault_at == Some(n) {
        std::process::abort();
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

/// A name for a temporary file beside `path`, unique to this process and call.
fn temp_name(path: &Path) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(
        ".{name}.{}.{}.{}.tmp",
        host_tag(),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ))
}

/// This machine's short host name (for temporary names and worker records).
pub fn host_tag() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        let raw = fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "host".into());
        let short = raw.trim().split('.').next().unwrap_or("host").to_string();
        sanitize(&short)
    })
}

/// Keeps `[A-Za-z0-9_-]`, replacing anything else by `_` (file-name safe everywhere).
pub fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() {
        "_".into()
    } else {
        out
    }
}

fn write_temp(path: &Path, bytes: &[u8]) -> Result<PathBuf> {
    let tmp = temp_name(path);
    op("create", &tmp);
    let mut f = fs::File::create(&tmp).map_err(io(&tmp))?;
    // A write that fails (a full disk) leaves no temporary behind.
    let written = (|| {
        op("write", &tmp);
        disk_full(path)?;
        f.write_all(bytes)?;
        op("fsync", &tmp);
        f.sync_all()
    })();
    if let Err(e) = written {
        drop(f);
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(&tmp, e));
    }
    Ok(tmp)
}

/// Replaces `path` with `bytes` atomically (a unique temporary, flushed, renamed into place).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(path, bytes)?;
    op("rename", path);
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// Creates `path` holding `bytes` if no file has that name; `Ok(false)` if one has. The file
/// appears whole or not at all.
pub fn create_exclusive(path: &Path, bytes: &[u8]) -> Result<bool> {
    let tmp = write_temp(path, bytes)?;
    op("link", path);
    let linked = fs::hard_link(&tmp, path);
    op("remove", &tmp);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// `mkdir -p`.
pub fn create_dir_all(path: &Path) -> Result<()> {
    if path.is_dir() {
        return Ok(());
    }
    if path.exists() {
        return Err(Error::BadFile {
            path: path.to_path_buf(),
            why: "exists and is not a directory (grokscope writes a directory of that name): move it away".into(),
        });
    }
    op("mkdir", path);
    fs::create_dir_all(path).map_err(io(path))
}

/// Whether a file can be created in `dir` (a read-only directory or file system says no):
/// a temporary is created and removed. A `dir` that does not exist yet: its nearest existing
/// ancestor is probed.
pub fn probe_writable(dir: &Path) -> std::io::Result<()> {
    let dir = dir
        .ancestors()
        .find(|a| a.as_os_str().is_empty() || a.is_dir())
        .unwrap_or(dir);
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let probe = temp_name(&dir.join("write-probe"));
    fs::File::create(&probe)?;
    fs::remove_file(&probe)
}

/// Removes a file; a missing one is fine.
pub fn remove_file(path: &Path) -> Result<()> {
    op("remove", path);
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io(path, e)),
        _ => Ok(()),
    }
}

/// Copies `from` to `to` through a unique temporary renamed into place.
pub fn copy_atomic(from: &Path, to: &Path) -> Result<()> {
    let tmp = temp_name(to);
    op("copy", &tmp);
    let copied = fs::copy(from, &tmp).and_then(|_| {
        op("rename", to);
        fs::rename(&tmp, to)
    });
    copied.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io(to, e)
    })
}

/// Writes `bytes` to `dir/name` atomically; refuses to replace an existing file unless
/// `replace`.
pub fn write_new(dir: &Path, name: &str, bytes: &[u8], replace: bool) -> Result<()> {
    let path = dir.join(name);
    if path.exists() && !replace {
        return Err(Error::FileExists(path));
    }
    write_atomic(&path, bytes)
}

/// Reads a file that must be a regular file (a FIFO or device would block or never end).
pub fn read_bytes(path: &Path) -> std::io::Result<Vec<u8>> {
    let meta = fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (a directory, FIFO or device)",
        ));
    }
    fs::read(path)
}

/// [`read_bytes`] as UTF-8 text.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    String::from_utf8(read_bytes(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Whether process `pid` of this machine is alive: it exists and is not a zombie (a killed
/// process whose parent has not reaped it holds nothing). True where it cannot be known
/// (no /proc).
pub fn process_alive(pid: u32) -> bool {
    if !Path::new("/proc/self").exists() {
        return true;
    }
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name in parentheses (which may hold spaces).
        Ok(stat) => stat
            .rsplit_once(") ")
            .and_then(|(_, rest)| rest.chars().next())
            .is_none_or(|state| !matches!(state, 'Z' | 'X')),
        Err(_) => false,
    }
}

/// Test hook: with `GROKSCOPE_FAULT=NAME`, the process aborts (as if killed) at the fault
/// point `NAME` (`swap`, `remove-old`, `between-renames`: the steps of a directory swap).
/// `GROKSCOPE_NO_EXCHANGE=1` makes swaps use the two-rename path of file systems that cannot
/// exchange two names.
pub fn fault_point(name: &str) {
    if std::env::var("GROKSCOPE_FAULT").is_ok_and(|f| f == name) {
        std::process::abort();
    }
}

/// Test hook: with `GROKSCOPE_DISK_FULL=NAME`, writing a file named `NAME` fails as on a
/// full disk (ENOSPC), after its temporary was created.
fn disk_full(path: &Path) -> std::io::Result<()> {
    let full = std::env::var_os("GROKSCOPE_DISK_FULL")
        .is_some_and(|n| path.file_name().is_some_and(|f| f == n.as_os_str()));
    match full {
        true => Err(std::io::Error::from_raw_os_error(28)),
        false => Ok(()),
    }
}

/// Whether `name` is one of this module's temporary files.
pub fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Removes temporary files in `dir` older than `age` seconds (left by killed writers; younger
/// ones may belong to a writer still at work).
pub fn remove_stale_temps(dir: &Path, age: f64) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if !is_temp(&name) {
            continue;
        }
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|d| d.as_secs_f64() > age);
        if old {
            remove_file(&e.path())?;
        }
    }
    Ok(())
}

/// Seconds since the Unix epoch.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
