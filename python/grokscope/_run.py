"""Runs: train one from Python, or load a run directory written by the CLI or by `train`."""

import json
import signal
import threading
from pathlib import Path
from typing import Any, Callable, Dict, List, Literal, Optional, Tuple, Union, cast

import numpy as np
import pandas as pd

from . import _native, _safetensors
from ._arrays import Dataset
from ._config import PHASES, Config, ConfigLike
from ._native import GrokscopeError

#: The fleet axes (the library's `config::FLEET_AXES`): the hyper-parameter columns.
_SPEC_COLUMNS: List[str] = list(_native.fleet_axes())


def _progress_callback(progress: Any, what: str) -> Tuple[Optional[Callable[[int, int], None]], Callable[[], None]]:
    """(callback, close): a tqdm bar for ``True``, the user's callable, or nothing."""
    if progress is True:
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is a dependency
            return None, lambda: None
        bar: Dict[str, Any] = {"bar": None}

        def update(step: int, total: int) -> None:
            if bar["bar"] is None:
                bar["bar"] = tqdm(total=total, desc=what, unit="step" if what == "training" else "run")
            b = bar["bar"]
            b.update(step - b.n)

        def close() -> None:
            if bar["bar"] is not None:
                bar["bar"].close()

        return update, close
    if callable(progress):
        return progress, lambda: None
    if progress is False or progress is None:
        return None, lambda: None
    raise TypeError(f"progress must be True, False or a callable f(done, total), got {progress!r}")


