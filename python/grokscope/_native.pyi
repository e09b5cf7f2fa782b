"""Type stubs of the native module `grokscope._native` (python/src/lib.rs): the Rust library
seen from Python. Paths are `str` or `os.PathLike`; the array functions take numpy's
`tobytes()` of little-endian arrays (the abi3 build has no buffer protocol)."""

import os
from typing import Callable, Sequence

_Path = str | os.PathLike[str]

__all__ = [
    "GrokscopeError",
    "__version__",
    "presets",
    "fleet_axes",
    "phases",
    "resolve",
    "train",
    "run_config",
    "fleet",
    "analyze",
    "prune",
    "report",
    "sweep",
    "is_sweep",
    "shutdown",
    "check_history",
    "ipr_vectors",
    "neuron_ipr_vectors",
    "classify_phases",
    "dataset",
]

__version__: str

class GrokscopeError(ValueError):
    """A bad config, input or run directory: the message is the one the grokscope CLI prints."""

def presets() -> list[tuple[str, str]]:
    """`[(name, toml text)]` of the shipped configs."""

def fleet_axes() -> list[str]:
    """The fields a fleet may vary per model (the library's ``config::FLEET_AXES``)."""

def phases() -> list[str]:
    """The phases of SCIENCE.md §5, in the order of the paper's table."""

def resolve(text: str, sets: Sequence[str], source: str = ...) -> str:
    """The config `text` with `sets` applied and checked, every default filled in, as JSON."""

def train(
    text: str | None,
    sets: Sequence[str],
    out: _Path | None = None,
    runs_dir: _Path = ...,
    resume: _Path | None = None,
    report: bool = True,
    progress: Callable[[int, int], object] | None = None,
    source: str = ...,
) -> str:
    """Trains into a run directory (fresh, or `resume`d) and returns its path."""

def run_config(dir: _Path) -> str:
    """The resolved config of a run directory as JSON."""

def fleet(dir: _Path) -> str:
    """The settings of every model of a run's fleet, as JSON (a list of objects)."""

def analyze(dir: _Path, model: int | None = None, force: bool = False) -> str:
    """Per-neuron analysis and pruning sweeps into `DIR/analysis/`; returns that directory."""

def prune(dir: _Path, order: str, model: int | None = None, seed: int = 0, force: bool = False) -> str:
    """A pruning sweep in `order` (ascending, descending, random); returns its CSV's path."""

def report(dir: _Path, force: bool = True) -> str:
    """Figures and report.html of a run or sweep directory; returns report.html's path."""

def sweep(spec: str, out: _Path, workers: int = 1, progress: Callable[[int, int], object] | None = None) -> str:
    """Runs the sweep `spec` (a sweep file's text) in `out` with `workers` workers; returns `out`."""

def is_sweep(dir: _Path) -> bool:
    """Whether `dir` is a sweep directory."""

def shutdown(timeout: float = 120.0) -> None:
    """Stops every training and sweep running in other threads, resumably, and waits for them."""

def check_history(dir: _Path) -> None:
    """Reads a run's metrics back with every check the CLI makes (raises on a bad file)."""

# The pure functions over arrays (grokscope.ipr, neuron_ipr, phase, dataset).

def ipr_vectors(data: bytes, p: int) -> list[float | None]:
    """IPR_2 of each length-`p` float32 vector of `data`; None for an all-zero vector."""

def neuron_ipr_vectors(data: bytes, vectors: int, p: int) -> list[float | None]:
    """The mean IPR over the non-zero vectors of each neuron (`data`: float32
    [neurons, vectors, p]); None for a dead neuron."""

def classify_phases(
    test: Sequence[float],
    mem: Sequence[float | None],
    inv: Sequence[float | None],
    clean: Sequence[float | None],
    threshold: float | None = None,
    full_threshold: float | None = None,
) -> list[str]:
    """The phase names of equally long lists of final accuracies."""

def dataset(
    text: str, sets: Sequence[str], source: str = ...
) -> tuple[int, int, str, list[int], bytes, bytes, bytes, bytes]:
    """`(n_train, models, inputs_name, inputs_shape, inputs, labels, train_labels, corrupted)`
    of the config, the arrays as little-endian bytes (inputs: ``pairs`` u32 [N, 2] or
    ``features`` f32 [N, dim]; u32 [N], u32 [models, n_train], u8 [models, n_train])."""
