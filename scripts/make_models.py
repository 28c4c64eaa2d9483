#!/usr/bin/env python3
"""Makes the bundled TorchScript models in models/ (run with Debian's python3-torch
and python3-sklearn: /usr/bin/python3 scripts/make_models.py).

- digits_cnn.pt: a small CNN trained on sklearn's bundled 8x8 digits, used by the
  demo; digits_samples.json holds a few held-out images and labels.
- bench_convnet.pt (3x32x32 inputs) and bench_mlp.pt (64 features): untrained,
  seeded models for the benchmarks, where only the cost of the passes matters.
- bench_resnet.pt (a residual network with batch norm, about 0.7M parameters, 3x32x32)
  and bench_textcnn.pt (token ids [N, 128] through an embedding and a 1-d
  convolution): untrained, seeded, for the benchmarks (`make_models.py bench`
  writes only these).
- review_sentiment.pt: token ids [N, T] (0 pads) -> [negative, positive], trained on
  made-up 8-word reviews; review_vocab.json is its vocabulary (index = id); the
  README's text example (`make_models.py sentiment` writes only these).
- linear.pt: a seeded linear layer (6 -> 3), whose attributions the tests know exactly;
  linear_sum.pt: the same layer returning one value per batch (aggregate mode).

Test models go to test/fixtures/models (`make_models.py tests` writes only those):
- resnet_scripted.pt / resnet_traced.pt: one small residual network (conv, batch
  norm, relu, two blocks of one class, max pooling, linear), scripted and traced.
- relu_shared.pt / relu_twice.pt: one MLP calling a single ReLU module twice, and
  the same weights with two ReLU modules.
- exp_model.pt (calls torch.exp) and product_model.pt (multiplies two
  input-dependent tensors): ops the rules cover as elementwise functions and
  products; cumsum_model.pt (torch.cumsum) and quotient_model.pt (divides by
  an input-dependent tensor): ops no propagation rule covers.
- view_model.pt: a convolution whose output is flattened with `view`, which
  channels-last activations do not allow: loadModel()'s automatic layout must
  fall back to contiguous for it.
- detached_model.pt: a linear layer (3 -> 2) whose output is detached from the
  input, which gradient methods must refuse rather than return zeros.
- truncated_storage.pt: a copy of test/fixtures/golden/toy.pt whose largest
  tensor data record is empty (only the zip is rewritten, with the standard
  library), which loadModel() must reject as corrupt.
- deep_brackets.pt / deep_unary.pt: toy.pt whose code nests 100,000 brackets or
  prefix minus signs (zip rewritten only): TorchScript's recursive compiler would
  overflow its stack on them, so loadModel() must reject them before compiling.
"""
import sys
import json
import os
import zipfile

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "models")


class DigitsCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(self.relu1(self.conv1(x)))
        x = self.gap(self.relu2(self.conv2(x)))
        return self.fc(x.flatten(1))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)
        self.fc = nn.Linear(32 * 8 * 8, 10)

    def forward(self, x):
        x = self.pool1(self.relu1(self.conv1(x)))
        x = self.pool2(self.relu2(self.conv2(x)))
        return self.fc(x.flatten(1))


class TinyMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(64, 32)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(y + self.shortcut(x))


