"""The pure functions over arrays (grokscope.ipr, neuron_ipr, phase, dataset) against a run
directory's own values, and their refusal of bad input."""

import csv
import json

import numpy as np
import pytest

import grokscope
from grokscope import _safetensors

# Six models in about a second: clean and corrupted, three weight decays; their phases are
# Generalization, Forgetting and Memorization.
FLEET = {"data.p": 23, "model.width": 48, "train.epochs": 400, "eval.every": 50,
         "train.weight_decay": [0, 5, 20], "data.corruption": [0, 0.3]}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("arrays") / "run"
    return grokscope.train("default", out=out, progress=False, report=False, **FLEET)


def summary_models(run):
    with open(run.path / "summary.json", encoding="utf-8") as f:
        return json.load(f)["models"]


def csv_rows(path):
    """A CSV file's rows as dicts of strings (parsed with float(), which round-trips the
    shortest representation the library writes exactly)."""
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def weights(run, m):
    """Model m's weights, read with the package's safetensors reader."""
    tensors, _ = _safetensors.read(run.path / "weights.safetensors")
    return {k: v[m] for k, v in tensors.items()}


def test_neuron_ipr_is_the_metrics_mean_ipr_and_histogram(run):
    models = summary_models(run)
    hist = {int(r["model"]): r for r in csv_rows(run.path / "ipr_hist.csv")}  # the last row per model
    assert len(models) == 6
    for m, s in enumerate(models):
        w = weights(run, m)
        n = grokscope.neuron_ipr(w["U"], w["V"], w["W"].T)
        assert n.shape == (48,) and n.dtype == np.float64
        alive = [x for x in n.tolist() if not np.isnan(x)]
        final = s["final"]
        assert len(n) - len(alive) == final["dead_neurons"]
        # mean_ipr is the library's sum over the living neurons in order, divided by their
        # number: the same float operations, so equal to the bit.
        assert sum(alive) / len(alive) == final["mean_ipr"], m
        bins = np.minimum((np.array(alive) * 20).astype(int), 19)
        assert [int(hist[m][f"bin{b:02d}"]) for b in range(20)] == np.bincount(bins, minlength=20).tolist()
        # The same through the run's own weights reader.
        np.testing.assert_array_equal(n, grokscope.neuron_ipr(*(run.weights(m)[k] for k in "UV"), run.weights(m)["W"].T))


def test_ipr_of_each_vector_is_the_analysis_neurons_csv(run):
    run.analyze()
    rows = csv_rows(run.path / "analysis" / "neurons.csv")
    assert len(rows) == 6 * 48
    for m in range(6):
        w = weights(run, m)
        mine = [r for r in rows if int(r["model"]) == m]
        assert [int(r["neuron"]) for r in mine] == list(range(48))
        for col, vectors in [("ipr_u", w["U"]), ("ipr_v", w["V"]), ("ipr_w", w["W"].T)]:
            written = np.array([float(r[col]) if r[col] else np.nan for r in mine])
            # neurons.csv squares the spectrum's magnitudes |û| where the metrics (and ipr)
            # square |û|² directly: the two agree to an ulp or two, not always to the bit.
            np.testing.assert_allclose(grokscope.ipr(vectors), written, rtol=4e-15, atol=0)
            # axis: the W columns in place give the same as the transposed rows.
            if col == "ipr_w":
                np.testing.assert_array_equal(grokscope.ipr(w["W"], axis=0), grokscope.ipr(vectors))
        ipr = np.array([float(r["ipr"]) for r in mine])
        np.testing.assert_allclose(grokscope.neuron_ipr(w["U"], w["V"], w["W"].T), ipr, rtol=4e-15, atol=0)
    # The whole fleet at once: [M, N, p] → [M, N].
    tensors, _ = _safetensors.read(run.path / "weights.safetensors")
    np.testing.assert_array_equal(grokscope.ipr(tensors["U"])[3], grokscope.ipr(weights(run, 3)["U"]))


def test_phase_of_the_final_accuracies_is_the_summary_phase(run):
    models = summary_models(run)
    cfg = run.config["eval"]
    for s in models:
        f = s["final"]
        got = grokscope.phase(f["test_acc"], f["mem_acc"], f["inv_acc"], f["clean_acc"],
                              threshold=cfg["threshold"], full_threshold=cfg["full_threshold"])
        assert isinstance(got, str) and got == s["phase"]
    assert {s["phase"] for s in models} == {"Generalization", "Forgetting", "Memorization"}
    # Elementwise over the summary's columns (NaN: no corrupted examples).
    df = run.summary
    got = grokscope.phase(df["test_acc"], df["mem_acc"], df["inv_acc"], df["clean_acc"])
    assert got.shape == (6,) and list(got) == list(df["phase"])


