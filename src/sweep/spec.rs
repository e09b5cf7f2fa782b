//! Sweep specifications: a base config and axes, expanded into one run per grid point and
//! grouped into fleets.
//!
//! ```toml
//! name = "phase-wd-quick"
//! max_fleet = 64                     # at most this many models train together
//! [base]                             # any `grokscope train` config
//! data.p = 97
//! train.epochs = 2000
//! [axes]                             # dotted config keys; a list or a range
//! "data.train_fraction" = { from = 0.1, to = 0.9, count = 5 }
//! "data.corruption" = { from = 0.1, to = 0.9, count = 5 }
//! "train.weight_decay" = [0, 5, 15, 20]
//! # a zipped axis: keys separated by commas vary together
//! "train.batch_size,train.steps" = [[8, 64000], [64, 8000], ["full", 2000]]
//! ```

use crate::config::{set_path, Checked, Config, ModelSpec, MAX_FLEET};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The most runs one sweep may have (the paper's four phase diagrams are 4 × 1156).
pub const MAX_RUNS: usize = 100_000;

/// Keys that count as seeds: phase grids take the majority over them.
pub const SEED_KEYS: [&str; 5] = [
    "data.corruption_seed",
    "model.init_seed",
    "data.split_seed",
    "train.batch_seed",
    "seed",
];

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecFile {
    #[serde(default = "default_name")]
    name: String,
    #[serde(default = "default_max_fleet")]
    max_fleet: usize,
    #[serde(default)]
    base: toml::Table,
    axes: toml::Table,
}

fn default_name() -> String {
    "sweep".into()
}

fn default_max_fleet() -> usize {
    64
}

/// A parsed sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct SweepSpec {
    pub name: String,
    pub max_fleet: usize,
    pub base: toml::Table,
    /// `(dotted key, values)` in key order; the last axis varies fastest.
    pub axes: Vec<(String, Vec<toml::Value>)>,
}

/// One grid point.
#[derive(Clone, Debug)]
pub struct RunPoint {
    pub id: usize,
    pub coords: Vec<(String, toml::Value)>,
    pub cfg: Checked,
}

/// Runs that train together.
#[derive(Clone, Debug)]
pub struct FleetPlan {
    /// The config shared by the fleet (its fleet axes are replaced by `specs`).
    pub cfg: Checked,
    pub runs: Vec<usize>,
    pub specs: Vec<ModelSpec>,
}