class BenchResNet(nn.Module):
    """A small residual network with batch norm (about 0.7M parameters, 3x32x32 inputs)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 48, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(48)
        self.relu = nn.ReLU()
        self.layer1 = BasicBlock(48, 48, 1)
        self.layer2 = BasicBlock(48, 96, 2)
        self.layer3 = BasicBlock(96, 192, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(192, 10)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.pool(x).flatten(1))


class BenchTextCNN(nn.Module):
    """Token ids [N, T] -> 2 classes: an embedding, a 1-d convolution, max over time."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(2000, 64)
        self.conv = nn.Conv1d(64, 96, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(96, 2)

    def forward(self, x):
        h = self.relu(self.conv(self.embedding(x).transpose(1, 2)))
        return self.fc(h.amax(2))


def randomize_batch_norms(net):
    with torch.no_grad():  # non-trivial statistics, as a trained network has
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return net


class Linear(nn.Module):
    """y = W x + b: attributions of a linear model are known in closed form (tests)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x)


class ConceptNet(nn.Module):
    """TCAV tests: `hidden` is the identity on 4 features and output 0 (1) rises
    (falls) along the first one, so a concept along +e0 raises class 0."""

    def __init__(self):
        super().__init__()
        self.hidden = nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)
        with torch.no_grad():
            self.hidden.weight.copy_(torch.eye(4))
            self.hidden.bias.zero_()
            self.out.weight.copy_(torch.tensor([[1.0, 0, 0, 0], [-1.0, 0, 0, 0]]))
            self.out.bias.zero_()

    def forward(self, x):
        return self.out(self.hidden(x))


class LinearSum(Linear):
    """One value per batch (Captum's aggregate mode): the sum of the first output."""

    def forward(self, x):
        return self.fc(x)[:, 0].sum()


class Block(nn.Module):
    """A residual block; the network holds two instances of this class."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return x + self.relu(self.conv(x))


class ResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.block1 = Block(4)
        self.block2 = Block(4)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4 * 4 * 4, 3)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(x)))
        x = self.pool(self.block2(self.block1(x)))
        return self.fc(torch.flatten(x, 1))


class SharedRelu(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 3)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))


class TwoRelu(SharedRelu):
    def __init__(self):
        super().__init__()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.relu2(self.fc2(self.relu(self.fc1(x)))))


class ExpModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.exp(x))


class DetachedModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x).detach()


def truncated_copy(src, dst):
    """Copies the TorchScript zip `src` to `dst` with its largest data record emptied."""
    with zipfile.ZipFile(src) as zin:
        infos = zin.infolist()
        data = [i for i in infos if "/data/" in i.filename and not i.filename.endswith(".pkl")]
        victim = max(data, key=lambda i: i.file_size).filename
        with zipfile.ZipFile(dst, "w") as zout:
            for info in infos:
                zout.writestr(info, b"" if info.filename == victim else zin.read(info.filename))


def nested_copy(src, dst, wrap):
    """Copies `src` with the first `return` expression of its code wrapped by `wrap`."""
    with zipfile.ZipFile(src) as zin:
        with zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
            for info in zin.infolist():
                data = zin.read(info.filename)
                if info.filename.endswith("code/__torch__/models.py"):
                    code = data.decode()
                    at = code.index("return ") + len("return ")
                    end = code.index("\n", at)
                    code = code[:at] + wrap(code[at:end]) + code[end:]
                    data = code.encode()
                zout.writestr(info.filename, data)


class ViewModel(nn.Module):
    """A convolution then `view` to flatten: `view` cannot merge the dimensions
    of a channels-last activation, so this model must run contiguous."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return self.fc(h.view(h.size(0), -1))


class CumsumModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(torch.cumsum(x, 1))


class QuotientModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x / (x.abs().sum(1, keepdim=True) + 1))


class ProductModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        return self.fc(x * x)


def nested_fixtures(out):
    toy = os.path.join(out, "..", "golden", "toy.pt")
    depth = 100000
    nested_copy(toy, os.path.join(out, "deep_brackets.pt"), lambda e: "(" * depth + e + ")" * depth)
    nested_copy(toy, os.path.join(out, "deep_unary.pt"), lambda e: "- " * depth + e)


def test_models():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "fixtures", "models")
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(3)
    net = ResNet()
    with torch.no_grad():  # non-trivial batch norm statistics
        net.bn.running_mean.uniform_(-0.5, 0.5)
        net.bn.running_var.uniform_(0.5, 2.0)
        net.bn.weight.uniform_(0.5, 1.5)
        net.bn.bias.uniform_(-0.2, 0.2)
    net.eval()
    torch.jit.script(net).save(os.path.join(out, "resnet_scripted.pt"))
    torch.jit.trace(net, torch.randn(2, 1, 8, 8)).save(os.path.join(out, "resnet_traced.pt"))
    shared = SharedRelu().eval()
    torch.jit.script(shared).save(os.path.join(out, "relu_shared.pt"))
    twice = TwoRelu().eval()
    twice.load_state_dict(shared.state_dict())
    torch.jit.script(twice).save(os.path.join(out, "relu_twice.pt"))
    torch.jit.script(ExpModel().eval()).save(os.path.join(out, "exp_model.pt"))
    torch.jit.script(ProductModel().eval()).save(os.path.join(out, "product_model.pt"))
    torch.jit.script(CumsumModel().eval()).save(os.path.join(out, "cumsum_model.pt"))
    torch.jit.script(QuotientModel().eval()).save(os.path.join(out, "quotient_model.pt"))
    torch.jit.script(ConceptNet().eval()).save(os.path.join(out, "concept_net.pt"))
    torch.manual_seed(4)
    torch.jit.script(DetachedModel().eval()).save(os.path.join(out, "detached_model.pt"))
    torch.jit.script(ViewModel().eval()).save(os.path.join(out, "view_model.pt"))
    truncated_copy(os.path.join(out, "..", "golden", "toy.pt"), os.path.join(out, "truncated_storage.pt"))
    nested_fixtures(out)
    print("wrote", sorted(os.listdir(out)))