class Run:
    """A run directory: its config, metrics, summary, weights and dataset."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        if not (self.path / "config.toml").is_file():
            raise GrokscopeError(f"{self.path} is not a grokscope run directory: it has no config.toml")
        self._config: Optional[Dict[str, Any]] = None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def config(self) -> Dict[str, Any]:
        """The resolved config (config.toml, checked) as a dict."""
        if self._config is None:
            self._config = json.loads(_native.run_config(str(self.path)))
        return self._config

    @property
    def finished(self) -> bool:
        """Whether training finished (the final weights are written)."""
        return (self.path / "weights.safetensors").is_file()

    def _fleet(self) -> pd.DataFrame:
        specs = pd.DataFrame(json.loads(_native.fleet(str(self.path))))
        return specs.rename(columns={"index": "model"})[["model"] + _SPEC_COLUMNS]

    @property
    def metrics(self) -> pd.DataFrame:
        """Every evaluation of every model (metrics.csv), with the model's hyper-parameters
        (corruption, seeds, weight decay, dropout, lr) as columns; the progress measures
        (restricted_*, excluded_*, full_*, gini_*, weight_sq; key_freqs as lists of ints) too. The file is checked as the
        CLI checks it; of a run still training, the evaluations every model has finished."""
        _native.check_history(str(self.path))
        try:
            m = pd.read_csv(self.path / "metrics.csv", dtype={"key_freqs": str})
        except (OSError, ValueError) as e:
            raise GrokscopeError(f"{self.path / 'metrics.csv'}: {e}") from None
        if "key_freqs" in m.columns:
            # Space-separated in the file; a list of ints here (empty: none, or not measured).
            m["key_freqs"] = [[int(x) for x in str(v).split()] if isinstance(v, str) else [] for v in m["key_freqs"]]
        if not self.finished:
            per_model = m.groupby("model")["step"].max()
            m = m[m["step"] <= per_model.min()]
        return self._fleet().merge(m, on="model", how="right")

    @property
    def summary(self) -> pd.DataFrame:
        """One row per model: hyper-parameters, final metrics, phase (categorical), dynamics."""
        path = self.path / "summary.json"
        if not path.is_file():
            raise GrokscopeError(
                f"{self.path}: the run has not finished (no summary.json); .metrics has its evaluations so far"
            )
        try:
            with open(path, encoding="utf-8") as f:
                s = json.load(f)
            models = s["models"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise GrokscopeError(f"{path}: not a run summary ({e})") from None
        try:
            rows = []
            for m in models:
                row = {k: v for k, v in m.items() if k not in ("final", "dynamics")}
                row["model"] = row.pop("index")
                row.update({k: _number(v) for k, v in m["final"].items() if k not in ("model", "step", "ipr_hist")})
                row["steps"] = m["final"].get("step")
                row.update(m["dynamics"])
                if row["phase"] not in PHASES:
                    raise ValueError(f"unknown phase {row['phase']!r}")
                rows.append(row)
            if not rows:
                raise ValueError("no models")
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise GrokscopeError(f"{path}: not a run summary ({type(e).__name__}: {e})") from None
        df = pd.DataFrame(rows)
        df["phase"] = pd.Categorical(df["phase"], categories=PHASES)
        return df

    def weights(self, model: int = 0) -> Dict[str, np.ndarray]:
        """The final weights of one model (e.g. U, V, W [, bn.*] of an MLP) as numpy arrays."""
        model = _index(model, "model")
        if not self.finished:
            raise GrokscopeError(
                f"{self.path}: the run has not finished, it has no final weights (resume it with grokscope.train(resume=...))"
            )
        path = self.path / "weights.safetensors"
        tensors, meta = _safetensors.read(path)
        self._same_config(path, meta)
        if not tensors or any(v.ndim == 0 for v in tensors.values()):
            raise GrokscopeError(f"{path}: not grokscope weights (no tensors, or a tensor without a model axis)")
        n = next(iter(tensors.values())).shape[0]
        if not 0 <= model < n:
            raise GrokscopeError(f"{self.path}: model {model} is out of range: the run has {n} model(s)")
        return {k: v[model] for k, v in tensors.items()}

    @property
    def dataset(self) -> Dataset:
        """The inputs and labels the run trains and is evaluated on (dataset.safetensors):
        ``pairs`` [N, 2] (a token task) or ``features`` [N, dim] (dense data; for images also
        ``images`` [N, height, width], the same values), ``train`` (bool mask) [N], ``labels``
        (true) [N], and per model
        ``train_labels`` [M, n_train] and ``corrupted`` (bool) [M, n_train]."""
        path = self.path / "dataset.safetensors"
        if not path.is_file():
            raise GrokscopeError(
                f"{path}: missing (runs written before grokscope exported its dataset lack it)"
            )
        t, meta = _safetensors.read(path)
        self._same_config(path, meta)
        inputs = "features" if "features" in t else "pairs"
        _safetensors.require(path, t, {inputs: 2, "train": 1, "labels": 1, "train_labels": 2, "corrupted": 2})
        t["train"] = t["train"].astype(bool)
        t["corrupted"] = t["corrupted"].astype(bool)
        if inputs == "features":
            try:
                shape = [int(d) for d in json.loads(meta.get("grokscope", "{}")).get("shape", [])]
            except (ValueError, TypeError, AttributeError):
                raise GrokscopeError(f"{path}: its metadata is not grokscope's") from None
            n, dim = t["features"].shape
            if len(shape) == 2 and shape[0] * shape[1] == dim:
                t["images"] = t["features"].reshape(n, shape[0], shape[1])
        return cast(Dataset, t)

    def _same_config(self, path: Path, meta: Dict[str, str]) -> None:
        """Raises GrokscopeError when a file names another training config than the run's
        summary (a file copied in from another run); nothing to compare before the run has
        finished or for files written before grokscope tagged them."""
        written = _safetensors.tag(path, meta, "trained_config")
        summary = self.path / "summary.json"
        if written is None or not summary.is_file():
            return
        try:
            with open(summary, encoding="utf-8") as f:
                trained = json.load(f).get("trained_config")
        except (OSError, ValueError, AttributeError):
            return  # .summary names what is wrong with it
        if isinstance(trained, str) and written != trained:
            raise GrokscopeError(
                f"{path}: written by another training config than this run's (summary.json): it belongs to another run"
            )

    def analyze(self, model: Optional[int] = None, force: bool = True) -> pd.DataFrame:
        """Per-neuron analysis (IPR, dominant frequency, …; analysis/neurons.csv). Like
        ``prune`` and ``report`` it runs to its end (seconds) before Ctrl-C takes effect; its
        files are replaced whole, never half-written."""
        model = None if model is None else _index(model, "model")
        d = _native.analyze(str(self.path), model, force)
        return pd.read_csv(Path(d) / "neurons.csv")

    def prune(self, order: str = "ascending", model: Optional[int] = None, seed: int = 0,
              force: bool = True) -> pd.DataFrame:
        """Accuracies after pruning neurons in ``order`` (ascending / descending IPR, random)."""
        model = None if model is None else _index(model, "model")
        seed = _index(seed, "seed")
        if seed >= 2**64:
            raise GrokscopeError(f"seed = {seed}: expected 0 to 2**64 - 1")
        return pd.read_csv(_native.prune(str(self.path), str(order), model, seed, force))

    def report(self, force: bool = True) -> Path:
        """Writes the figures and report.html; returns report.html's path."""
        return Path(_native.report(str(self.path), force))


