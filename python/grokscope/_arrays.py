"""Pure functions over numpy arrays, computed by the library itself: the Fourier IPR of weight
vectors (SCIENCE.md §4), the phase of final accuracies (§5) and the dataset of a config (§1).
They need no run directory: give them your own arrays."""

from __future__ import annotations

from typing import Any, List, Literal, Optional, Tuple, TypedDict, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from . import _native
from ._config import Config, ConfigLike
from ._native import GrokscopeError

#: What to do with a vector that holds a NaN or an infinite entry.
NonFinite = Literal["raise", "nan"]


class _Labels(TypedDict):
    #: bool [N]: True for a training example.
    train: NDArray[np.bool_]
    #: uint32 [N]: the true label (a ∘ b mod p on an operation table).
    labels: NDArray[np.uint32]
    #: uint32 [M, n_train]: the labels model m trains on (corrupted ones included).
    train_labels: NDArray[np.uint32]
    #: bool [M, n_train]: True for an example of model m's corrupted set C.
    corrupted: NDArray[np.bool_]


class Dataset(_Labels, total=False):
    """The inputs and labels of a config or a run (the tensors of ``dataset.safetensors``,
    docs/OUTPUTS.md): N examples, the training examples first. A token task (the operation
    tables) has ``pairs``; a dataset of dense features has ``features`` instead."""

    #: uint32 [N, 2]: the pairs (a, b) of a token task.
    pairs: NDArray[np.uint32]
    #: float32 [N, dim]: the feature vectors of a dense dataset.
    features: NDArray[np.float32]
    #: float32 [N, height, width]: a dataset of images (Fashion-MNIST, MNIST-5k) read from a
    #: run (`Run.dataset`): ``features`` in the images' shape.
    images: NDArray[np.float32]


def _real_array(x: Any, what: str) -> NDArray[Any]:
    """``x`` as a numpy array of real numbers (TypeError for anything else)."""
    if x is None or isinstance(x, (str, bytes, dict)):
        raise TypeError(f"{what} must be an array of numbers, got {type(x).__name__}")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:  # ragged lists, objects numpy cannot take
        raise TypeError(f"{what} must be an array of numbers ({e})") from None
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{what} must be an array of real numbers, got dtype {a.dtype}")
    return a


def _vectors(x: ArrayLike, axis: int, what: str, nonfinite: str) -> Tuple[NDArray[np.float32], Tuple[int, ...]]:
    """The vectors of ``x`` along ``axis`` as contiguous little-endian float32 rows (the
    library's weights are float32), and the shape of the other axes."""
    if nonfinite not in ("raise", "nan"):
        raise GrokscopeError(f"nonfinite = {nonfinite!r}: expected 'raise' or 'nan'")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    a = _real_array(x, what)
    if a.ndim == 0:
        raise GrokscopeError(f"{what}: a scalar; expected vectors (an array with at least one axis)")
    if not -a.ndim <= axis < a.ndim:
        raise GrokscopeError(f"axis = {axis}: {what} has {a.ndim} axis/axes (shape {a.shape})")
    a = np.moveaxis(a, int(axis), -1)
    if a.shape[-1] == 0:
        raise GrokscopeError(f"{what}: vectors of length 0 (shape {a.shape}) have no Fourier spectrum")
    with np.errstate(over="ignore", invalid="ignore"):
        f = np.ascontiguousarray(a, dtype="<f4")
    if nonfinite == "raise":
        bad = ~np.isfinite(f)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            overflow = a.dtype.kind != "f" or bool(np.isfinite(a[where]))
            why = "is beyond float32's range" if overflow else f"is {a[where]}"
            raise GrokscopeError(
                f"{what}: the entry at {where} {why}; the library gives such a vector IPR NaN "
                "(a diverged model), pass nonfinite='nan' for that"
            )
    return f, a.shape[:-1]


def _iprs(values: List[Optional[float]], shape: Tuple[int, ...]) -> NDArray[np.float64]:
    out = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
    return out.reshape(shape)


