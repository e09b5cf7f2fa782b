//! Replacing a whole directory of results (`report/`, `analysis/`) so that a reader, or a
//! command killed at any instant, sees the complete old directory or the complete new one.
//!
//! The new directory is built under a staging name `.NAME.new.PID` beside it and then
//! exchanged with the old one in one step (Linux `renameat2(RENAME_EXCHANGE)`); where the
//! file system cannot exchange, the old directory is first renamed to `.NAME.old.PID` and
//! put back by [`recover`] if the process dies before the new one is in place. Staging
//! directories of dead processes are removed. Names starting with a dot are never results.

use crate::error::{Error, Result};
use std::fs;
use std::path::{Path, PathBuf};

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::io(path, e)
}

fn parts(dest: &Path) -> Result<(&Path, String)> {
    let parent = dest.parent().unwrap_or(Path::new("."));
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .ok_or_else(|| Error::io(dest, std::io::Error::other("not a directory name")))?;
    Ok((parent, name))
}

/// The staging (`new`) and set-aside (`old`) directories of `dest` left by processes:
/// `(path, kind, pid)`.
fn leftovers(dest: &Path) -> Result<Vec<(PathBuf, String, u32)>> {
    let (parent, name) = parts(dest)?;
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(out);
    };
    let prefix = format!(".{name}.");
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(rest) = n.strip_prefix(&prefix) else {
            continue;
        };
        if let Some((kind, pid)) = rest.split_once('.') {
            if let (true, Ok(pid)) = (kind == "new" || kind == "old", pid.parse::<u32>()) {
                out.push((e.path(), kind.to_string(), pid));
            }
        }
    }
    Ok(out)
}

/// Puts back an old directory that a killed swap set aside, and removes the staging
/// directories of dead processes. Call before reading or replacing `dest`.
pub fn recover(dest: &Path) -> Result<()> {
    for (path, kind, pid) in leftovers(dest)? {
        if pid == std::process::id() || crate::fsio::process_alive(pid) {
            continue;
        }
        if kind == "old" && !dest.exists() {
            fs::rename(&path, dest).map_err(io(dest))?;
        } else {
            fs::remove_dir_all(&path).map_err(io(&path))?;
        }
    }
    Ok(())
}

/// [`recover`] for every directory of `dir` that a swap replaces (`report`, `analysis`):
/// what any command that opens a run directory does first.
pub fn recover_all(dir: &Path) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    let mut names = std::collections::BTreeSet::new();
    for e in entries.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        let Some(rest) = n.strip_prefix('.') else {
            continue;
        };
        for kind in [".new.", ".old."] {
            if let Some((name, pid)) = rest.rsplit_once(kind) {
                if !name.is_empty() && pid.parse::<u32>().is_ok() {
                    names.insert(name.to_string());
                }
            }
        }
    }
    for name in names {
        recover(&dir.join(name))?;
    }
    Ok(())
}

/// A fresh, empty staging directory for a new `dest`; refuses a `dest` that is a file.
pub fn stage(dest: &Path) -> Result<PathBuf> {
    recover(dest)?;
    if dest.exists() && !dest.is_dir() {
        return Err(Error::io(
            dest,
            std::io::Error::other(
                "a file is where grokscope keeps a directory of results: move it away",
            ),
        ));
    }
    let (parent, name) = parts(dest)?;
    let staged = parent.join(format!(".{name}.new.{}", std::process::id()));
    if staged.exists() {
        fs::remove_dir_all(&staged).map_err(io(&staged))?;
    }
    fs::create_dir_all(&staged).map_err(io(&staged))?;
    Ok(staged)
}

/// Removes a staging directory that will not be used (after a failure).
pub fn discard(staged: &Path) {
    let _ = fs::remove_dir_all(staged);
}

/// Hard-links (or, across devices, copies) every entry of `src` that `skip` does not name
/// into `dst`, recursively: what a replacement keeps of the old directory.
pub fn keep_others(src: &Path, dst: &Path, skip: &dyn Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = fs::read_dir(src) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().to_string();
        if name.starts_with('.') || skip(&name) {
            continue;
        }
        let (from, to) = (e.path(), dst.join(&name));
        if from.is_dir() {
            fs::create_dir_all(&to).map_err(io(&to))?;
            keep_others(&from, &to, &|_| false)?;
        } else if fs::hard_link(&from, &to).is_err() {
            fs::copy(&from, &to).map_err(io(&to))?;
        }
    }
    Ok(())
}

/// Makes the complete directory `staged` the new `dest`, in one step where the file system
/// allows it, and removes the old one.
pub fn swap_in(staged: &Path, dest: &Path) -> Result<()> {
    crate::fsio::fault_point("swap");
    if !dest.exists() {
        return fs::rename(staged, dest).map_err(io(dest));
    }
    if std::env::var_os("GROKSCOPE_NO_EXCHANGE").is_none() && exchange(staged, dest) {
        // `staged` now holds the old directory.
        crate::fsio::fault_point("remove-old");
        return fs::remove_dir_all(staged).map_err(io(staged));
    }
    let (parent, name) = parts(dest)?;
    let old = parent.join(format!(".{name}.old.{}", std::process::id()));
    fs::rename(dest, &old).map_err(io(dest))?;
    crate::fsio::fault_point("between-renames");
    fs::rename(staged, dest).map_err(io(dest))?;
    fs::remove_dir_all(&old).map_err(io(&old))
}

/// Exchanges two paths atomically; false where the system or file system cannot.
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let (Ok(ca), Ok(cb)) = (
        CString::new(a.as_os_str().as_bytes()),
        CString::new(b.as_os_str().as_bytes()),
    ) else {
        return false;
    };
    // SAFETY: two valid NUL-terminated paths; renameat2 only reads them.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> bool {
    false
}