def _index(v: Any, what: str) -> int:
    """A non-negative integer argument (TypeError for another type, GrokscopeError if < 0)."""
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{what} must be an integer, got {v!r}")
    v = int(v)
    if v < 0:
        raise GrokscopeError(f"{what} = {v}: expected 0 or more")
    return v


class _TermAsExit:
    """While training in the main thread, SIGTERM raises SystemExit(143) at the next check,
    so that the run is saved resumably first (as the CLI does on SIGTERM)."""

    def __enter__(self) -> "_TermAsExit":
        self.old: Any = None
        if threading.current_thread() is threading.main_thread():
            def on_term(signum: int, frame: Any) -> None:
                raise SystemExit(128 + signum)

            try:
                self.old = signal.signal(signal.SIGTERM, on_term)
            except (ValueError, OSError):
                self.old = None
        return self

    def __exit__(self, *exc: Any) -> Literal[False]:
        if self.old is not None:
            signal.signal(signal.SIGTERM, self.old)
        return False


def _number(v: Any) -> Any:
    if isinstance(v, str) and v in ("NaN", "inf", "-inf"):
        return float(v.replace("NaN", "nan"))
    return v


def load_run(path: Union[str, Path]) -> Run:
    """The run in directory ``path``."""
    return Run(path)


def train(config: ConfigLike = None, *, out: Union[str, Path, None] = None, runs_dir: Union[str, Path] = "runs",
          resume: Union[str, Path, None] = None, progress: Union[bool, Callable[[int, int], None]] = True,
          report: bool = True, **overrides: Any) -> Run:
    """Trains a fleet and returns its `Run`.

    ``config``: a preset name (``"default"``, ``"grokking"``, …), a TOML path, a dict or a
    `Config`; ``overrides``: config keys (``train__weight_decay=[0, 5]`` or
    ``**{"train.weight_decay": [0, 5]}``). ``out``: the new run directory (default
    ``runs_dir/<name>-<time>``). ``resume``: continue the interrupted run in that directory
    instead. ``progress``: a tqdm bar (True), nothing (False) or ``f(step, total)``.
    Ctrl-C (and SIGTERM, in the main thread) stops after the current step, leaves the run
    resumable and raises KeyboardInterrupt (SystemExit). The GIL is released while training;
    a training in another thread is stopped resumably when the interpreter exits.
    """
    if resume is not None and (config is not None or overrides or out is not None):
        raise GrokscopeError("resume continues a run in its own directory with its own config: give no config, overrides or out")
    if out is not None and str(out) == "":
        raise GrokscopeError("out: an empty path; give the new run directory, or None for runs_dir/<name>-<time>")
    cfg = None if resume is not None else Config(config, **overrides)
    update, close = _progress_callback(progress, "training")
    try:
        with _TermAsExit():
            if cfg is None:
                path = _native.train(None, [], resume=str(resume), report=report, progress=update)
            else:
                path = _native.train(cfg.text, cfg.sets, out=None if out is None else str(out),
                                     runs_dir=str(runs_dir), report=report, progress=update, source=cfg.origin)
    finally:
        close()
    return Run(path)
