#!/usr/bin/env python3
"""Makes the training-data influence fixtures in test/fixtures/influence/
(committed; run with a pip torch and scikit-learn: .torch/bin/python
scripts/make_influence.py):

- digits (scikit-learn's 8x8 digits, scaled to [0, 1]): 60 training and 6 test
  examples, as flat rows (train_x.npy, test_x.npy), as images (train_img.npy,
  test_img.npy), their classes (train_y.npy, test_y.npy) and three binary
  attributes (train_attr.npy, test_attr.npy: > 4, even, has a loop);
- an MLP (fc1 64->16, relu, fc2 16->10), a CNN (conv1 1->4 3x3, relu, conv2
  4->8 3x3 stride 2, relu, fc 128->10) and a sigmoid MLP on the attributes,
  each trained by SGD for 30 epochs with a TorchScript checkpoint (traced)
  every 10: mlp_0.pt ... sig_2.pt.

The classes are defined here so that scripts/make_influence_references.py
can rebuild the same modules and load the checkpoints' weights into them.

--bench DIR makes the bench's set instead (not committed): 10,000 training
examples of 3x16x16 images, a CNN and 3 checkpoints.
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "influence")


class MLP(nn.Module):
    def __init__(self, classes=10, sigmoid=False):
        super().__init__()
        self.fc1 = nn.Linear(64, 16)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(16, classes)
        self.sigmoid = sigmoid

    def forward(self, x):
        out = self.fc2(self.relu(self.fc1(x)))
        return torch.sigmoid(out) if self.sigmoid else out


class CNN(nn.Module):
    def __init__(self, channels=1, size=8, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 4, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(8 * (size // 2) ** 2, classes)

    def forward(self, x):
        return self.fc(self.relu2(self.conv2(self.relu1(self.conv1(x)))).flatten(1))


def digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    rng = np.random.RandomState(0)
    order = rng.permutation(len(d.target))
    x = (d.data[order] / 16.0).astype(np.float32)
    y = d.target[order].astype(np.int64)
    attr = np.stack([y > 4, y % 2 == 0, np.isin(y, [0, 6, 8, 9])], 1).astype(np.float32)
    return x, y, attr


def train(model, x, y, loss_fn, epochs, lr, batch, prefix, seed, every):
    """SGD; a checkpoint every `every` epochs: prefix_0.pt, prefix_1.pt, ..."""
    torch.manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for epoch in range(epochs):
        perm = torch.randperm(len(x))
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss_fn(model(x[idx]), y[idx]).backward()
            opt.step()
        if (epoch + 1) % every == 0:
            model.eval()
            torch.jit.trace(model, x[:2]).save(f"{prefix}_{(epoch + 1) // every - 1}.pt")
            model.train()


def main():
    if "--bench" in sys.argv:
        return bench(sys.argv[sys.argv.index("--bench") + 1])
    os.makedirs(OUT, exist_ok=True)
    x, y, attr = digits()
    n_train, n_test = 60, 6
    sets = {"train": slice(0, n_train), "test": slice(n_train, n_train + n_test)}
    for name, s in sets.items():
        np.save(os.path.join(OUT, f"{name}_x.npy"), x[s])
        np.save(os.path.join(OUT, f"{name}_img.npy"), x[s].reshape(-1, 1, 8, 8))
        np.save(os.path.join(OUT, f"{name}_y.npy"), y[s])
        np.save(os.path.join(OUT, f"{name}_attr.npy"), attr[s])
    tx, ty, ta = torch.tensor(x[:n_train]), torch.tensor(y[:n_train]), torch.tensor(attr[:n_train])
    torch.manual_seed(1)
    train(MLP(), tx, ty, nn.CrossEntropyLoss(), 30, 0.1, 10, os.path.join(OUT, "mlp"), 1, 10)
    torch.manual_seed(2)
    train(CNN(), tx.reshape(-1, 1, 8, 8), ty, nn.CrossEntropyLoss(), 30, 0.1, 10, os.path.join(OUT, "cnn"), 2, 10)
    torch.manual_seed(3)
    train(MLP(classes=3, sigmoid=True), tx, ta, nn.BCELoss(), 30, 0.5, 10, os.path.join(OUT, "sig"), 3, 10)
    print("made", sorted(os.listdir(OUT)))


def bench(dest):
    """10,000 random 3x16x16 images in 10 classes with class-dependent means, a CNN, 3 checkpoints."""
    os.makedirs(dest, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    n = 10000
    y = torch.randint(0, 10, (n,), generator=g)
    means = torch.randn(10, 3, 1, 1, generator=g)
    x = means[y] + torch.randn(n, 3, 16, 16, generator=g)
    np.save(os.path.join(dest, "train_x.npy"), x.numpy().astype(np.float32))
    np.save(os.path.join(dest, "train_y.npy"), y.numpy().astype(np.int64))
    np.save(os.path.join(dest, "test_x.npy"), x[:8].numpy().astype(np.float32))
    np.save(os.path.join(dest, "test_y.npy"), y[:8].numpy().astype(np.int64))
    torch.manual_seed(5)
    model = CNN(channels=3, size=16)
    train(model, x[:2000], y[:2000], nn.CrossEntropyLoss(), 3, 0.05, 50, os.path.join(dest, "cnn"), 5, 1)


if __name__ == "__main__":
    main()
