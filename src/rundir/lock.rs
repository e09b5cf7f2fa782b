//! `.lock`: a run directory held by one live process at a time.

use super::paths::{RunDir, LOCK};
use crate::error::{Error, Result};
use crate::fsio::process_alive;
use std::fs;
use std::io::Write;
use std::path::PathBuf;

/// A run directory held by this process; dropping it releases the run.
pub struct RunLock {
    path: PathBuf,
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

impl RunDir {
    /// Refuses a run that another live process holds (its `.lock`).
    pub fn check_not_in_use(&self) -> Result<()> {
        let path = self.path.join(LOCK);
        let pid = fs::read_to_string(&path).unwrap_or_default();
        let pid = pid.trim();
        let alive = pid.parse::<u32>().is_ok_and(process_alive);
        if alive && pid != std::process::id().to_string() {
            return Err(self.bad_file(
                LOCK,
                format!("the run is in use by process {pid} (remove this file if that process is not grokscope)"),
            ));
        }
        Ok(())
    }

    /// Takes the run for this process (`.lock` with its pid); refuses while another live
    /// process holds it. Released when the guard is dropped.
    pub fn lock(&self) -> Result<RunLock> {
        let path = self.path.join(LOCK);
        for _ in 0..2 {
            match fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .map_err(|e| Error::io(&path, e))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    self.check_not_in_use()?;
                    // A lock left by a process that died: take it over.
                    fs::remove_file(&path).map_err(|e| Error::io(&path, e))?;
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
        Err(self.bad_file(LOCK, "cannot take the lock"))
    }
}
