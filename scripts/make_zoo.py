#!/usr/bin/env python3
"""Makes real-architecture test models (random weights, fixed seeds, no
downloads) in test/fixtures/zoo/ (not committed: resnet18 alone is 45 MB).
Run with a pip torch 2.x (the checkout's venv: .torch/bin/python
scripts/make_zoo.py [out_dir]); torchvision and transformers are used when
installed. scripts/make_zoo_references.py builds the same modules (same
seeds) to run Captum on them.

Vision (1x3x32x32 images, 10 classes, eval mode): torchvision's resnet18,
mobilenet_v3_small, efficientnet_b0, vgg11_bn (its 4096-wide classifier
replaced by a 64-wide one), densenet and convnext (small block settings of
torchvision's DenseNet and ConvNeXt classes), a small VisionTransformer
(patch 8, 2 layers).
Text (ids [1, 8], vocabulary 100): an nn.TransformerEncoder classifier
(transformer.pt, forward(ids)), an LSTM classifier, and transformers' BERT,
DistilBERT (sequence classification) and GPT-2 (LM head) with small configs,
traced through forward(input_ids, attention_mask) -> logits; GPT-2 also
returning a dict {"logits": ...} and a tuple (logits, ids.sum()), for
loadModel's `output` option.
Audio: a 1-d conv net on [1, 1, 256] waveforms.
"""
import os
import sys
import types

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "zoo")
VOCAB = 100


def torchvision_models():
    # torchvision's compiled ops do not load against every torch build; the
    # model definitions need none of them.
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    return torchvision.models


