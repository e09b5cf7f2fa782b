//! The configs shipped with grokscope, by name: `default` (the built-in default experiment),
//! the paper's presets (`configs/paper/*.toml`) and those on real data (`configs/real/*.toml`): training configs for `grokscope train
//! --preset NAME`, and sweep files (`phase-*`) for `grokscope sweep run NAME --out DIR`.
//! Python's `grokscope.presets()` reads this same list.

use crate::error::{Error, Result};

/// The built-in default experiment (the regularization study at 500 epochs).
pub const DEFAULT_CONFIG: &str = include_str!("../../configs/default.toml");

/// docs/CONFIG.md, whose first TOML block lists every key with its default and meaning.
const CONFIG_REFERENCE: &str = include_str!("../../docs/CONFIG.md");

/// What `grokscope default-config` prints: the built-in default experiment, then every other
/// key with its default and meaning, commented out (docs/CONFIG.md's reference): a starting
/// point to edit. Read as TOML it is the default experiment.
pub fn commented_default() -> String {
    let block: Vec<&str> = CONFIG_REFERENCE
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .map(|b| b.lines().collect())
        .unwrap_or_default();
    let mut out = String::from(DEFAULT_CONFIG);
    out.push_str(
        "\n# ---------------------------------------------------------------------------\n# Every key, with its default and what it means (docs/CONFIG.md). Uncomment a line\n# under its [section] above (or add the section) to change it.\n#\n",
    );
    for l in block {
        out.push_str(if l.is_empty() { "#" } else { "# " });
        out.push_str(l);
        out.push('\n');
    }
    out
}

/// `(name, TOML text)` of every shipped config, `default` first, then by name.
pub const PRESETS: &[(&str, &str)] = &[
    ("default", DEFAULT_CONFIG),
    (
        "batchnorm",
        include_str!("../../configs/paper/batchnorm.toml"),
    ),
    (
        "fashion-wd",
        include_str!("../../configs/real/fashion-wd.toml"),
    ),
    (
        "grokking",
        include_str!("../../configs/paper/grokking.toml"),
    ),
    (
        "minibatch",
        include_str!("../../configs/paper/minibatch.toml"),
    ),
    (
        "phase-bn",
        include_str!("../../configs/paper/phase-bn.toml"),
    ),
    (
        "phase-bn-quick",
        include_str!("../../configs/paper/phase-bn-quick.toml"),
    ),
    (
        "phase-dropout",
        include_str!("../../configs/paper/phase-dropout.toml"),
    ),
    (
        "phase-dropout-quick",
        include_str!("../../configs/paper/phase-dropout-quick.toml"),
    ),
    (
        "phase-fashion-dropout",
        include_str!("../../configs/real/phase-fashion-dropout.toml"),
    ),
    (
        "phase-fashion-dropout-quick",
        include_str!("../../configs/real/phase-fashion-dropout-quick.toml"),
    ),
    (
        "phase-fashion-wd",
        include_str!("../../configs/real/phase-fashion-wd.toml"),
    ),
    (
        "phase-fashion-wd-quick",
        include_str!("../../configs/real/phase-fashion-wd-quick.toml"),
    ),
    (
        "phase-minibatch",
        include_str!("../../configs/paper/phase-minibatch.toml"),
    ),
    (
        "phase-minibatch-quick",
        include_str!("../../configs/paper/phase-minibatch-quick.toml"),
    ),
    (
        "phase-mnist5k-dropout",
        include_str!("../../configs/real/phase-mnist5k-dropout.toml"),
    ),
    (
        "phase-mnist5k-dropout-quick",
        include_str!("../../configs/real/phase-mnist5k-dropout-quick.toml"),
    ),
    (
        "phase-mnist5k-wd",
        include_str!("../../configs/real/phase-mnist5k-wd.toml"),
    ),
    (
        "phase-mnist5k-wd-quick",
        include_str!("../../configs/real/phase-mnist5k-wd-quick.toml"),
    ),
    (
        "phase-transformer",
        include_str!("../../configs/paper/phase-transformer.toml"),
    ),
    (
        "phase-transformer-quick",
        include_str!("../../configs/paper/phase-transformer-quick.toml"),
    ),
    (
        "phase-wd",
        include_str!("../../configs/paper/phase-wd.toml"),
    ),
    (
        "phase-wd-quick",
        include_str!("../../configs/paper/phase-wd-quick.toml"),
    ),
    ("pruning", include_str!("../../configs/paper/pruning.toml")),
    (
        "regularization",
        include_str!("../../configs/paper/regularization.toml"),
    ),
    (
        "regularization-wd20",
        include_str!("../../configs/paper/regularization-wd20.toml"),
    ),
    (
        "transformer-corrupted",
        include_str!("../../configs/paper/transformer-corrupted.toml"),
    ),
    (
        "transformer-fig12",
        include_str!("../../configs/paper/transformer-fig12.toml"),
    ),
    (
        "transformer-fig13",
        include_str!("../../configs/paper/transformer-fig13.toml"),
    ),
    (
        "transformer-fig7a",
        include_str!("../../configs/paper/transformer-fig7a.toml"),
    ),
    (
        "transformer-fig7a-quick",
        include_str!("../../configs/paper/transformer-fig7a-quick.toml"),
    ),
    (
        "transformer-grokking",
        include_str!("../../configs/paper/transformer-grokking.toml"),
    ),
];

/// Whether a preset is a sweep file (it has `[axes]`) rather than a training config.
pub fn is_sweep(text: &str) -> bool {
    text.lines().any(|l| l.trim() == "[axes]")
}

/// The text of the preset `name` (a trailing `.toml` and a leading `paper/` or `real/` are
/// ignored);
/// an error lists the presets there are.
pub fn preset(name: &str) -> Result<&'static str> {
    let key = name
        .strip_prefix("paper/")
        .or_else(|| name.strip_prefix("real/"))
        .unwrap_or(name);
    let key = key.strip_suffix(".toml").unwrap_or(key);
    PRESETS
        .iter()
        .find(|(n, _)| *n == key)
        .map(|(_, text)| *text)
        .ok_or_else(|| {
            let names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
            // Quoted (escapes shown, never sent to the terminal) and at most 80 characters.
            let shown: String = name.chars().take(80).collect();
            Error::Config(format!(
                "{shown:?}: no such preset (presets: {})",
                names.join(", ")
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_named_once_and_found() {
        let mut names: Vec<&str> = PRESETS.iter().map(|(n, _)| *n).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PRESETS.len());
        assert_eq!(
            preset("paper/minibatch.toml").unwrap(),
            preset("minibatch").unwrap()
        );
        let err = preset("nope").unwrap_err().to_string();
        assert!(
            err.contains("no such preset") && err.contains("default, "),
            "{err}"
        );
        assert!(is_sweep(preset("phase-wd-quick").unwrap()));
        assert!(!is_sweep(preset("default").unwrap()));
    }
}
