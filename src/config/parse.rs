//! A config from TOML text and `--set key=value` overrides, with errors in the words of the
//! config file, and whom to blame for an error (the file, or an override).

use super::schema::{Config, MLP_KEYS, SECTIONS};
use crate::error::{Error, Result};

impl Config {
    /// A config from a TOML table.
    pub fn from_table(table: &toml::Table) -> Result<Config> {
        check_sections(table)?;
        table
            .clone()
            .try_into()
            .map_err(|e: toml::de::Error| Error::Config(plain(e.message())))
    }

    /// Parses a config from TOML text, applying `key=value` overrides first.
    pub fn from_toml(text: &str, sets: &[String]) -> Result<Config> {
        Config::from_toml_noted(text, sets).map(|(c, _)| c)
    }

    /// As [`Config::from_toml`], with notes on what the overrides replaced: `--set
    /// train.steps=N` on a config that gives `train.epochs` replaces it (and the reverse),
    /// unless the overrides give both.
    ///
    /// Errors name the line and column of `text`, or the `--set` as typed.
    pub fn from_toml_noted(text: &str, sets: &[String]) -> Result<(Config, Vec<String>)> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| Error::Config(located(text, &e)))?;
        check_sections(&table)?;
        if sets.is_empty() {
            let cfg = toml::from_str(text).map_err(|e| Error::Config(located(text, &e)))?;
            return Ok((cfg, legacy_note(&table).into_iter().collect()));
        }
        let mut notes = Vec::new();
        let set_keys: Vec<&str> = sets
            .iter()
            .filter_map(|s| s.split_once('=').map(|(k, _)| k.trim()))
            .collect();
        for (given, other) in [("steps", "epochs"), ("epochs", "steps")] {
            let (gk, ok) = (format!("train.{given}"), format!("train.{other}"));
            if set_keys.contains(&gk.as_str()) && !set_keys.contains(&ok.as_str()) {
                let train = table.get_mut("train").and_then(|t| t.as_table_mut());
                if let Some(old) = train.and_then(|t| t.remove(other)) {
                    notes.push(format!(
                        "--set {gk} replaces the config's {ok} = {old} as the run's length"
                    ));
                }
            }
        }
        notes.extend(legacy_note(&table));
        hoist_legacy(&mut table)?;
        for s in sets {
            if let Some(k) = s.split_once('=').map(|(k, _)| k.trim()) {
                if let Some(new) = k.strip_prefix("model.").filter(|k| MLP_KEYS.contains(k)) {
                    notes.push(format!(
                        "--set {k} is read as model.mlp.{new} (the MLP's keys are in [model.mlp])"
                    ));
                }
            }
        }
        let base = table.clone();
        for s in sets {
            apply_set(&mut table, s)?;
        }
        match Config::from_table(&table) {
            Ok(cfg) => Ok((cfg, notes)),
            Err(merged) => {
                // Whose error is it: the file's, or the first `--set` after which the
                // config no longer reads?
                toml::from_str::<Config>(text).map_err(|e| Error::Config(located(text, &e)))?;
                let mut t = base;
                for s in sets {
                    apply_set(&mut t, s)?;
                    if let Err(Error::Config(why)) = Config::from_table(&t) {
                        return Err(Error::Set {
                            set: s.clone(),
                            why,
                        });
                    }
                }
                Err(merged)
            }
        }
    }
}

/// Sets the dotted `key` (e.g. `train.weight_decay`) of a TOML table to `value`, creating
/// intermediate tables. The MLP's keys in release 0.1 (`model.width`) set the key of
/// `[model.mlp]` (a table with the old layout is first brought to the new one:
/// [`hoist_legacy`]).
pub fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let canonical = key
        .trim()
        .strip_prefix("model.")
        .filter(|k| MLP_KEYS.contains(&k.trim()))
        .map(|_| canonical_key(key));
    if canonical.is_some() || key.trim().starts_with("model.mlp.") {
        hoist_legacy(table)?;
    }
    let key = canonical.as_deref().unwrap_or(key);
    let parts: Vec<&str> = key.split('.').map(str::trim).collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(Error::Config(format!("empty part in key `{key}`")));
    }
    let mut cur = table;
    for part in &parts[..parts.len() - 1] {
        let entry = cur
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        cur = entry.as_table_mut().ok_or_else(|| {
            Error::Config(format!(
                "`{part}` of `{key}` is a value, not a table of keys"
            ))
        })?;
    }
    cur.insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