def test_phase_follows_the_table():
    hi, full = 0.9, 0.95
    cases = [
        ((hi, hi, 0.0, 1.0), "Coexistence"),
        ((1.0, 0.5, full, 1.0), "Full Inversion"),
        ((1.0, 0.5, 0.94, 1.0), "Partial Inversion"),
        ((0.5, 1.0, 0.0, 0.5), "Forgetting"),
        ((0.5, 1.0, 0.0, None), "Forgetting"),  # no clean examples: A_clean counts as < hi
        ((0.5, 1.0, 0.0, 1.0), "Memorization"),
        ((0.5, 0.5, 0.0, 1.0), "Confusion"),
        ((hi, None, None, 0.0), "Generalization"),
        ((0.5, None, None, 1.0), "Memorization"),
        ((0.5, float("nan"), float("nan"), 0.5), "Forgetting"),
    ]
    for args, name in cases:
        assert grokscope.phase(*args) == name, args
    assert grokscope.phase(1.0, 0.5, 0.96, 1.0, full_threshold=0.97) == "Partial Inversion"
    assert grokscope.phase(0.95, 0.0, 1.0, 1.0, threshold=0.96, full_threshold=0.96) == "Confusion"
    # The defaults are the library's (the default config's eval section).
    ev = grokscope.Config("default").resolved()["eval"]
    assert (ev["threshold"], ev["full_threshold"]) == (0.9, 0.95)
    # Broadcasting: a scalar with arrays, a 2-D grid, None for a whole column.
    grid = grokscope.phase(np.array([[1.0], [0.5]]), [1.0, 0.0], [0.0, 1.0], 1.0)
    assert grid.tolist() == [["Coexistence", "Full Inversion"], ["Memorization", "Confusion"]]
    assert grokscope.phase([1.0, 0.0], None, None, [1.0, 0.0]).tolist() == ["Generalization", "Forgetting"]
    assert grokscope.phase([0.5, 1.0], [None, 0.0], [None, 1.0], 1.0).tolist() == ["Memorization", "Full Inversion"]
    assert set(grokscope.PHASES) >= {name for _, name in cases}


