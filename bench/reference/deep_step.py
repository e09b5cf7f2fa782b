"""The deep MLP's minibatch training step in PyTorch eager mode, for `bench/reference/run`.

The network of docs/SCIENCE.md §9 as `grokscope bench --deep` times it: 784 inputs, three
hidden ReLU layers of 200 with biases (`nn.Linear`), a linear read-out to 10 classes,
cross-entropy, AdamW (lr 1e-3, weight decay 0.1, betas 0.9 / 0.999), minibatches of 128 rows
drawn from 3840 uniform [0, 1) inputs. A fleet of M such models is trained in PyTorch one
after another, so the per-model step is this program's step. Prints the median milliseconds
per step.
"""

import torch

from timing import median_ms, setup

a, _ = setup(dim=784, width=200, depth=3, batch=128)
n = 3840
x_all = torch.rand(n, a.dim)
y_all = torch.randint(0, 10, (n,))
layers = []
fan_in = a.dim
for _ in range(a.depth):
    layers += [torch.nn.Linear(fan_in, a.width), torch.nn.ReLU()]
    fan_in = a.width
layers.append(torch.nn.Linear(fan_in, 10))
model = torch.nn.Sequential(*layers)
opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, betas=(0.9, 0.999), eps=1e-8)
loss_fn = torch.nn.CrossEntropyLoss()
state = {"s": 0}


def step():
    s = state["s"]
    state["s"] = s + 1
    rows = (torch.arange(a.batch) * 31 + s * 977) % n
    x, y = x_all[rows], y_all[rows]
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()


print(f"{median_ms(step, a.steps):.3f}")
