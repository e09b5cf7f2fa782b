"""The Transformer training step of docs/SCIENCE.md §8 in PyTorch eager mode, for
`bench/reference/run`: tokens [a, b] (vocabulary p), token + learned position embeddings,
one encoder block (4-head self-attention without mask, an MLP of width 4d with ReLU, both
residual, no LayerNorm), logits at the last position through a bias-free output layer,
cross-entropy, AdamW; full batch (p = 97, α = 0.5: n = 4704), d = 128. Prints the median
milliseconds per step (M models trained one after the other: per-model time).
"""

import math

import torch

from timing import median_ms, setup

a, pairs = setup(d=128, heads=4)
p, d, H = a.p, a.d, a.heads
labels = (pairs[:, 0] + pairs[:, 1]) % p


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = torch.nn.Linear(d, 3 * d)
        self.o = torch.nn.Linear(d, d)
        self.fc1 = torch.nn.Linear(d, 4 * d)
        self.fc2 = torch.nn.Linear(4 * d, d)

    def forward(self, x):
        n, t, _ = x.shape
        q, k, v = self.qkv(x).split(d, dim=2)
        q, k, v = (z.view(n, t, H, d // H).transpose(1, 2) for z in (q, k, v))
        att = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // H), dim=-1)
        x = x + self.o((att @ v).transpose(1, 2).reshape(n, t, d))
        return x + self.fc2(torch.relu(self.fc1(x)))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.tok = torch.nn.Embedding(p, d)
        self.pos = torch.nn.Embedding(2, d)
        self.block = Block()
        self.out = torch.nn.Linear(d, p, bias=False)

    def forward(self, tokens):
        x = self.tok(tokens) + self.pos(torch.arange(2))
        return self.out(self.block(x)[:, -1])


net = Net()
opt = torch.optim.AdamW(net.parameters(), lr=0.01, weight_decay=0.5, betas=(0.9, 0.98), eps=1e-8)


def step():
    opt.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(net(pairs), labels)
    loss.backward()
    opt.step()


print(f"{median_ms(step, a.steps):.3f}")