def ipr(vectors: ArrayLike, axis: int = -1, *, nonfinite: NonFinite = "raise") -> NDArray[np.float64]:
    """The Fourier inverse participation ratio ``IPR_2`` of each vector along ``axis``
    (docs/SCIENCE.md §4 "Inverse participation ratio"), computed by the library
    (``model::ipr::Ipr::of``): ``û = |rfft(u)|``, the ``⌊p/2⌋ + 1`` magnitudes of the real DFT
    of the vector scaled to largest magnitude 1, and ``IPR = Σ û⁴ / (Σ û²)²``, in float64.

    ``vectors``: an array of real numbers, e.g. an MLP's ``U`` [N, p] (one IPR per neuron's U
    row) or a whole fleet's [M, N, p]; it is rounded to float32 first, as the library's
    weights are. Returns float64 with the shape of ``vectors`` less ``axis`` (0-d for one
    vector: ``float(grokscope.ipr(u))``). An all-zero vector has no IPR: NaN. A vector with a
    NaN or infinite entry (or one beyond float32's range) raises GrokscopeError, or with
    ``nonfinite="nan"`` gets IPR NaN, as the library gives a diverged model's neurons.
    The IPR of a *neuron* (the mean over its vectors) is `neuron_ipr`.
    """
    f, shape = _vectors(vectors, axis, "vectors", nonfinite)
    return _iprs(_native.ipr_vectors(f.tobytes(), f.shape[-1]), shape)


def neuron_ipr(*vectors: ArrayLike, axis: int = -1, nonfinite: NonFinite = "raise") -> NDArray[np.float64]:
    """The IPR of each neuron from its weight vectors (docs/SCIENCE.md §4): the mean of
    `ipr` over the neuron's non-zero vectors, NaN for a dead neuron (all of them zero) —
    exactly what the library's metrics (``mean_ipr``, ``dead_neurons``, ``ipr_hist.csv``) are
    made of (``model::ipr::mean_of_vectors``).

    Each of ``vectors`` holds one kind of vector of every neuron along ``axis``, all of one
    shape. For an MLP the vectors of neuron ``k`` are row ``k`` of ``U`` and ``V`` and column
    ``k`` of ``W``::

        w = run.weights(0)
        grokscope.neuron_ipr(w["U"], w["V"], w["W"].T)     # [N]

    ``nonfinite`` as for `ipr`.
    """
    if not vectors:
        raise GrokscopeError("neuron_ipr: give the neuron's weight vectors, e.g. neuron_ipr(U, V, W.T)")
    parts = [_vectors(v, axis, f"vectors[{i}]", nonfinite) for i, v in enumerate(vectors)]
    shapes = {(f.shape, s) for f, s in parts}
    if len(shapes) > 1:
        got = ", ".join(str(f.shape) for f, _ in parts)
        raise GrokscopeError(f"neuron_ipr: the vectors must have one shape (with axis {axis} last), got {got}")
    f0, shape = parts[0]
    data = np.ascontiguousarray(np.stack([f for f, _ in parts], axis=-2), dtype="<f4")
    return _iprs(_native.neuron_ipr_vectors(data.tobytes(), len(parts), f0.shape[-1]), shape)


def _accuracies(x: Any, what: str, missing: bool) -> NDArray[np.float64]:
    """An accuracy argument as float64; None (and NaN, when ``missing`` is allowed) is missing."""
    if x is None:
        if not missing:
            raise TypeError(f"{what} must be a number or an array of numbers, got None")
        return np.array(np.nan)
    if isinstance(x, (str, bytes, dict)):
        raise TypeError(f"{what} must be a number or an array of numbers, got {type(x).__name__}")
    try:
        a = np.asarray(x)
        if a.dtype == object:  # None for missing values inside a list or object column
            if not missing:
                raise TypeError(f"{what} must not hold None")
            a = np.array([np.nan if v is None else v for v in a.ravel()], dtype=np.float64).reshape(a.shape)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be a number or an array of numbers ({e})") from None
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{what} must be a number or an array of real numbers, got dtype {a.dtype}")
    return a.astype(np.float64)


@overload
def phase(test: float, mem: Optional[float], inv: Optional[float], clean: Optional[float],
          threshold: float = 0.9, full_threshold: float = 0.95) -> str: ...


@overload
def phase(test: ArrayLike, mem: Optional[ArrayLike], inv: Optional[ArrayLike], clean: Optional[ArrayLike],
          threshold: float = 0.9, full_threshold: float = 0.95) -> NDArray[np.str_]: ...