/// Applies `a.b.c=value` to a TOML table; `value` is read as TOML (`5`, `[0, 5]`, `true`,
/// `"add"`) and, failing that, as a bare string.
fn apply_set(table: &mut toml::Table, set: &str) -> Result<()> {
    let bad = |why: String| Error::Set {
        set: set.replace('\n', "\\n").replace('\r', "\\r"),
        why,
    };
    let (key, raw) = set
        .split_once('=')
        .ok_or_else(|| bad("expected KEY=VALUE, e.g. train.weight_decay=5".into()))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|k| k.trim().is_empty()) {
        return Err(bad("empty key (or an empty part between dots)".into()));
    }
    if SECTIONS.iter().any(|(name, _)| *name == key) || raw.trim_start().starts_with('{') {
        return Err(bad(format!(
            "set one key at a time (e.g. {key}.KEY=VALUE), not a whole table"
        )));
    }
    if raw.contains(['\n', '\r']) {
        return Err(bad("a value is one line (one --set per key)".into()));
    }
    let value = match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(t) if t.len() == 1 && t.contains_key("v") => t["v"].clone(),
        Ok(_) => return Err(bad("one value per --set".into())),
        Err(_) if looks_numeric(raw) => {
            return Err(bad(format!(
                "{} is not a number TOML can hold (integers are 64-bit, up to 9223372036854775807; floats up to about 1.8e308)",
                raw.trim()
            )))
        }
        Err(_) => toml::Value::String(raw.trim().to_string()),
    };
    set_path(table, key, value).map_err(|e| match e {
        Error::Config(why) => bad(why),
        e => e,
    })
}

/// The sections of a config are tables: serde would read an array by position.
fn check_sections(table: &toml::Table) -> Result<()> {
    for (name, _) in SECTIONS {
        let v = name
            .split('.')
            .try_fold(None::<&toml::Value>, |at, part| {
                let t = match at {
                    None => table,
                    Some(v) => v.as_table()?,
                };
                Some(t.get(part))
            })
            .flatten();
        if let Some(v) = v.filter(|v| !v.is_table()) {
            return Err(Error::Config(format!(
                "`{name}` must be a table of settings ([{name}] with keys), got {} {v}",
                v.type_str()
            )));
        }
    }
    Ok(())
}

/// Whether `raw` is meant as a number: digits with an optional sign, point and exponent.
fn looks_numeric(raw: &str) -> bool {
    let t = raw.trim().trim_start_matches(['-', '+']);
    !t.is_empty()
        && t.starts_with(|c: char| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || "._eE+-".contains(c))
}

/// A serde message in the words of the config file: sections, not Rust types.
fn plain(message: &str) -> String {
    let mut m = message.to_string();
    for (name, rust) in SECTIONS {
        let ty = rust().rsplit("::").next().unwrap_or_default();
        m = m.replace(&format!("struct {ty}"), &format!("the table [{name}]"));
    }
    for (rust, toml) in [("struct Config", "a config"), ("unit variant", "a value")] {
        m = m.replace(rust, toml);
    }
    m
}

/// Where an error about a config came from: the error names it itself (a `--set`, a memory
/// limit), the `--set` that set the key it is about, or the config file.
pub enum Blame<'a> {
    Itself,
    Set(&'a str),
    Source,
}

/// The key in release 0.1 of a key of the MLP's table (`model.mlp.width` → `model.width`).
fn legacy_key(key: &str) -> Option<String> {
    let k = key.strip_prefix("model.mlp.")?;
    MLP_KEYS.contains(&k).then(|| format!("model.{k}"))
}

/// A dotted key in the layout of today: the MLP's keys of release 0.1 (`model.width`) become
/// those of `[model.mlp]` (`model.mlp.width`); every other key is itself.
pub fn canonical_key(key: &str) -> String {
    let key = key.trim();
    match key.strip_prefix("model.").map(str::trim) {
        Some(k) if MLP_KEYS.contains(&k) => format!("model.mlp.{k}"),
        _ => key.to_string(),
    }
}

