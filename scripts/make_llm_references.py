#!/usr/bin/env python3
"""Reference outputs of Captum 0.8's LLM attribution on the models of
scripts/make_llm.py (same modules, same seeds), written to
test/fixtures/llm/references.json. Needs Captum 0.8 importable (e.g.
PYTHONPATH=<a checkout of captum v0.8.0>), transformers and matplotlib:

  PYTHONPATH=/tmp/captum08 .torch/bin/python scripts/make_llm_references.py

The encoder classifier, which Captum's LLM wrappers refuse, is referenced
through Captum's FeatureAblation and LayerIntegratedGradients on a forward
function that does what LLMAttribution does for a class target.
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_llm  # noqa: E402

from captum.attr import (FeatureAblation, LayerGradientXActivation, LayerIntegratedGradients, LLMAttribution,  # noqa: E402
                         LLMGradientAttribution, ShapleyValues, ShapleyValueSampling, TextTemplateInput, TextTokenInput)
from transformers import PreTrainedTokenizerFast  # noqa: E402

OUT = make_llm.OUT


def tokenizer(name):
    return PreTrainedTokenizerFast(tokenizer_file=os.path.join(OUT, name + ".json"))


def listify(t):
    return None if t is None else t.detach().double().tolist()


def main():
    vocab = make_llm.vocab_sizes()
    models = make_llm.hf_models(vocab)
    bpe = tokenizer("bpe")
    cases = []
    generations = []
    template = {"kind": "template", "template": "{} lives in {} and likes {}", "values": ["dave", "paris", "the cat"],
                "baselines": ["anna", "rome", "a dog"]}
    template_mask = dict(template, mask=[0, 1, 0])
    tokens = {"kind": "tokens", "text": "the cat sat on", "baselines": 0}
    tokens_skip = {"kind": "tokens", "text": "he is happy", "baselines": 5, "skipTokens": [bpe.convert_ids_to_tokens(bpe.encode("he"))[0]]}

    def make_input(spec, tok):
        if spec["kind"] == "template":
            return TextTemplateInput(spec["template"], values=spec["values"], baselines=spec.get("baselines"), mask=spec.get("mask"))
        return TextTokenInput(spec["text"], tok, baselines=spec["baselines"], skip_tokens=spec.get("skipTokens"))

    def perturbation(model_name, method, spec, attr_target, target, kwargs=None, seed=None):
        m = models[model_name]
        cls = {"FeatureAblation": FeatureAblation, "ShapleyValues": ShapleyValues, "ShapleyValueSampling": ShapleyValueSampling}[method]
        llm = LLMAttribution(cls(m), bpe, attr_target="prob" if attr_target == "prob" else "log_prob")
        if seed is not None:
            torch.manual_seed(seed)
        # use_cached_outputs=False: Captum 0.8's key/value-cache path (its default) scores
        # the second and later target tokens differently under transformers 5 (it was written
        # for 4.x); without the cache it computes what the cache is meant to reproduce.
        r = llm.attribute(make_input(spec, bpe), target=target, use_cached_outputs=False, **(kwargs or {}))
        cases.append({"model": model_name, "tokenizer": "bpe", "method": method, "input": spec, "attrTarget": attr_target,
                      "target": target, "options": kwargs or {}, "seed": seed, "seqAttr": listify(r.seq_attr),
                      "tokenAttr": listify(r.token_attr), "inputTokens": r.input_tokens, "outputTokens": r.output_tokens})

    def gradient(model_name, method, layer_path, spec, target, kwargs=None):
        m = models[model_name]
        layer = m
        for part in layer_path.split(".")[1:]:  # "m.transformer.wte": the traced wrapper's names
            layer = getattr(layer, part)
        cls = {"LayerIntegratedGradients": LayerIntegratedGradients, "LayerGradientXActivation": LayerGradientXActivation}[method]
        llm = LLMGradientAttribution(cls(m, layer), bpe)
        r = llm.attribute(make_input(spec, bpe), target=target, **(kwargs or {}))
        cases.append({"model": model_name, "tokenizer": "bpe", "method": method, "layer": layer_path, "input": spec,
                      "target": target, "options": {"nSteps": kwargs["n_steps"]} if kwargs else {},
                      "seqAttr": listify(r.seq_attr), "tokenAttr": listify(r.token_attr),
                      "inputTokens": r.input_tokens, "outputTokens": r.output_tokens})

    for model_name in ["gpt2", "llama"]:
        for attr_target in ["logProb", "prob"]:
            perturbation(model_name, "FeatureAblation", template, attr_target, " he is happy")
            perturbation(model_name, "FeatureAblation", tokens, attr_target, " the mat")
        perturbation(model_name, "ShapleyValues", template, "logProb", " he is happy")
        perturbation(model_name, "ShapleyValues", tokens_skip, "prob", " and sad")
        perturbation(model_name, "FeatureAblation", template_mask, "logProb", " he is happy")
        perturbation(model_name, "ShapleyValueSampling", template, "logProb", " he is happy", {"n_samples": 4}, seed=7)
        # Greedy generation, as transformers' generate() does it.
        prompt = torch.tensor([bpe.encode(template["template"].format(*template["values"]))])
        out = models[model_name].generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=6, do_sample=False)
        generations.append({"model": model_name, "prompt": prompt[0].tolist(), "ids": out[0, prompt.size(1):].tolist()})
        emb = "m.transformer.wte" if model_name == "gpt2" else "m.model.embed_tokens"
        gradient(model_name, "LayerIntegratedGradients", emb, tokens, " the mat", {"n_steps": 16})
        gradient(model_name, "LayerIntegratedGradients", emb, tokens_skip, " and sad", {"n_steps": 16})
        gradient(model_name, "LayerGradientXActivation", emb, tokens, " the mat")

    # BERT classifier, class 2, [CLS] and [SEP] not features; baseline [PAD].
    wp = tokenizer("wordpiece")
    bert = models["bert"]
    text, label = "it was a very good movie", 2
    ids = torch.tensor([wp.encode(text)])
    specials = {wp.convert_tokens_to_ids("[CLS]"), wp.convert_tokens_to_ids("[SEP]")}
    feat = torch.tensor([[i for i, t in enumerate(ids[0].tolist()) if t not in specials]])
    pad = wp.convert_tokens_to_ids("[PAD]")

    def ids_of(present):
        out = ids.expand(present.size(0), -1).clone()
        out[:, feat[0]] = torch.where(present.bool(), ids[:, feat[0]].expand_as(present), torch.full_like(present, pad).long())
        return out

    for attr_target in ["logProb", "prob"]:
        def f(present):
            x = ids_of(present)
            lp = torch.log_softmax(bert(input_ids=x, attention_mask=torch.ones_like(x)).logits, -1)[:, label]
            return lp.exp() if attr_target == "prob" else lp
        a = FeatureAblation(f).attribute(torch.ones(1, feat.size(1)))
        cases.append({"model": "bert", "tokenizer": "wordpiece", "method": "FeatureAblation", "attrTarget": attr_target,
                      "input": {"kind": "tokens", "text": text, "baselines": "[PAD]", "skipTokens": ["[CLS]", "[SEP]"]},
                      "target": label, "options": {}, "seqAttr": listify(a[0]), "tokenAttr": None,
                      "inputTokens": wp.convert_ids_to_tokens(ids[0, feat[0]].tolist()), "outputTokens": [str(label)]})

    def g(x):
        return torch.log_softmax(bert(input_ids=x, attention_mask=torch.ones_like(x)).logits, -1)
    base = ids.clone()
    base[:, feat[0]] = pad
    a = LayerIntegratedGradients(g, bert.bert.embeddings.word_embeddings).attribute(ids, baselines=base, target=label, n_steps=16)
    row = a.sum(-1)[:, feat[0]]
    cases.append({"model": "bert", "tokenizer": "wordpiece", "method": "LayerIntegratedGradients", "layer": "m.bert.embeddings.word_embeddings",
                  "input": {"kind": "tokens", "text": text, "baselines": "[PAD]", "skipTokens": ["[CLS]", "[SEP]"]},
                  "target": label, "options": {"nSteps": 16}, "seqAttr": listify(row[0]), "tokenAttr": listify(row),
                  "inputTokens": wp.convert_ids_to_tokens(ids[0, feat[0]].tolist()), "outputTokens": [str(label)]})

    import captum
    with open(os.path.join(OUT, "references.json"), "w") as fh:
        json.dump({"captum": captum.__version__, "torch": torch.__version__, "cases": cases, "generations": generations}, fh, indent=1)
    print(len(cases), "cases")


if __name__ == "__main__":
    main()
