#!/usr/bin/env python3
"""Makes the LLM-attribution test fixtures in test/fixtures/llm/ (committed;
run with a pip torch 2.x and transformers: .torch/bin/python scripts/make_llm.py).

- tokenizers trained here on a small generated corpus (no downloads):
  bpe.json (GPT-2's byte-level BPE), wordpiece.json (BERT's, with [CLS] and
  [SEP] added), wordlevel.json; tokenizer_cases.json holds the ids the Rust
  `tokenizers` library and transformers give for a set of texts (remade only
  with --tokenizers or when missing: WordPiece training is not deterministic).
- gpt2.pt, llama.pt: transformers' GPT-2 and Llama with tiny configs and
  random weights (fixed seeds) and eager attention (so that LibTorch 1.13
  loads them too), traced as forward(input_ids, attention_mask) -> logits;
  bert.pt: a BERT sequence classifier (3 classes), the same way.
  gpt2_bench.pt: the bench's 6-layer, 256-wide GPT-2 (not committed: made by
  npm run bench).
"""
import json
import os
import random
import sys

import types

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "test", "fixtures", "llm")

NAMES = ["dave", "anna", "maria", "john", "li", "omar", "sofia", "kenji"]
PLACES = ["paris", "rome", "london", "tokyo", "cairo", "lima", "oslo", "delhi"]
VERBS = ["lives", "works", "studies", "sleeps", "cooks", "paints", "sings", "runs"]
WORDS = ["the", "a", "cat", "dog", "sat", "on", "mat", "he", "she", "is", "happy", "sad", "and", "likes", "in", "it",
         "playing", "played", "player", "plays", "good", "bad", "movie", "very", "not", "great", "film", "was"]


def corpus():
    rng = random.Random(0)
    lines = []
    for _ in range(3000):
        n, p, v = rng.choice(NAMES), rng.choice(PLACES), rng.choice(VERBS)
        w = " ".join(rng.choice(WORDS) for _ in range(rng.randint(2, 8)))
        lines.append(f"{n.capitalize() if rng.random() < 0.3 else n} {v} in {p}. {w}, {rng.randint(0, 99)}!")
    return lines


CASES = ["dave lives in paris", "Dave lives in Paris.", "the cat sat on the mat", "he is happy", " leading space",
         "numbers 12 345 and punctuation?!", "naïve café – ünïcode 東京", "playing players played", "", "a\nnew line",
         "unknownwordxyz", "it was a very good movie"]


def make_tokenizers():
    lines = corpus()
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=True)
    bpe.train_from_iterator(lines, trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>"],
                                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    bpe.save(os.path.join(OUT, "bpe.json"))

    wp = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    wp.normalizer = normalizers.BertNormalizer(lowercase=True)
    wp.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    wp.decoder = decoders.WordPiece()
    wp.train_from_iterator(lines, trainers.WordPieceTrainer(vocab_size=300, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
                                                            show_progress=False))
    wp.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                                      special_tokens=[("[CLS]", wp.token_to_id("[CLS]")), ("[SEP]", wp.token_to_id("[SEP]"))])
    wp.save(os.path.join(OUT, "wordpiece.json"))

    wl = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    wl.pre_tokenizer = pre_tokenizers.Whitespace()
    wl.train_from_iterator(lines, trainers.WordLevelTrainer(vocab_size=200, special_tokens=["[UNK]"], show_progress=False))
    wl.save(os.path.join(OUT, "wordlevel.json"))

    from transformers import PreTrainedTokenizerFast
    cases = {}
    for name in ["bpe", "wordpiece", "wordlevel"]:
        file = os.path.join(OUT, name + ".json")
        rust = Tokenizer.from_file(file)
        fast = PreTrainedTokenizerFast(tokenizer_file=file)
        rows = []
        for text in CASES:
            ids = rust.encode(text).ids
            assert ids == fast.encode(text), (name, text)
            rows.append({"text": text, "ids": ids, "decoded": rust.decode(ids, skip_special_tokens=False)})
        cases[name] = rows
    with open(os.path.join(OUT, "tokenizer_cases.json"), "w") as f:
        json.dump(cases, f, indent=1, ensure_ascii=False)


class Traced(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask):
        return self.m(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits


def without_torchvision_ops():
    # transformers imports torchvision when installed, whose compiled ops do not load against every torch build.
    sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))


def hf_models(vocab):
    """The modules, with their seeds: scripts/make_llm_references.py builds the same ones."""
    without_torchvision_ops()
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM
    out = {}
    torch.manual_seed(1)
    out["gpt2"] = GPT2LMHeadModel(GPT2Config(vocab_size=vocab["bpe"], n_positions=64, n_embd=32, n_layer=2, n_head=2,
                                             bos_token_id=0, eos_token_id=0)).eval()
    torch.manual_seed(2)
    out["llama"] = LlamaForCausalLM(LlamaConfig(vocab_size=vocab["bpe"], hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                                num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                                bos_token_id=0, eos_token_id=0)).eval()
    torch.manual_seed(3)
    out["bert"] = BertForSequenceClassification(BertConfig(vocab_size=vocab["wordpiece"], hidden_size=32, num_hidden_layers=2,
                                                           num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                                                           num_labels=3)).eval()
    # Eager attention (softmax and matmul) instead of scaled_dot_product_attention, which
    # LibTorch 1.13 lacks: the fixtures then run on both tested LibTorch versions.
    for m in out.values():
        m.set_attn_implementation("eager")
    # Larger weights than the default init, so that attributions are not all tiny.
    with torch.no_grad():
        for m in out.values():
            for p in m.parameters():
                p.mul_(4.0 if p.dim() > 1 else 1.0)
    return out


def vocab_sizes():
    return {n: Tokenizer.from_file(os.path.join(OUT, n + ".json")).get_vocab_size() for n in ["bpe", "wordpiece"]}


def bench_gpt2(vocab):
    without_torchvision_ops()
    from transformers import GPT2Config, GPT2LMHeadModel
    torch.manual_seed(4)
    m = GPT2LMHeadModel(GPT2Config(vocab_size=vocab, n_positions=128, n_embd=256, n_layer=6, n_head=8,
                                   bos_token_id=0, eos_token_id=0)).eval()
    m.set_attn_implementation("eager")  # as the fixtures: the bench runs on LibTorch 1.13 too
    return m


def trace(m, path, vocab):
    ids = torch.randint(0, vocab, (2, 7))
    traced = torch.jit.trace(Traced(m), (ids, torch.ones_like(ids)), check_trace=False)
    traced.save(path)


def main():
    os.makedirs(OUT, exist_ok=True)
    if "--bench" in sys.argv:
        dest = sys.argv[sys.argv.index("--bench") + 1]
        trace(bench_gpt2(vocab_sizes()["bpe"]), dest, vocab_sizes()["bpe"])
        return
    # The WordPiece trainer orders its vocabulary differently from run to run:
    # the tokenizers are remade only when asked (the models take their sizes).
    if "--tokenizers" in sys.argv or not os.path.exists(os.path.join(OUT, "wordpiece.json")):
        make_tokenizers()
    vocab = vocab_sizes()
    for name, m in hf_models(vocab).items():
        trace(m, os.path.join(OUT, name + ".pt"), vocab["wordpiece" if name == "bert" else "bpe"])
    print("made", sorted(os.listdir(OUT)))


if __name__ == "__main__":
    main()
