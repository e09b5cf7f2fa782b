//! Tables of a sweep: one row per run (`results.csv`) and, per value of the other axes, the
//! α × ξ phase grid with the majority phase over seeds and its agreement (`phase_grid.csv`,
//! `phase_grid.txt`).

use super::spec::SEED_KEYS;
use super::store::RunRecord;
use crate::metrics::Phase;
use std::collections::BTreeMap;

const ALPHA: &str = "data.train_fraction";
const XI: &str = "data.corruption";
const WD: &str = "train.weight_decay";

/// The axis along a phase grid's rows: the training fraction α when the sweep varies it,
/// else the weight decay, else the dropout rate (ξ runs along the columns).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowAxis {
    /// The config key.
    pub key: &'static str,
    /// Its symbol in tables (`α`, `wd`).
    pub symbol: &'static str,
    /// Its name on figure axes.
    pub desc: &'static str,
    /// Its column in phase_grid.csv.
    pub csv: &'static str,
}

const ROW_AXES: [RowAxis; 3] = [
    RowAxis {
        key: ALPHA,
        symbol: "α",
        desc: "training fraction α",
        csv: "alpha",
    },
    RowAxis {
        key: WD,
        symbol: "wd",
        desc: "weight decay",
        csv: "weight_decay",
    },
    RowAxis {
        key: "model.dropout",
        symbol: "q",
        desc: "dropout rate q",
        csv: "dropout",
    },
];

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A grid coordinate: as [`cell`], with −0 and 0 one value.
fn grid_cell(v: &serde_json::Value) -> String {
    match v.as_f64() {
        Some(x) if x == 0.0 && v.is_f64() => "0.0".to_string(),
        _ => cell(v),
    }
}

fn opt<T: ToString>(x: Option<T>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

/// `results.csv`: one row per finished run, in run order.
pub fn results_csv(axes: &[String], records: &BTreeMap<usize, RunRecord>) -> String {
    let mut s = String::from("run");
    for a in axes {
        s.push(',');
        s.push_str(a);
    }
    s.push_str(",phase,steps,train_acc,test_acc,mem_acc,inv_acc,clean_acc,train_loss,test_loss,batch_loss,mean_ipr,dead_neurons,first_train_acc_hi,first_test_acc_hi,first_inv_acc_hi,first_mem_acc_hi,last_mem_acc_drop,grokked,unlearned\n");
    for r in records.values() {
        s.push_str(&r.run.to_string());
        for a in axes {
            s.push(',');
            s.push_str(&r.coords.get(a).map(cell).unwrap_or_default());
        }
        let f = &r.last;
        let d = &r.dynamics;
        s.push_str(&format!(
            ",{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.phase,
            r.steps,
            f.train_acc,
            f.test_acc,
            opt(f.mem_acc),
            opt(f.inv_acc),
            opt(f.clean_acc),
            f.train_loss,
            f.test_loss,
            opt(f.batch_loss),
            opt(f.mean_ipr),
            f.dead_neurons,
            opt(d.first_train_acc_hi),
            opt(d.first_test_acc_hi),
            opt(d.first_inv_acc_hi),
            opt(d.first_mem_acc_hi),
            opt(d.last_mem_acc_drop),
            d.grokked,
            d.unlearned
        ));
    }
    s
}

/// One cell of a phase grid.
#[derive(Clone, Debug, PartialEq)]
pub struct GridCell {
    /// The row axis's value (α or the weight decay).
    pub row: String,
    pub xi: String,
    pub phase: Phase,
    /// Share of the cell's runs (seeds) in the majority phase.
    pub agreement: f64,
    pub runs: usize,
    /// The cell's run ids.
    pub ids: Vec<usize>,
    pub test_acc: f64,
    pub mem_acc: Option<f64>,
}

/// A phase grid for one combination of the other (non-seed) axes.
#[derive(Clone, Debug, PartialEq)]
pub struct Grid {
    /// `key=value` of the other axes (empty when the grid's two are the only ones).
    pub group: Vec<(String, String)>,
    /// What the rows are.
    pub axis: RowAxis,
    /// The row axis's values, increasing.
    pub rows: Vec<String>,
    pub xis: Vec<String>,
    pub cells: Vec<GridCell>,
}

impl Grid {
    /// `key = value, …` of the grid's other axes, or "all runs".
    pub fn title(&self) -> String {
        if self.group.is_empty() {
            "all runs".to_string()
        } else {
            self.group
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        }
    }
}

/// Phase grids over (α, ξ), or over (weight decay, ξ) when the sweep varies the weight
/// decay but not α, or over (dropout, ξ) when it varies neither (real data); none if it does
/// not vary ξ and one of them.
pub fn phase_grids(axes: &[String], records: &BTreeMap<usize, RunRecord>) -> Vec<Grid> {
    let Some(axis) = ROW_AXES
        .iter()
        .find(|r| axes.iter().any(|a| a == r.key))
        .copied()
    else {
        return Vec::new();
    };
    if !axes.iter().any(|a| a == XI) {
        return Vec::new();
    }
    let row_key = axis.key;
    let others: Vec<&String> = axes
        .iter()
        .filter(|a| *a != row_key && *a != XI && !SEED_KEYS.contains(&a.as_str()))
        .collect();
    type CellRuns<'a> = BTreeMap<(String, String), Vec<&'a RunRecord>>;
    let mut groups: Vec<(Vec<(String, String)>, CellRuns)> = Vec::new();
    let order = |v: &serde_json::Value| v.as_f64().unwrap_or(0.0);
    let mut alphas: Vec<(f64, String)> = Vec::new();
    let mut xis: Vec<(f64, String)> = Vec::new();
    for r in records.values() {
        let key: Vec<(String, String)> = others
            .iter()
            .map(|a| ((*a).clone(), r.coords.get(*a).map(cell).unwrap_or_default()))
            .collect();
        let (Some(a), Some(x)) = (r.coords.get(row_key), r.coords.get(XI)) else {
            continue;
        };
        let (a_key, x_key) = (grid_cell(a), grid_cell(x));
        if !alphas.iter().any(|(_, s)| *s == a_key) {
            alphas.push((order(a), a_key.clone()));
        }
        if !xis.iter().any(|(_, s)| *s == x_key) {
            xis.push((order(x), x_key.clone()));
        }
        let g = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key, BTreeMap::new()));
                groups.len() - 1
            }
        };
        groups[g].1.entry((a_key, x_key)).or_default().push(r);
    }
    alphas.sort_by(|a, b| a.0.total_cmp(&b.0));
    xis.sort_by(|a, b| a.0.total_cmp(&b.0));
    let alphas: Vec<String> = alphas.into_iter().map(|x| x.1).collect();
    let xis: Vec<String> = xis.into_iter().map(|x| x.1).collect();
    groups
        .into_iter()
        .map(|(group, cells)| {
            let pos = |v: &[String], k: &str| v.iter().position(|s| s == k).unwrap_or(0);
            let mut cells: Vec<_> = cells.into_iter().collect();
            // Numeric order of the values (the map's keys sort as text).
            cells.sort_by_key(|((row, xi), _)| (pos(&alphas, row), pos(&xis, xi)));
            let cells = cells
                .into_iter()
                .map(|((row, xi), runs)| {
                    let mut count: BTreeMap<Phase, usize> = BTreeMap::new();
                    for r in &runs {
                        *count.entry(r.phase).or_default() += 1;
                    }
                    // The majority; ties go to the phase whose name sorts first.
                    let (phase, n) = count
                        .iter()
                        .max_by(|a, b| a.1.cmp(b.1).then(b.0.name().cmp(a.0.name())))
                        .map(|(p, n)| (*p, *n))
                        .unwrap_or((Phase::Forgetting, 0));
                    let k = runs.len() as f64;
                    let mems: Vec<f64> = runs.iter().filter_map(|r| r.last.mem_acc).collect();
                    GridCell {
                        row,
                        xi,
                        phase,
                        agreement: n as f64 / k,
                        runs: runs.len(),
                        ids: runs.iter().map(|r| r.run).collect(),
                        test_acc: runs.iter().map(|r| r.last.test_acc).sum::<f64>() / k,
                        mem_acc: (!mems.is_empty())
                            .then(|| mems.iter().sum::<f64>() / mems.len() as f64),
                    }
                })
                .collect();
            Grid {
                group,
                axis,
                rows: alphas.clone(),
                xis: xis.clone(),
                cells,
            }
        })
        .collect()
}

