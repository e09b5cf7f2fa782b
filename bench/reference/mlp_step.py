"""The authors' MLP training step in PyTorch eager mode, for `bench/reference/run`.

The model of docs/SCIENCE.md §2 as the reference code writes it: the two operands one-hot
encoded and concatenated (2p inputs), a bias-free linear layer to N, the square activation,
a bias-free linear layer to p, MSE against the one-hot labels, AdamW; full batch
(p = 97, N = 500, α = 0.5: n = 4704). Prints the median milliseconds per step.
"""

import torch

from timing import median_ms, setup

a, pairs = setup(width=500)
p, n_hidden = a.p, a.width
x = torch.cat([torch.nn.functional.one_hot(pairs[:, 0], p), torch.nn.functional.one_hot(pairs[:, 1], p)], 1).float()
y = torch.nn.functional.one_hot((pairs[:, 0] + pairs[:, 1]) % p, p).float()
std = 0.5 / (2 * n_hidden) ** (1 / 3)
model = torch.nn.Sequential(torch.nn.Linear(2 * p, n_hidden, bias=False), torch.nn.Linear(n_hidden, p, bias=False))
for layer in model:
    torch.nn.init.normal_(layer.weight, std=std)
opt = torch.optim.AdamW(model.parameters(), lr=0.01, weight_decay=5.0, betas=(0.9, 0.98), eps=1e-8)


def step():
    opt.zero_grad(set_to_none=True)
    h = model[0](x)
    out = model[1](h * h)
    loss = ((out - y) ** 2).sum(1).mean()
    loss.backward()
    opt.step()


print(f"{median_ms(step, a.steps):.3f}")
