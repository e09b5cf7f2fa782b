# %% [markdown]
# # The paper's main figures, from Python
#
# Doshi, Das, He, Gromov, *To grok or not to grok* (ICLR 2024), reproduced with grokscope:
# accuracy curves with A_mem and A_inv (Fig. 2), IPR histograms (Fig. 3), pruning curves
# (Fig. 4) and a phase diagram (Fig. 5). Run it as a script (`python examples/paper_figures.py
# [OUT_DIR]`) or cell by cell (`# %%`) in VS Code / Jupyter. `GROKSCOPE_EXAMPLE_SMALL=1`
# shrinks every run to seconds (p = 23, N = 64) for a quick check; the defaults are the
# paper's (p = 97, N = 500: a few minutes on a laptop, the phase diagram longer).

# %%
import os
import sys
from pathlib import Path
from typing import Any, Dict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import grokscope  # noqa: E402

SMALL = os.environ.get("GROKSCOPE_EXAMPLE_SMALL") == "1"
OUT = Path(sys.argv[1] if len(sys.argv) > 1 else "paper-figures")
OUT.mkdir(parents=True, exist_ok=True)
size: Dict[str, Any] = {"data.p": 23, "model.mlp.width": 64, "train.epochs": 150} if SMALL else {}

# %% [markdown]
# ## Regularization: three weight decays at α = 0.5, ξ = 0.35 (the default experiment)

# %%
run = grokscope.train("default", out=OUT / "regularization", progress=not SMALL, report=False, **size)
print(run.summary[["model", "weight_decay", "phase", "train_acc", "test_acc", "mem_acc", "inv_acc"]])

# %% Accuracy curves (Fig. 2): train, test, A_mem (dashed), A_inv (dash-dot), log step axis
m = run.metrics
fig, axes = plt.subplots(1, 3, figsize=(15, 4), sharey=True)
for ax, (wd, g) in zip(axes, m.groupby("weight_decay")):
    g = g[g["step"] > 0]
    ax.plot(g["step"], g["train_acc"], label="train")
    ax.plot(g["step"], g["test_acc"], label="test")
    ax.plot(g["step"], g["mem_acc"], "--", label="A_mem")
    ax.plot(g["step"], g["inv_acc"], "-.", label="A_inv")
    ax.set_xscale("log")
    ax.set_title(f"weight decay {wd:g}")
    ax.set_xlabel("step")
axes[0].set_ylabel("accuracy")
axes[-1].legend(frameon=False)
fig.tight_layout()
fig.savefig(OUT / "accuracy.png", dpi=120)

# %% IPR histograms (Fig. 3): per-neuron IPR of the trained networks
neurons = run.analyze()
fig, ax = plt.subplots(figsize=(6, 4))
bins = np.linspace(0, 1, 21).tolist()
for model, g in neurons.groupby("model"):
    wd = run.summary.loc[model, "weight_decay"]
    ax.hist(g["ipr"].dropna(), bins=bins, histtype="step", linewidth=2, label=f"wd {wd:g}")
ax.set_yscale("log")
ax.set_xlabel("neuron IPR")
ax.set_ylabel("neurons")
ax.legend(frameon=False)
fig.tight_layout()
fig.savefig(OUT / "ipr_histogram.png", dpi=120)

# %% Pruning curves (Fig. 4): remove low-IPR (memorizing) neurons first
fig, ax = plt.subplots(figsize=(6, 4))
for model in run.summary["model"]:
    p = run.prune("ascending", model=model)
    frac = p["pruned"] / p["pruned"].max()
    wd = run.summary.loc[model, "weight_decay"]
    ax.plot(frac, p["test_acc"], label=f"test, wd {wd:g}")
    ax.plot(frac, p["mem_acc"], "--", label=f"A_mem, wd {wd:g}")
ax.set_xlabel("fraction of neurons pruned (low IPR first)")
ax.set_ylabel("accuracy")
ax.legend(frameon=False, fontsize=8)
fig.tight_layout()
fig.savefig(OUT / "pruning.png", dpi=120)

# %% [markdown]
# ## Phase diagram (Fig. 5): α × ξ at one weight decay

# %%
grid_axes = {
    "data.train_fraction": [0.3, 0.5, 0.7] if SMALL else [0.1, 0.3, 0.5, 0.7, 0.9],
    "data.corruption": [0.1, 0.3, 0.5] if SMALL else [0.1, 0.3, 0.5, 0.7, 0.9],
}
base = {**size, "train.weight_decay": 5}
sw = grokscope.sweep({"name": "phase-wd5", "base": base, "axes": grid_axes}, OUT / "phase-sweep",
                     workers=1, progress=not SMALL)
grid = sw.grid()
print(grid)
codes = {p: i for i, p in enumerate(grokscope.PHASES)}
img = grid.apply(lambda col: col.map(lambda p: codes[p])).to_numpy(dtype=float)
fig, ax = plt.subplots(figsize=(6, 5))
ax.imshow(img, cmap="tab10", vmin=0, vmax=9, aspect="auto")
for i in range(img.shape[0]):
    for j in range(img.shape[1]):
        ax.text(j, i, grid.iloc[i, j], ha="center", va="center", fontsize=8)
ax.set_xticks(range(len(grid.columns)), [f"{x:g}" for x in grid.columns])
ax.set_yticks(range(len(grid.index)), [f"{a:g}" for a in grid.index])
ax.set_xlabel("corruption fraction ξ")
ax.set_ylabel("training fraction α")
ax.set_title("phases at weight decay 5")
fig.tight_layout()
fig.savefig(OUT / "phase_diagram.png", dpi=120)
print(f"figures in {OUT}/: accuracy.png, ipr_histogram.png, pruning.png, phase_diagram.png")