impl SweepSpec {
    pub fn parse(text: &str) -> Result<SweepSpec> {
        let f: SpecFile = toml::from_str(text)
            .map_err(|e: toml::de::Error| Error::Config(crate::config::located(text, &e)))?;
        if f.max_fleet == 0 || f.max_fleet > MAX_FLEET {
            return Err(Error::invalid(
                "max_fleet",
                format!("must lie in [1, {MAX_FLEET}], got {}", f.max_fleet),
            ));
        }
        let mut axes = Vec::new();
        flatten_axes(&f.axes, "", &mut axes)?;
        if axes.is_empty() {
            return Err(Error::invalid("axes", "a sweep needs at least one axis"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (key, _) in &axes {
            for k in key.split(',').map(str::trim) {
                // `model.width` and `model.mlp.width` are one key.
                if !seen.insert(crate::config::canonical_key(k)) {
                    return Err(Error::invalid(
                        format!("axes.\"{key}\""),
                        format!("`{k}` is swept twice (each key may be on one axis only; model.X and model.mlp.X are the same key of the MLP)"),
                    ));
                }
            }
        }
        Ok(SweepSpec {
            name: f.name,
            max_fleet: f.max_fleet,
            base: f.base,
            axes,
        })
    }

    /// A canonical text of the plan (comments and layout removed): equal texts, equal plans.
    pub fn canonical(&self) -> String {
        let mut t = toml::Table::new();
        t.insert("name".into(), toml::Value::String(self.name.clone()));
        t.insert("base".into(), toml::Value::Table(self.base.clone()));
        let mut axes = toml::Table::new();
        for (k, v) in &self.axes {
            axes.insert(k.clone(), toml::Value::Array(v.clone()));
        }
        t.insert("axes".into(), toml::Value::Table(axes));
        toml::to_string(&t).expect("a table serializes")
    }

    /// A short hash of [`canonical`](Self::canonical) (FNV-1a, 64 bits).
    pub fn plan_hash(&self) -> String {
        crate::config::fingerprint(&self.canonical())
    }

    /// The number of grid points, refused above [`MAX_RUNS`].
    pub fn n_runs(&self) -> Result<usize> {
        let n = self
            .axes
            .iter()
            .try_fold(1usize, |n, (_, v)| n.checked_mul(v.len()));
        match n {
            Some(n) if n <= MAX_RUNS => Ok(n),
            _ => Err(Error::invalid(
                "axes",
                format!(
                    "the axes give {} runs ({}), more than the {MAX_RUNS} one sweep may have; split it into several sweeps",
                    n.map_or("over 10^19".to_string(), |n| n.to_string()),
                    self.axes
                        .iter()
                        .map(|(k, v)| format!("{} {k}", v.len()))
                        .collect::<Vec<_>>()
                        .join(" × ")
                ),
            )),
        }
    }

    /// The coordinates of run `id` (`id < n_runs`): one `(key, value)` per axis key, zipped
    /// axes split into their keys.
    pub fn coords(&self, id: usize) -> Vec<(String, toml::Value)> {
        let mut rem = id;
        let mut picked = vec![(String::new(), toml::Value::Boolean(false)); self.axes.len()];
        for (i, (key, vals)) in self.axes.iter().enumerate().rev() {
            picked[i] = (key.clone(), vals[rem % vals.len()].clone());
            rem /= vals.len();
        }
        let mut coords = Vec::new();
        for (key, v) in picked {
            match (key.contains(','), v) {
                (true, toml::Value::Array(parts)) => {
                    for (k, x) in key.split(',').zip(parts) {
                        coords.push((k.trim().to_string(), x));
                    }
                }
                (_, v) => coords.push((key, v)),
            }
        }
        coords
    }

    /// The (unchecked) config of the run at `coords`: the base with the coordinates set.
    pub fn config_at(&self, coords: &[(String, toml::Value)]) -> Result<Config> {
        let mut table = self.base.clone();
        table.insert("name".into(), toml::Value::String(self.name.clone()));
        for (k, v) in coords {
            set_path(&mut table, k, v.clone())?;
        }
        Config::from_table(&table)
    }

    /// Every grid point with its validated config, the last axis varying fastest.
    pub fn expand(&self) -> Result<Vec<RunPoint>> {
        let n = self.n_runs()?;
        let mut out = Vec::with_capacity(n);
        for id in 0..n {
            let coords = self.coords(id);
            let what =
                |e: Error| Error::Config(format!("sweep run {id} ({}): {e}", describe(&coords)));
            let cfg = self
                .config_at(&coords)
                .and_then(Config::check)
                .map_err(what)?;
            if cfg.fleet().len() != 1 {
                return Err(what(Error::Config(
                    "the base config lists several values for a fleet axis; put them under [axes]"
                        .into(),
                )));
            }
            out.push(RunPoint { id, coords, cfg });
        }
        Ok(out)
    }
}

/// `key=value, …` for messages.
pub fn describe(coords: &[(String, toml::Value)]) -> String {
    coords
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn flatten_axes(
    t: &toml::Table,
    prefix: &str,
    out: &mut Vec<(String, Vec<toml::Value>)>,
) -> Result<()> {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Array(vals) => {
                if vals.is_empty() {
                    return Err(Error::invalid(format!("axes.{key}"), "the axis is empty"));
                }
                if key.contains(',') {
                    // A zipped axis: "a,b" = [[a1, b1], [a2, b2], …] varies a and b together.
                    let width = key.split(',').count();
                    for v in vals {
                        if v.as_array().is_none_or(|t| t.len() != width) {
                            return Err(Error::invalid(
                                format!("axes.\"{key}\""),
                                format!(
                                    "a zipped axis needs a list of {width}-element lists, got {v}"
                                ),
                            ));
                        }
                    }
                }
                if let Some((a, b)) = first_repeat(vals) {
                    return Err(Error::invalid(
                        format!("axes.{key}"),
                        format!(
                            "the value {} is given twice (entries {a} and {b}): each run of an axis must differ, or its repeats would count as agreeing seeds in phase_grid.csv; vary a seed axis to repeat a run",
                            vals[a]
                        ),
                    ));
                }
                out.push((key, vals.clone()));
            }
            toml::Value::Table(sub) if sub.contains_key("from") || sub.contains_key("count") => {
                out.push((key.clone(), range_values(sub, &key)?));
            }
            toml::Value::Table(sub) => flatten_axes(sub, &key, out)?,
            _ => {
                return Err(Error::invalid(
                    format!("axes.{key}"),
                    "an axis is a list of values or a range { from = …, to = …, count = … }",
                ))
            }
        }
    }
    Ok(())
}

/// The first two positions (1-based) of equal values in an axis list (numbers compared as
/// numbers: `1` and `1.0` are the same setting).
fn first_repeat(vals: &[toml::Value]) -> Option<(usize, usize)> {
    let same = |a: &toml::Value, b: &toml::Value| match (a, b) {
        (toml::Value::Integer(x), toml::Value::Float(y))
        | (toml::Value::Float(y), toml::Value::Integer(x)) => *x as f64 == *y,
        _ => a == b,
    };
    (0..vals.len()).find_map(|j| {
        (0..j)
            .find(|&i| same(&vals[i], &vals[j]))
            .map(|i| (i + 1, j + 1))
    })
}

fn range_values(t: &toml::Table, key: &str) -> Result<Vec<toml::Value>> {
    let bad = |m: &str| Error::invalid(format!("axes.{key}"), m.to_string());
    for k in t.keys() {
        if !["from", "to", "count"].contains(&k.as_str()) {
            return Err(bad(&format!(
                "unknown range key `{k}`; use from, to, count"
            )));
        }
    }
    let num = |k: &str| -> Result<f64> {
        match t.get(k) {
            Some(toml::Value::Float(x)) => Ok(*x),
            Some(toml::Value::Integer(x)) => Ok(*x as f64),
            _ => Err(bad(&format!("a range needs a number `{k}`"))),
        }
    };
    let (from, to) = (num("from")?, num("to")?);
    let count = match t.get("count") {
        Some(toml::Value::Integer(c)) if (1..=MAX_RUNS as i64).contains(c) => *c as usize,
        _ => {
            return Err(bad(&format!(
                "a range needs an integer `count` in [1, {MAX_RUNS}]"
            )))
        }
    };
    if !(from.is_finite() && to.is_finite()) {
        return Err(bad("`from` and `to` must be finite numbers"));
    }
    if count == 1 && from != to {
        return Err(bad(&format!(
            "a range with count = 1 is the single value `from` = {from}, so `to` = {to} would be ignored: set count ≥ 2, or write the axis as [{from}]"
        )));
    }
    // Integer ends with integer steps give integers (seeds, p, widths); else floats.
    let ints = matches!(
        (t.get("from"), t.get("to")),
        (Some(toml::Value::Integer(_)), Some(toml::Value::Integer(_)))
    ) && (count == 1 || ((to - from) / (count - 1) as f64).fract() == 0.0);
    Ok((0..count)
        .map(|i| {
            let x = if count == 1 {
                from
            } else {
                from + (to - from) * i as f64 / (count - 1) as f64
            };
            if ints {
                toml::Value::Integer(x.round() as i64)
            } else {
                toml::Value::Float((x * 1e10).round() / 1e10)
            }
        })
        .collect())
}

/// Groups runs into fleets: runs whose configs agree on everything but the fleet axes train
/// together, at most `max_fleet` at a time, in run order.
pub fn group_fleets(points: &[&RunPoint], max_fleet: usize) -> Vec<FleetPlan> {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut groups: Vec<Vec<&RunPoint>> = Vec::new();
    for pt in points {
        let next = groups.len();
        let i = *index.entry(fleet_key(&pt.cfg)).or_insert(next);
        if i == next {
            groups.push(Vec::new());
        }
        groups[i].push(pt);
    }
    let mut out = Vec::new();
    for g in groups {
        for chunk in g.chunks(max_fleet) {
            let specs = chunk
                .iter()
                .enumerate()
                .map(|(i, pt)| ModelSpec {
                    index: i,
                    ..pt.cfg.fleet().remove(0)
                })
                .collect();
            out.push(FleetPlan {
                cfg: chunk[0].cfg.clone(),
                runs: chunk.iter().map(|pt| pt.id).collect(),
                specs,
            });
        }
    }
    out
}

fn fleet_key(cfg: &Checked) -> String {
    cfg.config().without_fleet_axes().to_toml()
}

/// `i/n`: this process runs the runs with `id % n == i − 1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Shard, String> {
        let err = || format!("shard {s:?}: expected i/n with 1 ≤ i ≤ n, e.g. 2/3");
        let (i, n) = s.split_once('/').ok_or_else(err)?;
        let (index, count): (usize, usize) = (
            i.trim().parse().map_err(|_| err())?,
            n.trim().parse().map_err(|_| err())?,
        );
        if count == 0 || index == 0 || index > count {
            return Err(err());
        }
        Ok(Shard { index, count })
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    pub fn contains(&self, run: usize) -> bool {
        run % self.count == self.index - 1
    }
}