def test_ipr_by_hand():
    p = 23
    t = np.arange(p)
    one_frequency = np.cos(2 * np.pi * 3 * t / p)
    assert float(grokscope.ipr(one_frequency)) == pytest.approx(1.0, abs=1e-6)
    flat = np.zeros(p)
    flat[0] = 1.0  # a delta: all ⌊p/2⌋ + 1 magnitudes equal
    assert float(grokscope.ipr(flat)) == pytest.approx(1 / (p // 2 + 1), rel=1e-12)
    # Scale-free, float32 like the library's weights (float64 input is rounded first).
    x = np.random.default_rng(0).normal(size=(4, p))
    np.testing.assert_array_equal(grokscope.ipr(x), grokscope.ipr(x.astype(np.float32)))
    np.testing.assert_allclose(grokscope.ipr(1e-30 * x), grokscope.ipr(x), rtol=1e-6)
    assert grokscope.ipr(x.tolist()).shape == (4,) and grokscope.ipr(np.zeros((2, 0, p))).shape == (2, 0)
    assert grokscope.ipr(np.zeros((0, 10**12))).shape == (0,)  # no vectors: no FFT planned
    # Zero vectors have no IPR (NaN); a neuron averages its non-zero vectors; a dead one is NaN.
    z = np.zeros(p)
    assert np.isnan(grokscope.ipr(z))
    u, w = x[0], x[1]
    assert float(grokscope.neuron_ipr(u, z, w)) == (float(grokscope.ipr(u)) + float(grokscope.ipr(w))) / 2
    assert np.isnan(grokscope.neuron_ipr(z, z, z))
    # A diverged vector: NaN when asked for, as the library's metrics give it.
    bad = x.copy()
    bad[1, 5] = np.inf
    got = grokscope.ipr(bad, nonfinite="nan")
    assert np.isnan(got[1]) and not np.isnan(got[[0, 2, 3]]).any()
    assert grokscope.ipr(np.ones((3, 1))).tolist() == [1.0, 1.0, 1.0]  # p = 1: one frequency


def test_dataset_of_the_config_is_the_run_dataset(run):
    d = run.dataset
    for mine in (grokscope.dataset("default", **FLEET), grokscope.dataset(run.path / "config.toml"),
                 grokscope.dataset(grokscope.Config("default", **FLEET))):
        assert set(mine) == set(d) == {"pairs", "train", "labels", "train_labels", "corrupted"}
        for k in d:
            assert mine[k].dtype == d[k].dtype and mine[k].shape == d[k].shape, k
            np.testing.assert_array_equal(mine[k], d[k], err_msg=k)
    # What the run trained on and was measured against.
    n_train = int(d["train"].sum())
    models = summary_models(run)
    assert d["train_labels"].shape == (6, n_train)
    assert [int(c.sum()) for c in d["corrupted"]] == [s["n_corrupted"] for s in models]
    p = FLEET["data.p"]
    a, b = d["pairs"][:, 0].astype(int), d["pairs"][:, 1].astype(int)
    np.testing.assert_array_equal(d["labels"], (a + b) % p)


@pytest.mark.parametrize("extra", [
    {"data.corruption_mode": "any", "data.corruption": [0.2, 0.5], "data.corruption_seed": [1, 2]},
    {"data.operation": "div", "data.corruption_mode": "reference", "data.corruption": 0.4, "data.split_seed": 7},
    {"data.corruption_mode": "reference-transformer", "data.corruption": 0.3, "data.train_fraction": 0.3},
], ids=["any", "div-reference", "reference-transformer"])
def test_dataset_equals_dataset_safetensors(tmp_path, extra):
    cfg = {"data.p": 13, "model.width": 8, "train.epochs": 1, "eval.every": 0, **extra}
    run = grokscope.train("default", out=tmp_path / "run", progress=False, report=False, **cfg)
    t, _ = _safetensors.read(run.path / "dataset.safetensors")
    mine = grokscope.dataset("default", **cfg)
    for k in ("pairs", "labels", "train_labels"):
        np.testing.assert_array_equal(mine[k], t[k], err_msg=k)
    for k in ("train", "corrupted"):
        np.testing.assert_array_equal(mine[k], t[k].astype(bool), err_msg=k)


def test_bad_input_raises_clear_errors():
    x = np.ones((2, 23), dtype=np.float32)
    # Wrong types: TypeError.
    for bad in ["abc", None, {"U": x}, [["a", "b"]], np.ones(3, dtype=complex), np.ones(3, dtype=bool), [[1, 2], [3]]]:
        with pytest.raises(TypeError):
            grokscope.ipr(bad)
    with pytest.raises(TypeError):
        grokscope.ipr(x, axis=0.5)
    # Wrong shapes and values: GrokscopeError (a ValueError) saying what is wrong.
    with pytest.raises(grokscope.GrokscopeError, match="scalar"):
        grokscope.ipr(3.0)
    with pytest.raises(grokscope.GrokscopeError, match="length 0"):
        grokscope.ipr(np.zeros((3, 0)))
    with pytest.raises(grokscope.GrokscopeError, match="axis = 2"):
        grokscope.ipr(x, axis=2)
    for value, what in [(np.nan, "nan"), (np.inf, "inf"), (1e39, "float32")]:
        bad = x.astype(np.float64)
        bad[1, 3] = value
        with pytest.raises(grokscope.GrokscopeError, match=r"\(1, 3\).*nonfinite='nan'") as e:
            grokscope.ipr(bad)
        assert what in str(e.value)
    with pytest.raises(grokscope.GrokscopeError, match="nonfinite"):
        grokscope.ipr(x, nonfinite="ignore")  # type: ignore[arg-type]
    with pytest.raises(grokscope.GrokscopeError, match="one shape"):
        grokscope.neuron_ipr(x, x[:1])
    with pytest.raises(grokscope.GrokscopeError, match="give the neuron"):
        grokscope.neuron_ipr()
    # The native functions check their own input too (no panic, no crash).
    with pytest.raises(grokscope.GrokscopeError, match="not whole float32 vectors"):
        grokscope._native.ipr_vectors(b"\x00" * 10, 23)
    with pytest.raises(grokscope.GrokscopeError):
        grokscope._native.ipr_vectors(b"", 0)
    with pytest.raises(grokscope.GrokscopeError):
        grokscope._native.neuron_ipr_vectors(b"\x00" * 8, 0, 2)
    with pytest.raises(grokscope.GrokscopeError, match="equally long"):
        grokscope._native.classify_phases([1.0], [], [], [])
    # phase: accuracies in [0, 1], mem and inv together, valid thresholds, shapes that broadcast.
    for args, match in [
        ((95.0, 0.1, 0.9, 1.0), "test = 95: an accuracy"),
        ((float("nan"), 0.1, 0.9, 1.0), "test = NaN"),
        ((1.0, -0.1, 0.9, 1.0), "mem"),
        ((1.0, 0.5, None, 1.0), "both given"),
        (([1.0, 1.0], [0.5, 0.5], [0.9, 2.0], 1.0), r"inv\[1\] = 2"),
        (([1.0, 1.0], [1.0, 1.0, 1.0], 0.0, 1.0), "do not broadcast"),
    ]:
        with pytest.raises(grokscope.GrokscopeError, match=match):
            grokscope.phase(*args)
    for kw, match in [({"threshold": 0.0}, "threshold"), ({"threshold": float("nan")}, "threshold"),
                      ({"threshold": 0.9, "full_threshold": 0.8}, "full_threshold"),
                      ({"full_threshold": 1.5}, "full_threshold")]:
        with pytest.raises(grokscope.GrokscopeError, match=match):
            grokscope.phase(1.0, 0.5, 0.9, 1.0, **kw)
    for bad in ["high", None, [[1.0], ["x"]], {"a": 1}]:
        with pytest.raises(TypeError):
            grokscope.phase(bad, 0.5, 0.5, 1.0)  # type: ignore[call-overload]
    with pytest.raises(TypeError):
        grokscope.phase(1.0, 0.5, 0.5, 1.0, threshold="high")  # type: ignore[call-overload]
    # dataset: the CLI's messages for a bad config, nothing written.
    with pytest.raises(grokscope.GrokscopeError) as e:
        grokscope.dataset("default", data__p=1)
    with pytest.raises(grokscope.GrokscopeError) as t:
        grokscope.Config("default", data__p=1).resolved()
    assert str(e.value) == str(t.value) and "data.p" in str(e.value)
    with pytest.raises(grokscope.GrokscopeError, match="train_fraction"):
        grokscope.dataset("default", data__p=3, data__train_fraction=0.01)
    with pytest.raises(grokscope.GrokscopeError, match="neither a config file nor a preset"):
        grokscope.dataset("no-such-preset")
    with pytest.raises(grokscope.GrokscopeError):
        grokscope.dataset({"data": {"no_such_key": 1}})


DEEP = {"model.kind": "deep", "model.deep.widths": [16], "train.loss": "ce", "train.batch_size": 100,
        "train.epochs": 1, "eval.every": 0, "data.corruption": 0.2, "train.weight_decay": 0.0}


def test_a_dense_run_gives_its_features_and_images(tmp_path):
    run = grokscope.train("default", out=tmp_path / "m1d", progress=False, report=False,
                          **{**DEEP, "data.dataset": "mnist1d"})
    d = run.dataset
    assert d["features"].shape == (5000, 40) and "pairs" not in d and "images" not in d
    assert d["train"].sum() == 4000 and d["train_labels"].shape == (1, 4000)
    assert d["corrupted"].sum() == 800
    mine = grokscope.dataset(run.path / "config.toml")
    np.testing.assert_array_equal(mine["features"], d["features"])
    # Fashion-MNIST (installed by scripts/install-datasets): images of 28 × 28.
    run = grokscope.train("default", out=tmp_path / "fm", progress=False, report=False,
                          **{**DEEP, "data.dataset": "fashion-mnist", "data.n_train": 500, "data.n_test": 100})
    d = run.dataset
    assert d["images"].shape == (600, 28, 28)
    np.testing.assert_array_equal(d["images"].reshape(600, 784), d["features"])
    # The deep MLP on the operation table is refused with the CLI's message.
    with pytest.raises(grokscope.GrokscopeError, match="dense feature vectors"):
        grokscope.train("default", out=tmp_path / "bad", progress=False, **{"model.kind": "deep"})
    assert not (tmp_path / "bad").exists()
