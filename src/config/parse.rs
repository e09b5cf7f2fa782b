//! A config from TOML text and `--set key=value` overrides, with errors in the words of the
//! config file, and whom to blame for an error (the file, or an override).

use super::schema::{Config, SECTIONS};
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
            return Ok((cfg, Vec::new()));
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
                        "--set {gk} replaces the config's {ok} = {old} (give one length, not both)"
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
/// intermediate tables.
pub fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
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

/// Whom to blame for `e`, an error of reading or checking a config given with `sets`.
pub fn blame<'a>(e: &Error, sets: &'a [String]) -> Blame<'a> {
    match e {
        Error::Set { .. } | Error::Memory(_) => Blame::Itself,
        Error::Invalid { key, .. } => sets
            .iter()
            .rev()
            .find(|s| {
                s.split_once('=')
                    .is_some_and(|(k, _)| k.trim() == key.as_str())
            })
            .map_or(Blame::Source, |s| Blame::Set(s)),
        _ => Blame::Source,
    }
}

/// The message of [`blame`]: `--set K=V: …`, `in SOURCE: …`, or the error itself.
pub fn blamed_message(e: &Error, sets: &[String], source: &str) -> String {
    match blame(e, sets) {
        Blame::Itself => e.to_string(),
        Blame::Set(s) => format!("--set {s}: {e}"),
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
