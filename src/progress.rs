//! What a person watching a run sees: a progress bar with each model's latest metrics on a
//! terminal, plain progress lines in logs (nohup, Slurm, notebooks), and a spinner for
//! commands that take a while.

use crate::experiment::Progress;
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::time::Instant;

/// `0.123`, or `—` for a missing value.
pub fn fmt_opt(x: Option<f64>) -> String {
    x.map(|v| format!("{v:.3}")).unwrap_or_else(|| "—".into())
}

/// `1h 02m 03s`.
pub fn hms(secs: f64) -> String {
    let s = secs.round() as u64;
    format!("{}h {:02}m {:02}s", s / 3600, (s / 60) % 60, s % 60)
}

/// One plain progress line (for logs: output that is not a terminal).
pub fn progress_line(p: &Progress, elapsed: f64) -> String {
    let eta = if p.step > 0 {
        elapsed * p.total_steps.saturating_sub(p.step) as f64 / p.step as f64
    } else {
        0.0
    };
    let models: Vec<String> = p
        .latest
        .iter()
        .enumerate()
        .take(8)
        .map(|(i, r)| format!("{i}: test {:.3} A_mem {}", r.test_acc, fmt_opt(r.mem_acc)))
        .collect();
    format!(
        "step {}/{} ({:.0} %), {} elapsed, eta {} | eval at step {}: {}",
        p.step,
        p.total_steps,
        100.0 * p.step as f64 / p.total_steps.max(1) as f64,
        hms(elapsed),
        hms(eta),
        p.latest.first().map(|r| r.step).unwrap_or(0),
        models.join("; ")
    )
}

/// Shows a training run's progress: a bar on a terminal, a line every 10 % of the steps or
/// 30 s (and at the end) otherwise; nothing when quiet.
pub struct Reporter {
    bar: ProgressBar,
    lines: bool,
    last_eval: u64,
    clock: Instant,
    last_line: (f64, u64),
}