def phase(test: Any, mem: Any, inv: Any, clean: Any, threshold: float = 0.9,
          full_threshold: float = 0.95) -> Any:
    """The phase of a network from its final accuracies (docs/SCIENCE.md §5), by the
    library's ``metrics::phase::classify``: ``test`` accuracy, ``mem`` (A_mem), ``inv``
    (A_inv) and ``clean`` (A_clean), each a fraction in [0, 1]; ``threshold`` is ``hi``
    (``eval.threshold``) and ``full_threshold`` the stricter one A_inv must reach for Full
    Inversion (``eval.full_threshold``), checked as the config checks them.

    ``mem`` and ``inv`` are None (or NaN) when the model has no corrupted examples (then only
    Generalization, Memorization and Forgetting remain); ``clean`` is None (or NaN) when every
    training example is corrupted (it counts as < hi). Numbers give the phase name (a str);
    arrays (or lists, pandas columns) are classified elementwise after numpy broadcasting and
    give an array of names, e.g. ``grokscope.phase(s.test_acc, s.mem_acc, s.inv_acc,
    s.clean_acc)`` of a summary ``s``. Accuracies outside [0, 1], a NaN test accuracy, or
    ``mem`` given without ``inv`` raise GrokscopeError. "Diverged" (a NaN or infinite loss
    or weight) is decided before this table and is never returned here.
    """
    t = _accuracies(test, "test", missing=False)
    m = _accuracies(mem, "mem", missing=True)
    i = _accuracies(inv, "inv", missing=True)
    c = _accuracies(clean, "clean", missing=True)
    try:
        t, m, i, c = np.broadcast_arrays(t, m, i, c)
    except ValueError:
        raise GrokscopeError(
            f"phase: the shapes of test {t.shape}, mem {m.shape}, inv {i.shape} and clean {c.shape} do not broadcast"
        ) from None

    def opt(a: NDArray[np.float64]) -> List[Optional[float]]:
        return [None if np.isnan(v) else float(v) for v in a.ravel()]

    names = _native.classify_phases([float(v) for v in t.ravel()], opt(m), opt(i), opt(c), threshold, full_threshold)
    if t.ndim == 0:
        return names[0]
    return np.array(names, dtype=np.str_).reshape(t.shape)


def dataset(config: ConfigLike = None, **overrides: Any) -> Dataset:
    """The dataset a config trains on (docs/SCIENCE.md §1), built by the library as training
    builds it (``data::Split::new`` from the data settings, ``Split::corrupt`` for every model
    of the fleet) without building or training a network: the same arrays as the run's
    ``dataset.safetensors`` (`Run.dataset`).

    ``config`` and ``overrides`` as for `train` (a preset name, a TOML path such as a run's
    ``config.toml``, a dict or a `Config`; ``data__corruption=0.3``). Returns a `Dataset`
    dict: ``pairs`` uint32 [N, 2] (the training pairs first), ``train`` bool [N], ``labels``
    (true) uint32 [N], ``train_labels`` uint32 [M, n_train] and ``corrupted`` bool
    [M, n_train], one row per model of the fleet. A bad config raises GrokscopeError with the
    CLI's message.
    """
    cfg = Config(config, **overrides)
    n_train, models, name, shape, inputs, labels, trained, corrupted = _native.dataset(
        cfg.text, cfg.sets, cfg.origin
    )
    n = len(labels) // 4
    train = np.zeros(n, dtype=np.bool_)
    train[:n_train] = True
    out = Dataset(
        train=train,
        labels=np.frombuffer(labels, dtype="<u4").astype(np.uint32),
        train_labels=np.frombuffer(trained, dtype="<u4").reshape(models, n_train).astype(np.uint32),
        corrupted=np.frombuffer(corrupted, dtype=np.uint8).reshape(models, n_train).astype(np.bool_),
    )
    if name == "pairs":
        out["pairs"] = np.frombuffer(inputs, dtype="<u4").reshape(shape).astype(np.uint32)
    else:
        out["features"] = np.frombuffer(inputs, dtype="<f4").reshape(shape).astype(np.float32)
    return out
