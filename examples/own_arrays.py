# %% [markdown]
# # grokscope on your own arrays
#
# The pure functions of grokscope compute what the library computes, on arrays you bring:
# `grokscope.dataset` (the pairs, split and labels a config trains on, SCIENCE.md §1),
# `grokscope.ipr` / `grokscope.neuron_ipr` (the Fourier IPR of weight vectors, §4) and
# `grokscope.phase` (the phase of final accuracies, §5). Here they measure two networks
# written by hand in numpy: Gromov's analytic solution (§7), which generalizes with IPR 1
# neurons, and a random one. Nothing is trained; the script runs in a second
# (`python examples/own_arrays.py`). It is typed: `mypy examples/own_arrays.py` checks it
# against grokscope's stubs.

# %%
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from numpy.typing import NDArray

import grokscope

P = 23
Weights = Tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]

# %% The dataset of a config, without training: α = 0.5, ξ = 0.3 of wrong labels
data: grokscope.Dataset = grokscope.dataset("default", data__p=P, data__corruption=0.3,
                                            train__weight_decay=0)
n_train = int(data["train"].sum())
print(f"{len(data['pairs'])} pairs, {n_train} for training, "
      f"{int(data['corrupted'][0].sum())} of them with a wrong label")


# %% Two networks of our own: U, V [N, p], W [p, N] (the shapes of grokscope's weights)
def analytic(p: int, per_frequency: int = 8) -> Weights:
    """Gromov's solution (SCIENCE.md §7): neuron k on frequency σ_k with phases φ_k, ψ_k;
    the m ≥ 8 neurons of one frequency get φ_j = 2πj/m, ψ_j = 2φ_j, which cancels every
    unwanted term exactly (as grokscope's model.mlp.init = "analytic")."""
    sigma = np.repeat(np.arange(1, (p - 1) // 2 + 1), per_frequency)
    phi = 2 * np.pi * np.tile(np.arange(per_frequency), (p - 1) // 2) / per_frequency
    psi = 2 * phi
    n = np.arange(p)
    U = np.cos(2 * np.pi * np.outer(sigma, n) / p + phi[:, None])
    V = np.cos(2 * np.pi * np.outer(sigma, n) / p + psi[:, None])
    W = np.cos(-2 * np.pi * np.outer(n, sigma) / p - phi - psi)
    return U, V, W


def random_network(p: int, width: int, seed: int = 0) -> Weights:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(width, p)), rng.normal(size=(width, p)), rng.normal(size=(p, width))


def predict(w: Weights, pairs: NDArray[np.uint32]) -> NDArray[np.intp]:
    """argmax of W φ(U e_a + V e_b) with φ(x) = x² (SCIENCE.md §2)."""
    U, V, W = w
    h = U[:, pairs[:, 0]] + V[:, pairs[:, 1]]  # [N, examples]
    top: NDArray[np.intp] = np.argmax(W @ (h * h), axis=0)
    return top


def accuracies(pred: NDArray[np.intp], d: grokscope.Dataset, model: int = 0) -> Dict[str, float]:
    """test accuracy, A_mem, A_inv and A_clean of one model's predictions (SCIENCE.md §4)."""
    train = d["train"]
    tr, truth = pred[train], d["labels"][train]
    lab, c = d["train_labels"][model], d["corrupted"][model]
    return {
        "test": float(np.mean(pred[~train] == d["labels"][~train])),
        "mem": float(np.mean(tr[c] == lab[c])),
        "inv": float(np.mean(tr[c] == truth[c])),
        "clean": float(np.mean(tr[~c] == lab[~c])),
    }


# %% Their accuracies, phases and neuron IPRs
networks = {"analytic": analytic(P), "random": random_network(P, 88)}
for name, w in networks.items():
    acc = accuracies(predict(w, data["pairs"]), data)
    phase: str = grokscope.phase(acc["test"], acc["mem"], acc["inv"], acc["clean"])
    U, V, W = w
    iprs = grokscope.neuron_ipr(U, V, W.T)  # neuron k: U row k, V row k, W column k
    print(f"{name:>8}: test {acc['test']:.3f}, A_mem {acc['mem']:.3f}, A_inv {acc['inv']:.3f}, "
          f"A_clean {acc['clean']:.3f} → {phase}; neuron IPR {np.nanmean(iprs):.3f} "
          f"(U rows alone {float(np.mean(grokscope.ipr(U))):.3f})")
    if name == "analytic":
        # It answers every pair with the true label: it ignores the wrong ones.
        assert phase == "Full Inversion" and acc["test"] == 1.0, acc
        assert np.allclose(iprs, 1.0), iprs
    else:
        assert phase == "Forgetting" and float(np.nanmax(iprs)) < 0.5, (phase, iprs)

# %% phase works elementwise: at test accuracy 1, A_mem decides between the three phases
mem = np.array([0.0, 0.5, 0.95])
print(dict(zip(mem.tolist(), grokscope.phase(1.0, mem, 1 - mem, 1.0).tolist())))