def train_digits():
    from sklearn.datasets import load_digits  # here: bench/reference.py imports this file for its classes alone
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)
    g = torch.Generator().manual_seed(0)
    order = torch.randperm(len(x), generator=g)
    train, test = order[:1500], order[1500:]
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for epoch in range(40):
        for batch in train.split(100):
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(x[batch]), y[batch])
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x[test]).argmax(1) == y[test]).float().mean().item()
    print(f"digits_cnn: held-out accuracy {accuracy:.3f}")
    samples = test[:6]
    return model, {
        "accuracy": round(accuracy, 4),
        "labels": y[samples].tolist(),
        "shape": [len(samples), 1, 8, 8],
        "images": [round(v, 6) for v in x[samples].flatten().tolist()],
    }


class ReviewSentiment(nn.Module):
    """Token ids [N, T] (0 pads) -> [negative, positive] logits: embedding, mean over tokens, linear."""

    def __init__(self, vocab: int):
        super().__init__()
        self.embedding = nn.Embedding(vocab, 8, padding_idx=0)
        self.fc = nn.Linear(8, 2)

    def forward(self, ids):
        mask = (ids != 0).unsqueeze(-1).to(torch.float32)
        mean = (self.embedding(ids) * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.fc(mean)


REVIEW_WORDS = {
    "good": 1, "great": 1, "excellent": 1, "loved": 1, "fun": 1, "friendly": 1, "fast": 1, "tasty": 1,
    "bad": -1, "awful": -1, "boring": -1, "slow": -1, "rude": -1, "broken": -1, "cold": -1, "hated": -1,
    "the": 0, "food": 0, "service": 0, "was": 0, "and": 0, "very": 0, "staff": 0, "room": 0, "a": 0, "it": 0, "place": 0, "movie": 0,
}


def train_sentiment():
    """A token classifier for the README's text example, trained on made-up reviews."""
    vocab = ["[PAD]"] + sorted(REVIEW_WORDS)
    ids = {w: i for i, w in enumerate(vocab)}
    g = torch.Generator().manual_seed(0)
    words = torch.tensor([ids[w] for w in sorted(REVIEW_WORDS)])
    polarity = torch.tensor([float(REVIEW_WORDS[w]) for w in sorted(REVIEW_WORDS)])
    x = words[torch.randint(len(words), (4000, 8), generator=g)]
    score = polarity[x - 1].sum(1)
    keep = score != 0
    x, y = x[keep], (score[keep] > 0).long()
    model = ReviewSentiment(len(vocab))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for epoch in range(30):
        for batch in torch.arange(len(x)).split(200):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    print(f"review_sentiment: training accuracy {accuracy:.3f}")
    return model, vocab


def bench_models():
    torch.manual_seed(5)
    torch.jit.script(randomize_batch_norms(BenchResNet()).eval()).save(os.path.join(OUT, "bench_resnet.pt"))
    torch.manual_seed(6)
    torch.jit.script(BenchTextCNN().eval()).save(os.path.join(OUT, "bench_textcnn.pt"))


def main():
    which = sys.argv[1] if len(sys.argv) > 1 else "all"
    if which in ("tests", "all"):
        test_models()
    if which == "tests":
        return
    if which == "bench":
        bench_models()
        return
    if which in ("sentiment", "all"):
        torch.manual_seed(3)
        model, vocab = train_sentiment()
        torch.jit.script(model).save(os.path.join(OUT, "review_sentiment.pt"))
        with open(os.path.join(OUT, "review_vocab.json"), "w") as f:
            json.dump(vocab, f)
    if which == "sentiment":
        return
    os.makedirs(OUT, exist_ok=True)
    torch.manual_seed(0)
    model, samples = train_digits()
    torch.jit.script(model).save(os.path.join(OUT, "digits_cnn.pt"))
    with open(os.path.join(OUT, "digits_samples.json"), "w") as f:
        json.dump(samples, f)
    torch.manual_seed(1)
    torch.jit.script(ConvNet().eval()).save(os.path.join(OUT, "bench_convnet.pt"))
    torch.jit.script(TinyMLP().eval()).save(os.path.join(OUT, "bench_mlp.pt"))
    bench_models()
    torch.manual_seed(2)
    linear = Linear().eval()
    torch.jit.script(linear).save(os.path.join(OUT, "linear.pt"))
    aggregate = LinearSum().eval()
    aggregate.load_state_dict(linear.state_dict())
    torch.jit.script(aggregate).save(os.path.join(OUT, "linear_sum.pt"))
    print("wrote", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
