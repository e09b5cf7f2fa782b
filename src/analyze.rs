//! `grokscope analyze`, `prune` and `scores`: the analysis of a run, written into its
//! `analysis/` directory (formats in `docs/OUTPUTS.md`). One path for every network.

use crate::analysis::neurons::{analyze_neurons, spearman, NeuronRow, NeuronSpectra};
use crate::analysis::prune::{Order, PrunePoint};
use crate::analysis::scores::{
    rank_correlation, score_order, scores_csv, unit_scores, Score, UnitScore,
};
use crate::error::{Error, Result};
use crate::metrics::{record, Phase, Record, Thresholds};
use crate::model::ipr::{Ipr, Spectral};
use crate::rundir::{AnalysisFile, LoadedRun};
use crate::train::Engine;
use serde::Serialize;
use std::path::PathBuf;

/// What `analyze` reports per model.
#[derive(Clone, Debug, Serialize)]
pub struct ModelAnalysis {
    pub model: usize,
    pub phase: Phase,
    pub test_acc: f64,
    pub mem_acc: Option<f64>,
    pub inv_acc: Option<f64>,
    pub mean_ipr: Option<f64>,
    /// Share of living neurons with IPR ≥ 0.5.
    pub frac_ipr_ge_half: Option<f64>,
    pub dead_neurons: usize,
    /// Share of living neurons with at least half their Fourier power at frequency 0: nearly
    /// constant over the tokens. The IPR counts frequency 0 (SPEC §4, the authors' |rfft|), so
    /// these have a high IPR without being periodic (a collapsed, Forgetting model).
    pub frac_near_constant: Option<f64>,
    /// (frequency, number of living neurons whose dominant frequency it is), most common first.
    pub dominant_frequencies: Vec<(usize, usize)>,
    /// BatchNorm: Spearman rank correlation of `|γ_k|/sqrt(var_k + eps)` with the IPR.
    pub bn_scale_ipr_spearman: Option<f64>,
    pub bn_gamma_ipr_spearman: Option<f64>,
}

/// One model's pruning sweep: its index and the metrics at each level.
pub type Sweep = (usize, Vec<PrunePoint>);

const ORDERS: [Order; 3] = [Order::Ascending, Order::Descending, Order::Random];

/// Evaluations from scratch a pruning sweep of `analyze`/`prune` may cost (every 1 %).
const PRUNE_LEVELS: usize = 101;

/// The model indices to look at: all `n`, or the one given (checked).
fn select(n: usize, model: Option<usize>) -> Result<Vec<usize>> {
    match model {
        Some(i) if i >= n => Err(Error::ModelIndex {
            index: i,
            models: n,
        }),
        Some(i) => Ok(vec![i]),
        None => Ok((0..n).collect()),
    }
}

/// `(frequency, neurons)` pairs, most common first, and the share of IPRs ≥ 0.5, over the
/// living neurons.
fn frequency_summary(rows: &[NeuronRow]) -> (Vec<(usize, usize)>, Option<f64>) {
    let alive: Vec<(f64, usize)> = rows
        .iter()
        .filter_map(|r| Some((r.ipr?, r.dominant_freq)))
        .collect();
    let mut counts = std::collections::BTreeMap::new();
    for &(_, f) in &alive {
        *counts.entry(f).or_insert(0usize) += 1;
    }
    let mut dominant: Vec<(usize, usize)> = counts.into_iter().collect();
    dominant.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let frac = (!alive.is_empty())
        .then(|| alive.iter().filter(|a| a.0 >= 0.5).count() as f64 / alive.len() as f64);
    (dominant, frac)
}

/// [`ModelAnalysis::frac_near_constant`].
fn near_constant(rows: &[NeuronRow]) -> Option<f64> {
    let alive: Vec<f64> = rows
        .iter()
        .filter(|r| r.ipr.is_some())
        .filter_map(|r| r.dc_share)
        .collect();
    (!alive.is_empty())
        .then(|| alive.iter().filter(|&&d| d >= 0.5).count() as f64 / alive.len() as f64)
}

fn opt(x: Option<f64>) -> String {
    x.map(|v| v.to_string()).unwrap_or_default()
}

