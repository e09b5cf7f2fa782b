"""Sweeps: phase diagrams over (α, ξ, regularization, seeds), run from Python or loaded."""

import os
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Union

import pandas as pd

from . import _native
from ._config import PHASES, dict_to_toml, presets
from ._native import GrokscopeError
from ._run import _TermAsExit, _index, _progress_callback


def _spec_text(spec: Any) -> str:
    if isinstance(spec, dict):
        return dict_to_toml(spec)
    if isinstance(spec, (str, os.PathLike)):
        s = os.fspath(spec)
        if os.path.isfile(s):
            try:
                with open(s, encoding="utf-8") as f:
                    return f.read()
            except (OSError, UnicodeDecodeError) as e:
                raise GrokscopeError(f"{s}: cannot read the sweep file: {e}") from None
        known = presets()
        name = s[len("paper/"):] if s.startswith("paper/") else s
        if name in known and "[axes]" in known[name]:
            return known[name]
        if "[axes]" in s or "\n" in s:
            return s
        raise GrokscopeError(f"{s}: neither a sweep file, a sweep preset nor sweep TOML text")
    raise GrokscopeError(f"{spec!r}: a sweep is a file, a preset name (e.g. phase-wd-quick), TOML text or a dict")


class Sweep:
    """A sweep directory: its results table, phase grids and per-run curves."""

    def __init__(self, path: Union[str, Path]):
        self.path = Path(path)
        if not _native.is_sweep(str(self.path)):
            raise GrokscopeError(f"{self.path} is not a sweep directory (no plan.json)")

    def __repr__(self) -> str:
        return f"Sweep({str(self.path)!r})"

    @property
    def results(self) -> pd.DataFrame:
        """One row per finished run (results.csv): its axis values, final metrics, phase
        (categorical) and dynamics."""
        path = self.path / "results.csv"
        if not path.is_file():
            raise GrokscopeError(f"{self.path}: no results.csv yet (the sweep has not finished)")
        try:
            df = pd.read_csv(path)
            df["phase"] = pd.Categorical(df["phase"], categories=PHASES)
        except (OSError, ValueError, KeyError) as e:
            raise GrokscopeError(f"{path}: {e}") from None
        return df

    @property
    def phase_grid(self) -> pd.DataFrame:
        """The majority phase per (group, α, ξ) cell with its agreement (phase_grid.csv)."""
        path = self.path / "phase_grid.csv"
        if not path.is_file():
            raise GrokscopeError(f"{self.path}: no phase_grid.csv (the sweep does not vary both α and ξ, or has not finished)")
        df = pd.read_csv(path, keep_default_na=False)
        df["phase"] = pd.Categorical(df["phase"], categories=PHASES)
        return df

    def grid(self, group: Optional[str] = None) -> pd.DataFrame:
        """The phase diagram of one group as a table: α rows (or weight-decay rows when the
        sweep varies the weight decay but not α; growing upward, as in the figures), ξ
        columns, phase names."""
        g = self.phase_grid
        groups = list(dict.fromkeys(g["group"]))
        if group is None:
            group = groups[0] if groups else ""
        if group not in groups:
            raise GrokscopeError(f"no group {group!r}; groups: {groups}")
        t = g[g["group"] == group].pivot(index=g.columns[1], columns="xi", values="phase")
        return t.sort_index(ascending=False)

    def curves(self, run: int) -> pd.DataFrame:
        """The metrics over steps of run ``run`` (curves/NNNNNN.csv)."""
        run = _index(run, "run")
        path = self.path / "curves" / f"{run:06d}.csv"
        if not path.is_file():
            raise GrokscopeError(f"{self.path}: run {run} has no curve (not finished, or out of range)")
        return pd.read_csv(path)

    def report(self, force: bool = True) -> Path:
        """Writes the sweep's figures and report.html; returns report.html's path."""
        return Path(_native.report(str(self.path), force))

    def to_xarray(self, value: str = "test_acc") -> Any:
        """The results as an xarray DataArray over the sweep's axes (needs xarray)."""
        try:
            import xarray  # noqa: F401
        except ImportError:
            raise GrokscopeError("to_xarray needs the optional package xarray (pip install xarray)") from None
        df = self.results
        axes = [c for c in df.columns if "." in c]
        return df.set_index(axes)[value].to_xarray()


def load_sweep(path: Union[str, Path]) -> Sweep:
    """The sweep in directory ``path``."""
    return Sweep(path)


def sweep(spec: Union[str, "os.PathLike[str]", Dict[str, Any]], out: Union[str, Path], workers: int = 1,
          progress: Union[bool, Callable[[int, int], None]] = True) -> Sweep:
    """Runs a sweep (a sweep file, a preset such as ``"phase-wd-quick"``, TOML text or a
    dict with ``name``, ``base`` and ``axes``) in directory ``out`` with ``workers`` workers
    (threads sharing the directory, like several ``grokscope sweep run`` processes). A sweep
    directory resumes where it stopped: call again with the same spec."""
    workers = _index(workers, "workers")
    if not 1 <= workers <= 1024:
        raise GrokscopeError(f"workers = {workers}: expected 1 to 1024")
    if str(out) == "":
        raise GrokscopeError("out: an empty path; give the sweep directory")
    text = _spec_text(spec)
    update, close = _progress_callback(progress, "sweep")
    try:
        with _TermAsExit():
            path = _native.sweep(text, str(out), workers, update)
    finally:
        close()
    return Sweep(path)