pub fn grid_text(grids: &[Grid]) -> String {
    let mut s = String::new();
    let legend: Vec<String> = Phase::ALL
        .iter()
        .map(|p| format!("{} {}", p.code(), p.name()))
        .collect();
    s.push_str(&format!(
        "phases: {}; ·· no run (not finished, or not in the plan); * seeds disagree\n",
        legend.join(", ")
    ));
    for g in grids {
        let title = g.title();
        let head = format!("{} ↑", g.axis.symbol);
        let lw = g
            .rows
            .iter()
            .map(|a| trim(a).chars().count())
            .chain([8, head.chars().count()])
            .max()
            .unwrap_or(8);
        let cw = g
            .xis
            .iter()
            .map(|x| trim(x).chars().count() + 1)
            .chain([6])
            .max()
            .unwrap_or(6);
        // α (or the weight decay) grows upward, as in the figure (phase_grid.png).
        s.push_str(&format!("\n{title}\n{head:>lw$} |\n"));
        for a in g.rows.iter().rev() {
            s.push_str(&format!("{:>lw$} |", trim(a)));
            for x in &g.xis {
                match g.cells.iter().find(|c| c.row == *a && c.xi == *x) {
                    Some(c) => s.push_str(&format!(
                        "{:>w$}{}",
                        c.phase.code(),
                        if c.agreement < 1.0 { "*" } else { " " },
                        w = cw - 1
                    )),
                    None => s.push_str(&format!("{:>w$} ", "··", w = cw - 1)),
                }
            }
            s.push('\n');
        }
        s.push_str(&format!("{:>lw$} +", ""));
        s.push_str(&"-".repeat(cw * g.xis.len()));
        s.push_str(&format!("\n{:>lw$}  ", ""));
        for x in &g.xis {
            s.push_str(&format!("{:>cw$}", trim(x)));
        }
        s.push_str("  ξ →\n");
    }
    s
}

/// A value as short as it can be written without losing digits (`0.1`, `5e-4`, `1e9`).
fn trim(x: &str) -> String {
    x.parse::<f64>()
        .map(|v| {
            if v == 0.0 {
                "0".to_string()
            } else if (1e-3..1e5).contains(&v.abs()) {
                format!("{v}")
            } else {
                format!("{v:e}")
            }
        })
        .unwrap_or_else(|_| x.to_string())
}

/// The grids as CSV: `group, alpha (or weight_decay), xi, phase, …`.
pub fn grid_csv(grids: &[Grid]) -> String {
    let row = grids.first().map_or("alpha", |g| g.axis.csv);
    let mut s = format!("group,{row},xi,phase,agreement,runs,mean_test_acc,mean_mem_acc\n");
    for g in grids {
        let group = g
            .group
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        for c in &g.cells {
            s.push_str(&format!(
                "{group},{},{},{},{},{},{},{}\n",
                c.row,
                c.xi,
                c.phase,
                c.agreement,
                c.runs,
                c.test_acc,
                opt(c.mem_acc)
            ));
        }
    }
    s
}