/// Moves the MLP's keys given in `[model]` (the layout of release 0.1) into `[model.mlp]`, so that
/// `--set` overrides meet them under one name; a key given in both is an error.
pub fn hoist_legacy(table: &mut toml::Table) -> Result<()> {
    let Some(model) = table.get_mut("model").and_then(|m| m.as_table_mut()) else {
        return Ok(());
    };
    let moved: Vec<(String, toml::Value)> = MLP_KEYS
        .iter()
        .filter_map(|k| model.remove(*k).map(|v| (k.to_string(), v)))
        .collect();
    if moved.is_empty() {
        return Ok(());
    }
    let mlp = model
        .entry("mlp")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()))
        .as_table_mut()
        .ok_or_else(|| Error::Config("`model.mlp` must be a table of settings".into()))?;
    for (k, v) in moved {
        if mlp.contains_key(&k) {
            return Err(Error::Config(format!(
                "model.{k} and model.mlp.{k} are the same setting: give it once (under [model.mlp])"
            )));
        }
        mlp.insert(k, v);
    }
    Ok(())
}

/// The note on a config that gives the MLP's keys in `[model]` (the layout of release 0.1).
fn legacy_note(table: &toml::Table) -> Option<String> {
    let model = table.get("model")?.as_table()?;
    let old: Vec<String> = MLP_KEYS
        .iter()
        .filter(|k| model.contains_key(**k))
        .map(|k| format!("model.{k}"))
        .collect();
    (!old.is_empty()).then(|| {
        let (verb, them) = if old.len() == 1 { ("is", "it") } else { ("are", "them") };
        format!(
            "{} {verb} the MLP's, read as in [model.mlp] (write {them} there; the layout of release 0.1 still works)",
            old.join(", "),
        )
    })
}

/// Whom to blame for `e`, an error of reading or checking a config given with `sets`.
pub fn blame<'a>(e: &Error, sets: &'a [String]) -> Blame<'a> {
    match e {
        Error::Set { .. } | Error::Memory(_) => Blame::Itself,
        Error::Invalid { key, .. } => {
            // The keys the error is about: itself, or for the fleet's size every fleet axis.
            let keys: Vec<&str> = if key == "fleet" {
                super::fleet::FLEET_AXES.iter().map(|a| a.key).collect()
            } else {
                vec![key.as_str()]
            };
            let olds: Vec<Option<String>> = keys.iter().map(|k| legacy_key(k)).collect();
            sets.iter()
                .rev()
                .find(|s| {
                    s.split_once('=').is_some_and(|(k, _)| {
                        let k = k.trim();
                        keys.contains(&k) || olds.iter().any(|o| o.as_deref() == Some(k))
                    })
                })
                .map_or(Blame::Source, |s| Blame::Set(s))
        }
        _ => Blame::Source,
    }
}

/// The message of [`blame`]: `--set K=V: …`, `in SOURCE: …`, or the error itself.
pub fn blamed_message(e: &Error, sets: &[String], source: &str) -> String {
    match blame(e, sets) {
        // A memory limit names the key to make smaller: as the `--set`s spell it.
        Blame::Itself if matches!(e, Error::Memory(_)) => {
            let mut m = e.to_string();
            for s in sets {
                let k = s.split_once('=').map_or("", |(k, _)| k.trim());
                if let Some(old) = k.strip_prefix("model.").filter(|k| MLP_KEYS.contains(k)) {
                    m = m.replace(&format!("model.mlp.{old}"), k);
                }
            }
            m
        }
        Blame::Itself => e.to_string(),
        Blame::Set(s) => match e {
            // The key as the `--set` spelled it (`model.width` for `model.mlp.width`).
            Error::Invalid { key, message } => {
                let typed = s.split_once('=').map_or(key.as_str(), |(k, _)| k.trim());
                format!("--set {s}: {}", Error::invalid(typed, message.clone()))
            }
            e => format!("--set {s}: {e}"),
        },
        Blame::Source => format!("in {source}: {e}"),
    }
}

/// A TOML error as `line L, column C: message` (one line; the position in `text`).
pub fn located(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", plain(e.message()))
        }
        None => plain(e.message()),
    }
}