impl Reporter {
    pub fn new(quiet: bool) -> Reporter {
        let terminal = std::io::stderr().is_terminal();
        let bar = if quiet || !terminal {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(1)
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {pos}/{len} steps (eta {eta}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        Reporter {
            bar,
            lines: !quiet && !terminal,
            last_eval: u64::MAX,
            clock: Instant::now(),
            last_line: (f64::NEG_INFINITY, 0),
        }
    }

    pub fn update(&mut self, p: &Progress) {
        self.bar.set_length(p.total_steps);
        // The time to go is measured from the first trained step: the setup and the step-0
        // evaluation before it would make the first estimates far off.
        if p.step > 0 && self.bar.position() == 0 {
            self.bar.reset_eta();
        }
        self.bar.set_position(p.step);
        let step = p.latest.first().map(|r| r.step).unwrap_or(0);
        if step != self.last_eval {
            self.last_eval = step;
            self.bar.set_message(bar_message(p));
        }
        if self.lines {
            let t = self.clock.elapsed().as_secs_f64();
            let tenth = (p.total_steps / 10).max(1);
            if t - self.last_line.0 >= 30.0
                || p.step / tenth != self.last_line.1 / tenth
                || p.step == p.total_steps
            {
                self.last_line = (t, p.step);
                eprintln!("{}", progress_line(p, t));
            }
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// One model: its loss and accuracies; a fleet: each model's test accuracy / `A_mem`.
fn bar_message(p: &Progress) -> String {
    match p.latest.as_slice() {
        [r] => format!(
            "loss {:.3e} train {:.3} test {:.3}",
            r.train_loss, r.train_acc, r.test_acc
        ),
        all => {
            let per: Vec<String> = all
                .iter()
                .take(6)
                .enumerate()
                .map(|(i, r)| format!("#{i} {:.3}/{}", r.test_acc, fmt_opt(r.mem_acc)))
                .collect();
            format!(
                "model: test/A_mem {}{}",
                per.join(" "),
                if all.len() > 6 { " …" } else { "" }
            )
        }
    }
}

/// Runs `f` with a spinner and the elapsed time on a terminal (a line first otherwise), and
/// says how long it took when that was more than two seconds.
pub fn busy<T, E>(what: &str, f: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
    let t0 = Instant::now();
    let spinner = if std::io::stderr().is_terminal() {
        let s = ProgressBar::new_spinner();
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} ({elapsed})") {
            s.set_style(style);
        }
        s.set_message(what.to_string());
        s.enable_steady_tick(std::time::Duration::from_millis(200));
        s
    } else {
        eprintln!("{what} …");
        ProgressBar::hidden()
    };
    let out = f();
    spinner.finish_and_clear();
    let secs = t0.elapsed().as_secs_f64();
    if secs > 2.0 {
        eprintln!("{what}: {secs:.1} s");
    }
    out
}

/// A bar for a long computation counted in units of work (e.g. evaluations): on a terminal a
/// bar with its ETA, otherwise a line at every tenth of the work.
pub struct WorkBar {
    bar: ProgressBar,
    what: String,
    lines: bool,
    last_tenth: u64,
}

impl WorkBar {
    pub fn new(what: &str) -> WorkBar {
        let terminal = std::io::stderr().is_terminal();
        let bar = if terminal {
            ProgressBar::new(1)
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {percent:>3}% (eta {eta}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(what.to_string());
        if !terminal {
            eprintln!("{what} …");
        }
        WorkBar {
            bar,
            what: what.to_string(),
            lines: !terminal,
            last_tenth: 0,
        }
    }

    /// `done` of `total` units (the total may grow as the work becomes known).
    pub fn update(&mut self, done: u64, total: u64) {
        self.bar.set_length(total.max(1));
        self.bar.set_position(done);
        let tenth = done * 10 / total.max(1);
        if self.lines && tenth > self.last_tenth {
            self.last_tenth = tenth;
            eprintln!("{}: {} %", self.what, tenth * 10);
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

/// Shows a sweep worker's progress: a bar on a terminal, or (in logs, or with `log`) a line
/// every 30 s and at every tenth of the work; nothing when quiet.
pub struct SweepReporter {
    bar: ProgressBar,
    lines: bool,
    clock: Instant,
    last_line: (f64, u64),
    first: Option<(f64, u64)>,
}

impl SweepReporter {
    pub fn new(quiet: bool, log: bool) -> SweepReporter {
        let terminal = std::io::stderr().is_terminal();
        let bar = if quiet || log || !terminal {
            ProgressBar::hidden()
        } else {
            ProgressBar::new(1)
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] {percent:>3}% (eta {eta}) {msg}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        SweepReporter {
            bar,
            lines: !quiet && (log || !terminal),
            clock: Instant::now(),
            last_line: (f64::NEG_INFINITY, u64::MAX),
            first: None,
        }
    }

    /// `work` in model-steps (all workers' finished runs plus this worker's unit in flight);
    /// `note` says what this worker does.
    pub fn update(&mut self, runs: (usize, usize), work: (u64, u64), note: &str) {
        let (done, total) = work;
        self.bar.set_length(total.max(1));
        self.bar.set_position(done);
        self.bar
            .set_message(format!("runs {}/{} · {note}", runs.0, runs.1));
        if !self.lines {
            return;
        }
        let t = self.clock.elapsed().as_secs_f64();
        let (t0, w0) = *self.first.get_or_insert((t, done));
        let tenth = (total / 10).max(1);
        if t - self.last_line.0 >= 30.0 || done / tenth != self.last_line.1 / tenth || done >= total
        {
            self.last_line = (t, done);
            let rate = (done.saturating_sub(w0)) as f64 / (t - t0).max(1e-9);
            let eta = if rate > 0.0 {
                hms(total.saturating_sub(done) as f64 / rate)
            } else {
                "unknown".into()
            };
            eprintln!(
                "sweep: runs {}/{} ({:.0} % of the work), {} elapsed, eta {eta} | {note}",
                runs.0,
                runs.1,
                100.0 * done as f64 / total.max(1) as f64,
                hms(t)
            );
        }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}
