"""grokscope from Python: train fleets of networks on modular arithmetic with corrupted
labels, load their runs as pandas DataFrames and numpy arrays, analyze, prune, sweep and
report — the same library as the `grokscope` command line (Doshi, Das, He, Gromov, "To grok
or not to grok", ICLR 2024).

    import grokscope
    run = grokscope.train("default", **{"train.epochs": 200})
    run.summary            # one row per model: hyper-parameters, final metrics, phase
    run.metrics            # every evaluation, tidy, hyper-parameters as columns

Pure functions over your own arrays, computed by the library: ``ipr`` and ``neuron_ipr``
(Fourier IPR of weight vectors, SCIENCE.md §4), ``phase`` (of final accuracies, §5) and
``dataset`` (the pairs, split and labels of a config, §1).
"""

import atexit as _atexit

from ._native import GrokscopeError, __version__
from ._native import shutdown as _shutdown
from ._arrays import Dataset, dataset, ipr, neuron_ipr, phase
from ._config import PHASES, Config, ConfigLike, presets
from ._run import Run, load_run, train
from ._sweep import Sweep, load_sweep, sweep

# At interpreter exit, trainings and sweeps still running in other threads are stopped after
# their current step with their state saved (as SIGTERM stops the CLI), before Python kills
# daemon threads.
_atexit.register(_shutdown)

__all__ = [
    "GrokscopeError",
    "PHASES",
    "Config",
    "ConfigLike",
    "Dataset",
    "Run",
    "Sweep",
    "__version__",
    "dataset",
    "ipr",
    "load_run",
    "load_sweep",
    "neuron_ipr",
    "phase",
    "presets",
    "sweep",
    "train",
]