/// `neurons.csv`; `names` are the network's vector names.
fn neurons_csv(names: &[&str], rows: &[NeuronRow]) -> String {
    let mut s = String::from("model,layer,neuron");
    for n in names {
        s.push_str(&format!(",ipr_{}", n.to_lowercase()));
    }
    s.push_str(",ipr,dominant_freq,dominant_share,bn_gamma,bn_beta,bn_scale\n");
    for r in rows {
        s.push_str(&format!("{},{},{}", r.model, r.layer, r.neuron));
        for v in &r.vector_iprs {
            s.push_str(&format!(",{}", opt(*v)));
        }
        s.push_str(&format!(
            ",{},{},{},{},{},{}\n",
            opt(r.ipr),
            r.dominant_freq,
            opt(r.dominant_share),
            opt(r.bn_gamma),
            opt(r.bn_beta),
            opt(r.bn_scale)
        ));
    }
    s
}

/// `spectra.csv`: `|û|` of every vector of every neuron (`rows` give their layer and index).
fn spectra_csv(p: usize, names: &[&str], rows: &[NeuronRow], spectra: &[NeuronSpectra]) -> String {
    let mut s = String::from("model,layer,neuron,vector");
    for f in 0..=p / 2 {
        s.push_str(&format!(",f{f}"));
    }
    s.push('\n');
    for (r, ns) in rows.iter().zip(spectra) {
        for (name, v) in names.iter().zip(ns) {
            s.push_str(&format!("{},{},{},{name}", r.model, r.layer, r.neuron));
            match v {
                Some(v) => v.iter().for_each(|a| s.push_str(&format!(",{a}"))),
                None => (0..=p / 2).for_each(|_| s.push_str(",0")),
            }
            s.push('\n');
        }
    }
    s
}

/// `embedding.csv` (Transformer): IPR and dominant frequency of each token-embedding column.
fn embedding_csv(rows: &[(usize, Vec<Option<Spectral>>)]) -> String {
    let mut s = String::from("model,column,ipr,dominant_freq\n");
    for (m, cols) in rows {
        for (j, c) in cols.iter().enumerate() {
            s.push_str(&format!(
                "{m},{j},{},{}\n",
                opt(c.map(|c| c.ipr)),
                c.map(|c| c.dominant).unwrap_or(0)
            ));
        }
    }
    s
}

/// `prune-*.csv`; `id` gives a neuron's (layer, index in the layer).
fn prune_csv(n: usize, id: &dyn Fn(usize) -> (usize, usize), sweeps: &[Sweep]) -> String {
    let mut s = String::from(
        "model,pruned,fraction,layer,neuron,train_loss,train_acc,test_loss,test_acc,mem_acc,inv_acc,clean_acc\n",
    );
    for (m, pts) in sweeps {
        for pt in pts {
            let a = &pt.acc;
            let (layer, neuron) = match pt.neuron.map(id) {
                Some((l, k)) => (l.to_string(), k.to_string()),
                None => (String::new(), String::new()),
            };
            s.push_str(&format!(
                "{m},{},{},{layer},{neuron},{},{},{},{},{},{},{}\n",
                pt.pruned,
                pt.pruned as f64 / n as f64,
                a.train_loss,
                a.train_acc,
                a.test_loss,
                a.test_acc,
                opt(a.mem_acc),
                opt(a.inv_acc),
                opt(a.clean_acc)
            ));
        }
    }
    s
}

fn prune_file(model: Option<usize>, order: Order) -> AnalysisFile {
    AnalysisFile::Prune { order, model }
}

/// The pruning sweep of each of `models` in `order`.
pub fn prune_models(
    run: &mut LoadedRun,
    models: &[usize],
    order: Order,
    seed: u64,
) -> Result<Vec<Sweep>> {
    let s = &mut run.setup;
    let at = s.network.prune_levels(PRUNE_LEVELS);
    models
        .iter()
        .map(|&i| {
            let ord = s.network.prune_order(i, order, seed);
            let pts = s
                .network
                .prune_sweep(i, &s.split, &s.labels[i], &ord, &at)?;
            Ok((i, pts))
        })
        .collect()
}

