"""The Python package against the command line: same runs, recomputed accuracies, Ctrl-C,
errors, sweeps, analysis."""

import os
import signal
import subprocess
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import grokscope

SMALL = {"data.p": 23, "model.width": 48, "train.epochs": 60, "train.weight_decay": [0, 5], "eval.every": 5}


def sets_of(d):
    from grokscope._config import toml_value

    out = []
    for k, v in d.items():
        out += ["--set", f"{k}={toml_value(v)}"]
    return out


def cli_train(cli, out, overrides, config=None):
    args = [cli, "train", "-q", "--no-report", "--out", str(out)] + sets_of(overrides)
    if config:
        args += ["--config", config]
    subprocess.run(args, check=True, capture_output=True)


def test_train_equals_the_cli(tmp_path, cli):
    cli_train(cli, tmp_path / "cli", SMALL)
    run = grokscope.train("default", out=tmp_path / "py", progress=False, report=False, **SMALL)
    for name in ["metrics.csv", "ipr_hist.csv", "summary.json", "weights.safetensors", "dataset.safetensors"]:
        assert (tmp_path / "cli" / name).read_bytes() == (run.path / name).read_bytes(), name
    strip = lambda p: [l for l in p.read_text().splitlines() if not l.startswith("#")]
    assert strip(tmp_path / "cli" / "config.toml") == strip(run.path / "config.toml")


def forward(w, pairs, cfg):
    """Logits of one MLP model in evaluation mode, in numpy (float64)."""
    U, V, W = (w[k].astype(np.float64) for k in ("U", "V", "W"))
    h = U[:, pairs[:, 0]] + V[:, pairs[:, 1]]  # [N, n]
    act = cfg["model"]["activation"]
    z = {"square": lambda x: x * x, "relu": lambda x: np.maximum(x, 0), "linear": lambda x: x}[act](h)
    if cfg["model"]["batchnorm"]:
        mean, var = w["bn.running_mean"][:, None], w["bn.running_var"][:, None]
        z = (z - mean) / np.sqrt(var + cfg["model"]["bn_eps"]) * w["bn.weight"][:, None] + w["bn.bias"][:, None]
    return (W @ z).T  # [n, p]


@pytest.mark.parametrize("extra", [{}, {"model.batchnorm": True}], ids=["mse", "batchnorm"])
def test_accuracies_recomputed_in_numpy(tmp_path, cli, extra):
    cli_train(cli, tmp_path / "run", {**SMALL, "data.corruption": 0.3, **extra})
    run = grokscope.load_run(tmp_path / "run")
    d, cfg = run.dataset, run.config
    n_train = int(d["train"].sum())
    last = run.metrics.groupby("model").tail(1).set_index("model")
    assert len(last) == 2
    for m in range(2):
        pred = forward(run.weights(m), d["pairs"], cfg).argmax(axis=1)
        tr, te = pred[:n_train], pred[n_train:]
        lab, c = d["train_labels"][m], d["corrupted"][m]
        truth = d["labels"]
        got = {
            "train_acc": np.mean(tr == lab),
            "test_acc": np.mean(te == truth[n_train:]),
            "mem_acc": np.mean(tr[c] == lab[c]),
            "inv_acc": np.mean(tr[c] == truth[:n_train][c]),
            "clean_acc": np.mean(tr[~c] == lab[~c]),
        }
        for k, v in got.items():
            assert abs(v - last.loc[m, k]) <= 1e-6, f"model {m} {k}: numpy {v}, metrics.csv {last.loc[m, k]}"
    s = run.summary
    assert list(s["model"]) == [0, 1] and s["phase"].dtype == "category"
    assert set(run.metrics.columns) >= {"weight_decay", "corruption", "step", "test_acc"}


