#!/usr/bin/env python3
"""Makes real-architecture test models (random weights, fixed seeds, no
downloads) in test/fixtures/zoo/ (not committed: resnet18 alone is 45 MB).
Run with a pip torch 2.x (the checkout's venv: .torch/bin/python
scripts/make_zoo.py [out_dir]); torchvision is used when installed.

- resnet18.pt: torchvision's resnet18 (batch norm, residual adds), traced at
  1x3x32x32, in eval mode.
- transformer.pt: a text classifier through nn.TransformerEncoder (token
  embedding, multi-head attention, layer norm, gelu), forward(ids) -> logits,
  traced at [1, 16] int64 ids: the attention path new in torch 2.x.
- gpt2.pt: transformers' GPT-2 with a small config, traced through
  forward(input_ids, attention_mask) -> logits, when transformers is installed.
"""
import os
import sys
import types

import torch

OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "test", "fixtures", "zoo")
os.makedirs(OUT, exist_ok=True)


def save(name, module, *example):
    torch.manual_seed(0)
    module.eval()
    # Traced with gradients on: under no_grad, nn.TransformerEncoderLayer
    # records its inference fast path (_transformer_encoder_layer_fwd), which
    # has no derivative.
    traced = torch.jit.trace(module, example, check_trace=False)
    traced.save(os.path.join(OUT, name))
    print(f"{name}: {sum(p.numel() for p in module.parameters())} parameters")


def torchvision_models():
    # torchvision's compiled ops do not load against every torch build; the
    # model definitions need none of them.
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
    import torchvision
    return torchvision.models


class TextTransformer(torch.nn.Module):
    def __init__(self, vocab=100, dim=32, heads=4, layers=2, classes=3):
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


class LogitsOf(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def main():
    torch.manual_seed(0)
    try:
        tv = torchvision_models()
        torch.manual_seed(0)
        save("resnet18.pt", tv.resnet18(num_classes=10), torch.randn(1, 3, 32, 32))
    except ImportError:
        print("torchvision not installed: resnet18.pt not made")
    torch.manual_seed(0)
    save("transformer.pt", TextTransformer(), torch.randint(0, 100, (1, 16)))
    try:
        import transformers
        torch.manual_seed(0)
        config = transformers.GPT2Config(vocab_size=100, n_positions=32, n_embd=32, n_layer=2, n_head=4)
        model = transformers.GPT2LMHeadModel(config)
        model.config.return_dict = True
        ids = torch.randint(0, 100, (1, 8))
        save("gpt2.pt", LogitsOf(model), ids, torch.ones_like(ids))
    except ImportError:
        print("transformers not installed: gpt2.pt not made")


if __name__ == "__main__":
    main()
