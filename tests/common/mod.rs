//! Helpers shared by the integration tests.

use std::path::Path;
use std::process::{Command, Output};

/// Runs the `grokscope` binary with `args` in `cwd`.
pub fn grokscope(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_grokscope"))
        .args(args)
        .current_dir(cwd)
        .output()
        .expect("binary runs")
}