/// Writes `prune-<order>.csv` (or `prune-<order>-model<i>.csv`) into the run's analysis/.
pub fn write_prune(
    run: &mut LoadedRun,
    model: Option<usize>,
    order: Order,
    seed: u64,
    force: bool,
) -> Result<(PathBuf, Vec<Sweep>)> {
    if run.setup.split.token_space().is_none() {
        return Err(Error::invalid(
            "data",
            format!(
                "pruning in IPR order needs Fourier IPRs, and {} has dense feature vectors: grokscope scores prunes its units by ablation selectivity, data-IPR and gradient attribution",
                run.setup.split.describe()
            ),
        ));
    }
    let models = select(run.setup.network.n_models(), model)?;
    let name = prune_file(model, order);
    run.dir
        .check_analysis_free(std::slice::from_ref(&name), force)?;
    let sweeps = prune_models(run, &models, order, seed)?;
    let net = &run.setup.network;
    let csv = prune_csv(net.n_neurons(), &|i| net.neuron_id(i), &sweeps);
    let path = run.dir.write_analysis(name, csv.as_bytes(), force)?;
    Ok((path, sweeps))
}

/// What `grokscope scores` reports per model.
#[derive(Clone, Debug, Serialize)]
pub struct ScoreSummary {
    pub model: usize,
    pub test_acc: f64,
    pub mem_acc: Option<f64>,
    /// Spearman rank correlation of each score with the Fourier IPR (token tasks).
    pub with_ipr: Vec<(&'static str, Option<f64>)>,
    /// … with the unit's |γ| (BatchNorm).
    pub with_gamma: Vec<(&'static str, Option<f64>)>,
    /// Pruning the units of highest ablation selectivity on the training set
    /// (`ablation_clean`) first: the best test accuracy over the levels (the level chosen
    /// by the test set: an upper bound of the remedy), the units pruned there, and `A_mem`
    /// there.
    pub pruned_best_test: f64,
    pub pruned_units: usize,
    pub pruned_mem: Option<f64>,
}

/// The scores that order units in `prune-by-*.csv` (γ only with BatchNorm).
fn pruning_scores(units: &[UnitScore]) -> Vec<Score> {
    Score::ALL
        .into_iter()
        .filter(|&s| s != Score::Ipr)
        .filter(|&s| units.iter().any(|u| s.of(u).is_some()))
        .collect()
}

/// The pruning curves of one score, order and scope: (score, highest first, the layer or all
/// units, how many units it prunes among, the sweep of each model).
type ScoreSweeps = (Score, bool, Option<usize>, usize, Vec<Sweep>);

/// What `grokscope scores` would write for `run`, checked before anything is computed: the
/// models (`model`, or all), a kind with hidden units, and files that may be written.
pub fn score_check(run: &LoadedRun, model: Option<usize>, force: bool) -> Result<Vec<usize>> {
    let models = select(run.setup.network.n_models(), model)?;
    if matches!(
        run.cfg.architecture(),
        crate::model::Architecture::Transformer(_)
    ) {
        return Err(Error::invalid(
            "model.kind",
            "grokscope scores scores the hidden units of the two MLPs (kind = \"mlp\" or \"deep\"); the Transformer's MLP neurons are analysed by grokscope analyze and prune",
        ));
    }
    let layers = (0..run.setup.network.n_neurons())
        .map(|k| run.setup.network.neuron_id(k).0)
        .max()
        .map_or(1, |l| l + 1);
    let mut files = vec![AnalysisFile::Scores];
    for score in Score::ALL.into_iter().filter(|&s| s != Score::Ipr) {
        for highest in [true, false] {
            for layer in std::iter::once(None).chain(
                (layers > 1)
                    .then_some(0..layers)
                    .into_iter()
                    .flatten()
                    .map(Some),
            ) {
                files.push(AnalysisFile::ScorePrune {
                    score,
                    highest,
                    layer,
                });
            }
        }
    }
    run.dir.check_analysis_free(&files, force)?;
    Ok(models)
}

/// Levels of a score's pruning curve evaluated from scratch (the MLP: all of them).
const SCORE_PRUNE_LEVELS: usize = 41;
/// Levels of a per-layer curve (evaluated from scratch).
const LAYER_PRUNE_LEVELS: usize = 21;

/// `grokscope scores`: every unit's scores (`scores.csv`) and the pruning curves in the order
/// of each score, highest and lowest first, over all units and (deep MLPs) within each layer
/// (`prune-by-<score>-<highest|lowest>[-layer<l>].csv`; `fraction` is of the units pruned
/// among), for
/// the models `model` (all: `None`); written together, replacing earlier ones only with
/// `force`.
///
/// `progress(done, total)` counts evaluations (one per unit's ablation and per pruning
/// level); the total grows once the first model's scores are known.
pub fn score_run(
    run: &mut LoadedRun,
    model: Option<usize>,
    force: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Vec<ScoreSummary>> {
    let models = score_check(run, model, force)?;
    let s = &mut run.setup;
    let at = s.network.prune_levels(SCORE_PRUNE_LEVELS);
    // The layers of the hidden units (one for the two-layer MLP) and their sizes.
    let n_units = s.network.n_neurons();
    let layer_of: Vec<usize> = (0..n_units).map(|k| s.network.neuron_id(k).0).collect();
    let depth = layer_of.iter().max().map_or(0, |&l| l + 1);
    let mut all = Vec::new();
    let mut sweeps: Vec<ScoreSweeps> = Vec::new();
    let mut summaries = Vec::new();
    let n_models = models.len() as u64;
    let scopes = 1 + if depth > 1 { depth } else { 0 };
    let levels = at.len() as u64 + (scopes as u64 - 1) * LAYER_PRUNE_LEVELS as u64;
    // Until the first model's scores say how many pruning curves there are: 4 scores.
    let mut total = n_models * (n_units as u64 + 8 * levels);
    let mut done = 0u64;
    for &i in &models {
        let units = {
            let mut tick = || {
                done += 1;
                progress(done, total);
            };
            unit_scores(&mut s.network, i, &s.split, &s.labels[i], &mut tick)?
        };
        let curves = 2 * pruning_scores(&units).len() as u64;
        total = n_models * (n_units as u64 + curves * levels);
        let mut best = None::<PrunePoint>;
        for score in pruning_scores(&units) {
            for highest in [true, false] {
                let order = score_order(&units, score, highest);
                let scopes: Vec<Option<usize>> = std::iter::once(None)
                    .chain(
                        (depth > 1)
                            .then_some(0..depth)
                            .into_iter()
                            .flatten()
                            .map(Some),
                    )
                    .collect();
                for scope in scopes {
                    let (ord, levels): (Vec<usize>, Vec<usize>) = match scope {
                        None => (order.clone(), at.clone()),
                        Some(l) => {
                            let ord: Vec<usize> = order
                                .iter()
                                .copied()
                                .filter(|&k| layer_of[k] == l)
                                .collect();
                            let n = ord.len();
                            let steps = (LAYER_PRUNE_LEVELS - 1).min(n.max(1));
                            let mut lv: Vec<usize> = (0..=steps).map(|j| j * n / steps).collect();
                            lv.dedup();
                            (ord, lv)
                        }
                    };
                    let pts = s
                        .network
                        .prune_sweep(i, &s.split, &s.labels[i], &ord, &levels)?;
                    done += levels.len() as u64;
                    progress(done, total);
                    if score == Score::AblationClean && highest && scope.is_none() {
                        best = pts
                            .iter()
                            .max_by(|a, b| a.acc.test_acc.total_cmp(&b.acc.test_acc))
                            .cloned();
                    }
                    match sweeps
                        .iter_mut()
                        .find(|x| x.0 == score && x.1 == highest && x.2 == scope)
                    {
                        Some(x) => x.4.push((i, pts)),
                        None => sweeps.push((score, highest, scope, ord.len(), vec![(i, pts)])),
                    }
                }
            }
        }
        let corr = |with: Score| -> Vec<(&'static str, Option<f64>)> {
            if !units.iter().any(|u| with.of(u).is_some()) {
                return Vec::new();
            }
            [
                Score::Ablation,
                Score::AblationClean,
                Score::DataIpr,
                Score::Attribution,
                Score::AttributionTrue,
            ]
            .into_iter()
            .map(|sc| (sc.name(), rank_correlation(&units, sc, with)))
            .collect()
        };
        let ev = s.network.eval_model(i)?;
        let a = crate::metrics::accuracies(
            s.network.vocab(),
            s.network.loss(),
            &s.split,
            &s.labels[i].labels,
            &s.labels[i].corrupted,
            &ev,
        );
        summaries.push(ScoreSummary {
            model: i,
            test_acc: a.test_acc,
            mem_acc: a.mem_acc,
            with_ipr: corr(Score::Ipr),
            with_gamma: corr(Score::Gamma),
            pruned_best_test: best.as_ref().map_or(a.test_acc, |p| p.acc.test_acc),
            pruned_units: best.as_ref().map_or(0, |p| p.pruned),
            pruned_mem: best.as_ref().and_then(|p| p.acc.mem_acc),
        });
        all.push((i, units));
    }
    let net = &s.network;
    let mut files = vec![(AnalysisFile::Scores, scores_csv(&all))];
    for (score, highest, layer, n, sw) in &sweeps {
        files.push((
            AnalysisFile::ScorePrune {
                score: *score,
                highest: *highest,
                layer: *layer,
            },
            prune_csv(*n, &|k| net.neuron_id(k), sw),
        ));
    }
    run.dir.replace_analysis(&files, force)?;
    Ok(summaries)
}

/// The files `analyze` writes for `run`.
pub fn analysis_files(run: &LoadedRun) -> Vec<AnalysisFile> {
    let mut files = vec![
        AnalysisFile::Neurons,
        AnalysisFile::Spectra,
        AnalysisFile::Summary,
    ];
    files.extend(ORDERS.iter().map(|&o| prune_file(None, o)));
    if run.setup.network.embedding_columns(0).is_some() {
        files.push(AnalysisFile::Embedding);
    }
    files
}

/// Everything `analyze` writes; returns the per-model summaries.
pub fn analyze_run(
    run: &mut LoadedRun,
    model: Option<usize>,
    force: bool,
) -> Result<Vec<ModelAnalysis>> {
    if run.setup.split.token_space().is_none() {
        return Err(Error::invalid(
            "data",
            format!(
                "the per-neuron analysis is Fourier analysis over tokens, and {} has dense feature vectors (its units: grokscope scores)",
                run.setup.split.describe()
            ),
        ));
    }
    let models = select(run.setup.network.n_models(), model)?;
    let files = analysis_files(run);
    let has_embedding = files.contains(&AnalysisFile::Embedding);
    run.dir.check_analysis_free(&files, force)?;
    let thresholds = Thresholds::from(&run.cfg.eval);
    // The last training-mode batch loss is known only from the run's metrics; a model whose
    // loss diverged there is Diverged here too (runs without metrics.csv: unknown).
    let history = run.dir.read_history(run.setup.specs.len()).ok();
    let p = run.setup.network.p();
    let mut all_rows = Vec::new();
    let mut all_spectra = Vec::new();
    let mut embeds = Vec::new();
    let mut summaries = Vec::new();
    for &i in &models {
        let s = &mut run.setup;
        let ev = s.network.eval_model(i)?;
        let rec = record(
            s.total_steps,
            s.total_steps as f64 / s.steps_per_epoch as f64,
            p,
            s.network.loss(),
            &s.split,
            &s.labels[i].labels,
            &s.labels[i].corrupted,
            &s.network.weight_stats(i),
            &ev,
        );
        let rec = Record {
            batch_loss: history
                .as_ref()
                .and_then(|h| h[i].last())
                .and_then(|r| r.batch_loss),
            ..rec
        };
        let (mut rows, spectra) = analyze_neurons(&s.network, i);
        // Weights that are not finite (a diverged model) have no IPR or frequencies: none are
        // reported, and the model is Diverged whatever its predictions score.
        let finite = s.network.weight_stats(i).sum_sq.is_finite();
        if !finite {
            for r in &mut rows {
                r.ipr = None;
                r.vector_iprs.iter_mut().for_each(|v| *v = None);
            }
        }
        let (dominant, frac) = match finite {
            true => frequency_summary(&rows),
            false => (Vec::new(), None),
        };
        let bn_corr = |f: &dyn Fn(&NeuronRow) -> Option<f64>| {
            let (x, y): (Vec<f64>, Vec<f64>) =
                rows.iter().filter_map(|r| Some((f(r)?, r.ipr?))).unzip();
            spearman(&x, &y)
        };
        summaries.push(ModelAnalysis {
            model: i,
            phase: match finite {
                true => crate::metrics::final_phase(&rec, None, thresholds),
                false => crate::metrics::Phase::Diverged,
            },
            test_acc: rec.test_acc,
            mem_acc: rec.mem_acc,
            inv_acc: rec.inv_acc,
            mean_ipr: rec.mean_ipr.filter(|_| finite),
            frac_ipr_ge_half: frac,
            dead_neurons: rec.dead_neurons,
            frac_near_constant: near_constant(&rows).filter(|_| finite),
            dominant_frequencies: dominant,
            bn_scale_ipr_spearman: bn_corr(&|r| r.bn_scale),
            bn_gamma_ipr_spearman: bn_corr(&|r| r.bn_gamma.map(f64::abs)),
        });
        if let Some(cols) = s.network.embedding_columns(i) {
            let mut calc = Ipr::new(p);
            embeds.push((i, cols.iter().map(|c| calc.of(c)).collect()));
        }
        all_rows.extend(rows);
        all_spectra.extend(spectra);
    }
    // Everything is computed before anything is written; the files then replace the old
    // analysis together (a killed or failed analyze leaves the old one complete).
    let names = run.setup.network.vector_names();
    let mut out = vec![
        (AnalysisFile::Neurons, neurons_csv(names, &all_rows)),
        (
            AnalysisFile::Spectra,
            spectra_csv(p, names, &all_rows, &all_spectra),
        ),
    ];
    if has_embedding {
        out.push((AnalysisFile::Embedding, embedding_csv(&embeds)));
    }
    for order in ORDERS {
        let sweeps = prune_models(run, &models, order, 0)?;
        let net = &run.setup.network;
        let csv = prune_csv(net.n_neurons(), &|i| net.neuron_id(i), &sweeps);
        out.push((prune_file(None, order), csv));
    }
    let json = serde_json::to_string_pretty(&summaries).map_err(|e| {
        Error::json(
            run.dir.analysis_path(AnalysisFile::Summary),
            "cannot write the analysis summary",
            e,
        )
    })?;
    out.push((AnalysisFile::Summary, json));
    run.dir.replace_analysis(&out, force)?;
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(ipr: Option<f64>, f: usize) -> NeuronRow {
        NeuronRow {
            model: 0,
            layer: 0,
            neuron: 0,
            vector_iprs: vec![ipr, ipr],
            ipr,
            dominant_freq: f,
            dominant_share: None,
            dc_share: None,
            bn_gamma: None,
            bn_beta: None,
            bn_scale: None,
        }
    }

    #[test]
    fn frequency_summary_counts_living_neurons_by_hand() {
        let rows = [
            row(Some(0.9), 3),
            row(Some(0.2), 5),
            row(Some(0.6), 3),
            row(None, 0),
        ];
        let (dominant, frac) = frequency_summary(&rows);
        assert_eq!(dominant, vec![(3, 2), (5, 1)]);
        assert_eq!(frac, Some(2.0 / 3.0));
        assert_eq!(frequency_summary(&[row(None, 0)]), (vec![], None));
    }

    #[test]
    fn select_checks_the_model_index() {
        assert_eq!(select(3, None).unwrap(), vec![0, 1, 2]);
        assert_eq!(select(3, Some(2)).unwrap(), vec![2]);
        assert!(matches!(
            select(3, Some(3)),
            Err(Error::ModelIndex {
                index: 3,
                models: 3
            })
        ));
    }

    #[test]
    fn neurons_csv_names_columns_by_vector() {
        let csv = neurons_csv(&["in", "out"], &[row(Some(0.5), 2)]);
        let mut lines = csv.lines();
        assert_eq!(
            lines.next(),
            Some("model,layer,neuron,ipr_in,ipr_out,ipr,dominant_freq,dominant_share,bn_gamma,bn_beta,bn_scale")
        );
        assert_eq!(lines.next(), Some("0,0,0,0.5,0.5,0.5,2,,,,"));
    }
}