def fourier_basis(p):
    """The orthonormal real Fourier basis of SCIENCE.md §10, one row per function."""
    x = np.arange(p)
    rows = [np.ones(p) / np.sqrt(p)]
    for k in range(1, (p - 1) // 2 + 1):
        rows += [np.sqrt(2 / p) * np.cos(2 * np.pi * k * x / p), np.sqrt(2 / p) * np.sin(2 * np.pi * k * x / p)]
    return np.array(rows)


def gini(x):
    x = np.sort(x)
    n = len(x)
    return float(np.sum((2 * np.arange(1, n + 1) - n - 1) * x) / (n * x.sum()))


def progress_in_numpy(w, d, m, cfg):
    """Every progress-measure column of one MLP model, from its weights and the dataset alone:
    a full 2-D FFT per neuron for the key frequencies, explicit p²-dimensional directions for
    the projection (none of the tool's shortcuts)."""
    p = cfg["data"]["p"]
    pairs, truth = d["pairs"], d["labels"].astype(int)
    n_train = int(d["train"].sum())
    lab, c = d["train_labels"][m].astype(int), d["corrupted"][m]
    U, V, W = (w[k].astype(np.float64) for k in ("U", "V", "W"))
    # Key frequencies: each neuron's share of variance per frequency over all pairs.
    A = (U[:, :, None] + V[:, None, :]) ** 2  # [N, a, b] (square activation, no BatchNorm)
    E = np.abs(np.fft.fft2(A)) ** 2
    E[:, 0, 0] = 0
    K = (p - 1) // 2
    per = np.stack([sum(E[:, i, j] for i, j in [(k, 0), (p - k, 0), (0, k), (0, p - k), (k, k), (p - k, p - k), (k, p - k), (p - k, k)]) for k in range(1, K + 1)], axis=1)
    share = per.max(axis=1) / E.sum(axis=(1, 2))
    dom = per.argmax(axis=1) + 1
    votes = np.bincount(dom[share >= 0.5], minlength=K + 1)
    key = [k for k in range(1, K + 1) if votes[k] >= 2]
    # The outputs and their projection onto the directions cos(w_k(a+b)), sin(w_k(a+b)).
    L = forward(w, pairs, cfg)  # [p², p], rows in the dataset's order
    B = fourier_basis(p)
    a, b = pairs[:, 0], pairs[:, 1]
    dirs = []
    for k in key:
        ck, sk = B[2 * k - 1], B[2 * k]
        dirs += [(ck[a] * ck[b] - sk[a] * sk[b]) / np.sqrt(2), (sk[a] * ck[b] + ck[a] * sk[b]) / np.sqrt(2)]
    D = np.array(dirs).T if dirs else np.zeros((len(pairs), 0))
    P = D @ (D.T @ L)
    restricted = P + (L - P).mean(axis=0)
    excluded = L - P

    def ce(out, y):
        mx = out.max(axis=1, keepdims=True)
        return np.log(np.exp(out - mx).sum(axis=1)) + mx[:, 0] - out[np.arange(len(y)), y]

    def mse(out, y):
        t = np.zeros_like(out)
        t[np.arange(len(y)), y] = 1
        return ((out - t) ** 2).mean(axis=1)

    cols = {}
    tr = slice(0, n_train)
    for name, f in [("ce", ce), ("mse", mse)]:
        for what, out in [("full", L), ("restricted", restricted)]:
            cols[f"{what}_{name}"] = f(out, truth).mean()
            rows = f(out[tr], lab)
            cols[f"{what}_{name}_clean"], cols[f"{what}_{name}_corrupt"] = rows[~c].mean(), rows[c].mean()
        rows = f(excluded[tr], lab)
        cols[f"excluded_{name}"] = rows.mean()
        cols[f"excluded_{name}_clean"], cols[f"excluded_{name}_corrupt"] = rows[~c].mean(), rows[c].mean()
    norms = lambda mats: np.sqrt(sum(((B @ M) ** 2).sum(axis=1) for M in mats))
    cols["gini_embed"] = gini(norms([U.T, V.T]))
    cols["gini_unembed"] = gini(norms([W]))
    cols["weight_sq"] = sum((x.astype(np.float64) ** 2).sum() for x in w.values())
    return key, cols


def test_progress_measures_recomputed_in_numpy(tmp_path, cli):
    cli_train(cli, tmp_path / "run", {**SMALL, "data.corruption": 0.3, "train.epochs": 400})
    run = grokscope.load_run(tmp_path / "run")
    d, cfg = run.dataset, run.config
    last = run.metrics.groupby("model").tail(1).set_index("model")
    for m in range(2):
        key, cols = progress_in_numpy(run.weights(m), d, m, cfg)
        assert last.loc[m, "key_freqs"] == key, f"model {m}"
        for k, v in cols.items():
            got = last.loc[m, k]
            assert abs(v - got) <= 1e-6 * max(1.0, abs(v)), f"model {m} {k}: numpy {v}, metrics.csv {got}"
    assert any(len(k) > 0 for k in last["key_freqs"]), "a trained network has key frequencies"


def test_ctrl_c_leaves_a_resumable_run(tmp_path):
    out = tmp_path / "run"
    timer = threading.Timer(1.0, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            grokscope.train("default", out=out, progress=False, report=False,
                            **{"data.p": 41, "model.width": 256, "train.epochs": 8000, "eval.every": 100})
    finally:
        timer.cancel()
    state = (out / "state.json").read_text()
    assert '"interrupted"' in state and (out / "resume.safetensors").is_file()
    assert not (out / "weights.safetensors").exists()
    run = grokscope.train(resume=out, progress=False, report=False)
    assert run.finished and len(run.summary) == 3


def test_bad_config_raises_the_cli_message(tmp_path, cli):
    for key, value in [("model.width", "abc"), ("data.p", 1), ("train.lr", -1.0)]:
        with pytest.raises(grokscope.GrokscopeError) as e:
            grokscope.train("default", out=tmp_path / "x", progress=False, **{key: value})
        r = subprocess.run([cli, "train", "-q", "--out", str(tmp_path / "y")] + sets_of({key: value}),
                           capture_output=True, text=True)
        assert r.returncode == 2
        cli_message = r.stderr.strip().splitlines()[-1].removeprefix("error: ")
        assert str(e.value) == cli_message
        assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    with pytest.raises(grokscope.GrokscopeError, match="neither a config file nor a preset"):
        grokscope.train("no-such-preset", out=tmp_path / "z")


def test_sweep_load_and_grid(tmp_path):
    spec = {
        "name": "tiny",
        "base": {"data.p": 11, "model.width": 16, "train.epochs": 40},
        "axes": {"data.train_fraction": [0.5, 0.7], "data.corruption": [0.2, 0.4]},
    }
    sw = grokscope.sweep(spec, tmp_path / "sw", workers=2, progress=False)
    res = sw.results
    assert len(res) == 4 and res["phase"].dtype == "category"
    g = sw.grid()
    assert g.shape == (2, 2) and list(g.index) == sorted(g.index, reverse=True)
    assert len(sw.curves(0)) > 1
    again = grokscope.load_sweep(tmp_path / "sw")
    pd.testing.assert_frame_equal(again.results, res)


def test_analyze_prune_report(tmp_path, cli):
    cli_train(cli, tmp_path / "run", SMALL)
    run = grokscope.load_run(tmp_path / "run")
    neurons = run.analyze()
    assert len(neurons) == 2 * 48 and "ipr" in neurons.columns
    pr = run.prune("descending", model=1)
    assert {"pruned", "test_acc"} <= set(pr.columns)
    assert run.report().is_file()
    with pytest.raises(grokscope.GrokscopeError, match="out of range"):
        run.weights(5)


LONG = {"data.p": 41, "model.width": 128, "train.epochs": 4000, "eval.every": 100}


def run_python(code, cwd, sig=None, after=1.0):
    """Runs `code` in a fresh interpreter (optionally sending `sig` after `after` seconds)."""
    import sys
    import time

    p = subprocess.Popen([sys.executable, "-c", code], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if sig is not None:
        time.sleep(after)
        p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def assert_resumable(path):
    state = (path / "state.json").read_text()
    assert '"interrupted"' in state, state
    assert (path / "resume.safetensors").is_file() and not (path / "weights.safetensors").exists()


def test_exit_while_a_thread_trains_saves_the_run(tmp_path):
    code = (
        "import threading, time, grokscope\n"
        f"t = threading.Thread(target=lambda: grokscope.train('default', out='run', progress=False, report=False, **{LONG!r}), daemon=True)\n"
        "t.start(); time.sleep(1.0)\n"
    )
    rc, out, err = run_python(code, tmp_path)
    assert rc == 0, err
    assert_resumable(tmp_path / "run")
    assert grokscope.train(resume=tmp_path / "run", progress=False, report=False).finished


def test_sigterm_saves_the_run(tmp_path):
    code = f"import grokscope\ngrokscope.train('default', out='run', progress=False, report=False, **{LONG!r})\n"
    rc, out, err = run_python(code, tmp_path, sig=signal.SIGTERM)
    assert rc == 143, err
    assert_resumable(tmp_path / "run")


def test_ctrl_c_stops_a_sweep_at_once(tmp_path):
    import time

    spec = {
        "name": "slow",
        "base": {"data.p": 31, "model.width": 64, "train.epochs": 3000},
        "axes": {"data.train_fraction": [0.3, 0.5, 0.7], "data.corruption": [0.1, 0.3, 0.5], "train.weight_decay": [0, 1]},
    }
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    t0 = time.monotonic()
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            grokscope.sweep(spec, tmp_path / "sw", workers=2, progress=False)
    finally:
        timer.cancel()
    assert time.monotonic() - t0 < 4.0, "stopped within a step, not at the end of the sweep"
    done = grokscope.sweep(spec, tmp_path / "sw", workers=2, progress=False)
    assert len(done.results) == 18


def test_numpy_values_and_checked_files(tmp_path):
    run = grokscope.train("default", out=tmp_path / "run", progress=False, report=False,
                          **{**SMALL, "train.weight_decay": np.array([0.0, 5.0]), "data.corruption": np.float64(0.3)})
    assert list(run.summary["weight_decay"]) == [0.0, 5.0]
    # A truncated metrics.csv is refused as the CLI refuses it.
    text = (run.path / "metrics.csv").read_text()
    (run.path / "metrics.csv").write_text(text[:300])
    with pytest.raises(grokscope.GrokscopeError, match="metrics.csv"):
        run.metrics
    with pytest.raises(TypeError):
        run.weights(0.5)
    with pytest.raises(grokscope.GrokscopeError):
        run.prune(model=-1)


def test_threads_of_one_process_never_share_a_run_or_a_worker_name(tmp_path):
    out = tmp_path / "run"
    timer = threading.Timer(0.5, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt, match="continue it with grokscope.train"):
            grokscope.train("default", out=out, progress=False, report=False, **LONG)
    finally:
        timer.cancel()
    errors = []

    def resume():
        try:
            grokscope.train(resume=out, progress=False, report=False)
        except grokscope.GrokscopeError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=resume) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 1 and "another thread of this process" in errors[0], errors
    assert grokscope.load_run(out).finished
    # Two sweeps of one plan on one directory from two threads finish it together.
    spec = {"name": "two", "max_fleet": 1, "base": {"data.p": 23, "model.width": 32, "train.epochs": 300},
            "axes": {"data.train_fraction": [0.3, 0.5, 0.7], "data.corruption": [0.1, 0.3]}}
    sweeps = [threading.Thread(target=grokscope.sweep, args=(spec, tmp_path / "sw"), kwargs={"progress": False})
              for _ in range(2)]
    for t in sweeps:
        t.start()
    for t in sweeps:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in sweeps)
    assert len(grokscope.load_sweep(tmp_path / "sw").results) == 6


def test_bad_files_and_arguments_raise_grokscope_errors(tmp_path, cli):
    cli_train(cli, tmp_path / "run", SMALL)
    run = grokscope.load_run(tmp_path / "run")
    summary = (run.path / "summary.json").read_text()
    for bad in ['{"models": null}', '{"models": [1, 2]}', '{"models": []}', summary.replace("Coexistence", "Bogus").replace("Memorization", "Bogus")]:
        (run.path / "summary.json").write_text(bad)
        with pytest.raises(grokscope.GrokscopeError):
            run.summary
    (run.path / "summary.json").write_text(summary)
    (run.path / "weights.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00" + b"[" * 8)
    with pytest.raises(grokscope.GrokscopeError):
        run.weights(0)
    with pytest.raises(TypeError):
        grokscope.train("default", out=tmp_path / "x", progress=5)


def flip(path, at_fraction):
    """Inverts 64 bytes of a file in place (length unchanged), as a disk or copy would."""
    b = bytearray(path.read_bytes())
    i = int(len(b) * at_fraction)
    b[i : i + 64] = bytes(x ^ 0xFF for x in b[i : i + 64])
    path.write_bytes(bytes(b))


def test_damaged_or_foreign_files_are_refused_naming_the_file(tmp_path, cli):
    cli_train(cli, tmp_path / "run", SMALL)
    cli_train(cli, tmp_path / "other", {**SMALL, "model.init_seed": 1})
    run = grokscope.load_run(tmp_path / "run")
    whole = {n: (run.path / n).read_bytes() for n in ("weights.safetensors", "dataset.safetensors")}
    # Intact: read (the digest checked), and the numbers are the file's.
    assert run.weights(1)["U"].shape == (48, 23) and run.dataset["pairs"].shape == (23 * 23, 2)
    # 64 bytes inverted in the tensor data or in the header: refused, naming the file.
    for name, get in [("weights.safetensors", lambda: run.weights(0)), ("dataset.safetensors", lambda: run.dataset)]:
        for at in (0.02, 0.5, 0.97):
            flip(run.path / name, at)
            with pytest.raises(grokscope.GrokscopeError) as e:
                get()
            assert name in str(e.value) and ("digest" in str(e.value) or "safetensors" in str(e.value)), str(e.value)
            (run.path / name).write_bytes(whole[name])
    # The weights of another run (another init seed) copied in: whole, but not this run's.
    (run.path / "weights.safetensors").write_bytes((tmp_path / "other" / "weights.safetensors").read_bytes())
    with pytest.raises(grokscope.GrokscopeError) as e:
        run.weights(0)
    assert "weights.safetensors" in str(e.value) and "another run" in str(e.value)
    (run.path / "weights.safetensors").write_bytes(whole["weights.safetensors"])
    np.testing.assert_array_equal(run.weights(0)["U"], run.weights(0)["U"])


def test_messages_name_python_arguments_and_presets_are_the_librarys(tmp_path):
    run = grokscope.train("default", out=tmp_path / "run", progress=False, report=False,
                          **{**SMALL, "train.epochs": 2})
    with pytest.raises(grokscope.GrokscopeError) as e:
        grokscope.train("default", out=tmp_path / "run", progress=False, **SMALL)
    assert "out=" in str(e.value) and "--out" not in str(e.value)
    run.analyze()
    with pytest.raises(grokscope.GrokscopeError) as e:
        run.analyze(force=False)
    assert "force=True" in str(e.value) and "--force" not in str(e.value)
    root = Path(__file__).resolve().parents[2] / "configs"
    files = {p.stem: p.read_text() for d in ("paper", "real") for p in (root / d).glob("*.toml")}
    files["default"] = (root / "default.toml").read_text()
    assert grokscope.presets() == files