class TextTransformer(torch.nn.Module):
    def __init__(self, vocab=VOCAB, dim=32, heads=4, layers=2, classes=3):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, dim)
        layer = torch.nn.TransformerEncoderLayer(dim, heads, dim_feedforward=64, dropout=0.0,
                                                 activation="gelu", batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = torch.nn.LayerNorm(dim)
        self.head = torch.nn.Linear(dim, classes)

    def forward(self, ids):
        h = self.encoder(self.embedding(ids))
        return self.head(self.norm(h).mean(1))


class LstmClassifier(torch.nn.Module):
    def __init__(self, vocab=VOCAB, dim=16, hidden=24, classes=3):
        super().__init__()
        self.embedding = torch.nn.Embedding(vocab, dim)
        self.lstm = torch.nn.LSTM(dim, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, ids):
        out, _ = self.lstm(self.embedding(ids))
        return self.head(out[:, -1])


class AudioNet(torch.nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.conv1 = torch.nn.Conv1d(1, 8, 9, stride=2, padding=4)
        self.bn1 = torch.nn.BatchNorm1d(8)
        self.relu1 = torch.nn.ReLU()
        self.pool1 = torch.nn.MaxPool1d(2)
        self.conv2 = torch.nn.Conv1d(8, 16, 5, padding=2)
        self.bn2 = torch.nn.BatchNorm1d(16)
        self.relu2 = torch.nn.ReLU()
        self.pool2 = torch.nn.AdaptiveAvgPool1d(1)
        self.fc = torch.nn.Linear(16, classes)

    def forward(self, x):
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        return self.fc(x.flatten(1))


class LogitsOf(torch.nn.Module):
    """forward(input_ids, attention_mask) -> logits, for transformers' models."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def _calibrate_norms(module, shape):
    """Batch-norm statistics from a few random batches (train mode, no
    gradients), then random affine parameters: fresh statistics (mean 0,
    var 1) make deep nets such as mobilenet or efficientnet send almost no
    signal through (gradients of 1e-14), and make folding do nothing."""
    norms = [m for m in module.modules() if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    if not norms:
        return module
    g = torch.Generator().manual_seed(1)
    for m in norms:
        m.momentum = None  # a cumulative average over the batches
        m.reset_running_stats()
    module.train()
    with torch.no_grad():
        for _ in range(4):
            module(torch.randn(8, *shape[1:], generator=g))
    for m in norms:
        n = m.num_features
        m.weight.data.copy_(torch.rand(n, generator=g) * 0.4 + 0.8)
        m.bias.data.copy_(torch.randn(n, generator=g) * 0.05)
    return module


def vision():
    tv = torchvision_models()
    from torchvision.models.convnext import CNBlockConfig
    from torchvision.models.densenet import DenseNet
    from torchvision.models.convnext import ConvNeXt
    from torchvision.models.vision_transformer import VisionTransformer

    def vgg():
        m = tv.vgg11_bn(num_classes=10)
        m.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        m.classifier = torch.nn.Sequential(torch.nn.Linear(512, 64), torch.nn.ReLU(True), torch.nn.Dropout(),
                                           torch.nn.Linear(64, 10))
        return m

    def vit():
        m = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=32, mlp_dim=64,
                              num_classes=10)
        torch.nn.init.normal_(m.heads.head.weight, std=0.2)  # torchvision starts the head at zero
        return m

    return {
        "resnet18": lambda: tv.resnet18(num_classes=10),
        "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(num_classes=10),
        "efficientnet_b0": lambda: tv.efficientnet_b0(num_classes=10),
        "vgg11_bn": vgg,
        "densenet": lambda: DenseNet(growth_rate=8, block_config=(2, 2, 2), num_init_features=16, bn_size=2, num_classes=10),
        "convnext": lambda: ConvNeXt([CNBlockConfig(16, 32, 1), CNBlockConfig(32, 64, 1), CNBlockConfig(64, None, 1)],
                                     num_classes=10),
        "vit": vit,
    }


def hf():
    import transformers
    small = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                 max_position_embeddings=32)

    def bert():
        c = transformers.BertConfig(**small, num_labels=3)
        c._attn_implementation = "eager"
        return LogitsOf(transformers.BertForSequenceClassification(c))

    def distilbert():
        c = transformers.DistilBertConfig(vocab_size=VOCAB, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                                          max_position_embeddings=32, num_labels=3)
        return LogitsOf(transformers.DistilBertForSequenceClassification(c))

    def gpt2():
        c = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4)
        return LogitsOf(transformers.GPT2LMHeadModel(c))

    class Raw(torch.nn.Module):
        """GPT-2 as transformers returns it: a dict (return_dict) or a tuple."""

        def __init__(self, return_dict):
            super().__init__()
            c = transformers.GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=4, use_cache=False)
            self.model = transformers.GPT2LMHeadModel(c)
            self.return_dict = return_dict

        def forward(self, input_ids, attention_mask):
            out = self.model(input_ids=input_ids, attention_mask=attention_mask, return_dict=self.return_dict)
            return {"logits": out.logits} if self.return_dict else (out[0], input_ids.sum())

    return {"bert": bert, "distilbert": distilbert, "gpt2": gpt2, "gpt2_dict": lambda: Raw(True),
            "gpt2_tuple": lambda: Raw(False)}


def example(name):
    g = torch.Generator().manual_seed(2)
    if name == "audio":
        return (torch.randn(1, 1, 256, generator=g),)
    if name in ("transformer", "lstm"):
        return (torch.randint(0, VOCAB, (1, 8), generator=g),)
    if name in ("bert", "distilbert", "gpt2", "gpt2_dict", "gpt2_tuple"):
        ids = torch.randint(0, VOCAB, (1, 8), generator=g)
        return ids, torch.ones_like(ids)
    return (torch.randn(1, 3, 32, 32, generator=g),)


def builders():
    """name -> a function making the module, in eval mode, seeded."""
    out = {}
    try:
        out.update(vision())
    except ImportError:
        print("torchvision not installed: the vision models are not made")
    out["transformer"] = TextTransformer
    out["lstm"] = LstmClassifier
    out["audio"] = AudioNet
    try:
        out.update(hf())
    except ImportError:
        print("transformers not installed: bert, distilbert, gpt2 are not made")

    def seeded(name, make):
        def build():
            torch.manual_seed(0)
            return _calibrate_norms(make(), example(name)[0].shape).eval()
        return build

    return {k: seeded(k, v) for k, v in out.items()}


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, build in builders().items():
        module = build()
        # Traced with gradients on: under no_grad, nn.TransformerEncoderLayer
        # records its inference fast path (_transformer_encoder_layer_fwd),
        # which has no derivative.
        traced = torch.jit.trace(module, example(name), check_trace=False, strict=False)
        traced.save(os.path.join(OUT, name + ".pt"))
        print(f"{name}.pt: {sum(p.numel() for p in module.parameters())} parameters")
        if name == "transformer":
            # Traced under no_grad: the encoder layers' fast path
            # (_transformer_encoder_layer_fwd), which LibTorch cannot differentiate.
            with torch.no_grad():
                torch.jit.trace(module, example(name), check_trace=False).save(os.path.join(OUT, "transformer_fastpath.pt"))


if __name__ == "__main__":
    main()
