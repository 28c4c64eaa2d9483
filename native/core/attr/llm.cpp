// LLMAttribution and LLMGradientAttribution: which parts of a prompt made a
// language model produce a target (Captum 0.8's semantics), or an encoder
// classifier choose a class.
//
// Unlike the reference, which runs the model once per target token for every
// perturbed prompt, all of a target's log-probabilities come from one
// teacher-forced pass over prompt + target, and every perturbed prompt of a
// call shares passes with the others (grouped by length, so no padding can
// change a result), chunked to the memory budget. The perturbation methods
// themselves are the registry's, run on the interpretable input (one 0/1
// entry per feature) with a stand-in forward (Context::forward).
#include <map>
#include <unordered_map>

#include "algorithms.h"
#include "attr/perturbation.h"
#include "engine/errors.h"
#include "engine/scheduler.h"

namespace tx {

namespace {

// What the model is asked to explain.
struct Goal {
  torch::Tensor target;  // [T] int64 on CPU: the target's tokens (language models)
  int64_t label = -1;    // >= 0: the class of an encoder classifier
  bool prob = false;     // probabilities rather than log-probabilities
  bool per_token = false;
  bool classifier() const { return label >= 0; }
  int64_t columns() const { return classifier() ? 1 : (per_token ? 1 + target.numel() : 1); }
};

// The prompt and how a row of present/absent features becomes token ids.
struct Prompt {
  torch::Tensor ids;         // [L] int64 on CPU, unperturbed
  torch::Tensor feature_of;  // [L] int64: each token's feature, -1 where the token is not one (token inputs)
  int64_t baseline_id = 0;
  std::shared_ptr<Callable> tokenize;  // template inputs: rows of 0/1 per feature -> token ids
  bool deterministic = true;           // the same features always give the same prompt (no sampled baselines)
  int64_t features = 0;
};

torch::Tensor long_tensor(const Value& v, const std::string& name) {
  if (v.is_tensor()) return v.tensor.to(torch::kCPU, torch::kLong).flatten();
  if (v.is_list()) {
    std::vector<int64_t> ids;
    for (size_t i = 0; i < v.list->size(); ++i) {
      const Value& e = (*v.list)[i];
      if (!e.is_integer()) fail(name, "[", i, "]: expected an integer token id, got ", e.kind_name());
      ids.push_back(static_cast<int64_t>(e.number));
    }
    return torch::tensor(ids, torch::kLong);
  }
  fail(name, ": expected token ids (an array of integers), got ", v.kind_name());
}

// The model's output for a batch of token ids, checked for the axes the goal needs.
torch::Tensor run_model(const Model& model, const torch::Tensor& ids, const Goal& g, int64_t prompt_len) {
  if (model.arity() < 1 || model.arity() > 2)
    fail("model: expected forward(input_ids) or forward(input_ids, attention_mask), got ", model.signature());
  std::vector<torch::Tensor> in = {ids.to(model.device())};
  if (model.arity() == 2) in.push_back(torch::ones_like(in[0]));
  torch::Tensor out;
  try {
    out = model.infer(in, {});
  } catch (const CodedError& e) {
    if (e.code() == ErrorCode::Aborted) throw;
    // The usual cause: more tokens than the model has positions.
    fail("target: the model failed on ", ids.size(1), " tokens (prompt ", prompt_len, " + target ", ids.size(1) - prompt_len,
         "; more than the model's positions?): ", e.what());
  }
  if (g.classifier()) {
    if (out.dim() != 2)
      fail("model: a class target needs class scores [batch, classes]; the model returns shape ", shape_str(out.sizes()));
    if (g.label >= out.size(1)) fail("target: class ", g.label, " is out of range for ", out.size(1), " classes");
  } else {
    if (out.dim() != 3 || out.size(1) != ids.size(1))
      fail("model: a text target needs logits [batch, tokens, vocabulary]; the model returns shape ", shape_str(out.sizes()),
           " for ", shape_str(ids.sizes()), " token ids (no vocabulary axis; a class target explains a classifier)");
    if (g.target.numel() && g.target.max().item<int64_t>() >= out.size(2))
      fail("target: token id ", g.target.max().item<int64_t>(), " is outside the model's vocabulary of ", out.size(2));
  }
  return out;
}

// Scores of prompts: [n, columns] float on CPU. Row i holds the total (sum
// of log-probabilities, or its exp) and then each target token's.
torch::Tensor score_prompts(const Context& ctx, const Model& model, const std::vector<torch::Tensor>& prompts, const Goal& g) {
  int64_t n = static_cast<int64_t>(prompts.size()), t = g.target.numel();
  torch::Tensor out = torch::empty({n, g.columns()}, torch::kFloat);
  std::map<int64_t, std::vector<int64_t>> by_length;
  for (int64_t i = 0; i < n; ++i) by_length[prompts[i].numel()].push_back(i);
  double row_bytes_per_token = 0;  // learnt from the first pass: outputs and their log-softmax
  for (const auto& [len, members] : by_length) {
    if (len == 0) fail("inputs: a prompt is empty (no tokens); the model needs at least one");
    int64_t s = g.classifier() ? len : len + t - 1;
    torch::Tensor context = g.classifier() || t < 2 ? torch::Tensor() : g.target.slice(0, 0, t - 1);
    int64_t m = static_cast<int64_t>(members.size());
    int64_t step = row_bytes_per_token > 0 ? std::max<int64_t>(1, int64_t(ctx.memory_budget / (row_bytes_per_token * s))) : 1;
    // The first pass is of one row (it measures the rows' bytes, which sets the step after it).
    for (int64_t b0 = 0, b = 0; b0 < m; b0 += b) {
      yield_point();
      b = std::min(step, m - b0);
      std::vector<torch::Tensor> rows;
      for (int64_t j = b0; j < b0 + b; ++j) {
        const torch::Tensor& p = prompts[members[j]];
        rows.push_back(context.defined() ? torch::cat({p, context}) : p);
      }
      torch::Tensor ids = torch::stack(rows);
      torch::NoGradGuard no_grad;
      torch::Tensor logits = run_model(model, ids, g, len);
      if (row_bytes_per_token == 0) {
        // Logits, a float copy, its log-softmax and the model's activations: about four times the output.
        row_bytes_per_token = 4.0 * logits.numel() / b / s * 4;
        step = std::max<int64_t>(1, int64_t(ctx.memory_budget / (row_bytes_per_token * s)));
      }
      torch::Tensor values;
      if (g.classifier()) {
        values = torch::log_softmax(logits.to(torch::kFloat), -1).select(1, g.label).unsqueeze(1);
      } else {
        // Position len - 1 + k predicts target token k.
        auto dev = logits.device();
        torch::Tensor at = torch::arange(len - 1, len - 1 + t, torch::TensorOptions().dtype(torch::kLong).device(dev));
        torch::Tensor lp = torch::log_softmax(logits.index_select(1, at).to(torch::kFloat), -1)
                               .gather(2, g.target.to(dev).view({1, t, 1}).expand({b, t, 1}))
                               .squeeze(2);
        torch::Tensor total = lp.sum(1, true);
        values = g.per_token ? torch::cat({total, lp}, 1) : total;
      }
      if (g.prob) values = values.exp();
      torch::Tensor where = torch::tensor(std::vector<int64_t>(members.begin() + b0, members.begin() + b0 + b), torch::kLong);
      out.index_copy_(0, where, values.to(torch::kCPU));
    }
  }
  return out;
}

// Token ids of prompts whose features are present where `present` ([k, F] bool, CPU) says.
std::vector<torch::Tensor> perturbed_prompts(const Prompt& p, const torch::Tensor& present) {
  int64_t k = present.size(0);
  std::vector<torch::Tensor> out;
  if (p.tokenize) {
    List rows;
    auto acc = present.accessor<bool, 2>();
    for (int64_t i = 0; i < k; ++i) {
      List row;
      for (int64_t f = 0; f < p.features; ++f) row.push_back(Value::of(acc[i][f] ? 1.0 : 0.0));
      rows.push_back(Value::of(std::move(row)));
    }
    Value ids = (*p.tokenize)({Value::of(std::move(rows))});
    if (!ids.is_list() || static_cast<int64_t>(ids.list->size()) != k)
      fail("inputs: the template's tokenizer returned ", ids.is_list() ? std::to_string(ids.list->size()) : ids.kind_name(),
           " prompts for ", k, " perturbations");
    for (int64_t i = 0; i < k; ++i) out.push_back(long_tensor((*ids.list)[i], "prompt"));
    return out;
  }
  torch::Tensor is_feature = p.feature_of >= 0;
  torch::Tensor keep = torch::ones({k, p.ids.numel()}, torch::kBool);
  torch::Tensor cols = is_feature.nonzero().flatten();
  keep.index_copy_(1, cols, present.index_select(1, p.feature_of.index_select(0, cols)));
  torch::Tensor ids = torch::where(keep, p.ids.unsqueeze(0), torch::full({1}, p.baseline_id, torch::kLong));
  for (int64_t i = 0; i < k; ++i) out.push_back(ids[i]);
  return out;
}

// The stand-in forward: rows of the interpretable input ([R, F], 0/1) ->
// scores. With per-token scores the interpretable input has one identical
// row per score column, so that every method attributes each column at the
// cost of one: row r of a perturbation gets column r.
ForwardFn prompt_scorer(const Context& ctx, std::shared_ptr<const Prompt> prompt, std::shared_ptr<const Goal> goal) {
  auto cache = std::make_shared<std::unordered_map<std::string, torch::Tensor>>();
  const Context* c = &ctx;
  return [c, prompt, goal, cache](const Model& model, const std::vector<torch::Tensor>& inputs) -> torch::Tensor {
    int64_t n = goal->columns(), f = prompt->features;
    torch::Tensor x = inputs[0].to(torch::kCPU);
    int64_t rows = x.size(0);
    if (rows % n) fail_with(ErrorCode::Internal, "LLMAttribution: ", rows, " rows are not whole perturbations of ", n);
    torch::Tensor groups = x.view({rows / n, n, f});
    if (n > 1 && !torch::equal(groups, groups.narrow(1, 0, 1).expand_as(groups)))
      fail_with(ErrorCode::Internal, "LLMAttribution: a perturbation differs between its score columns");
    torch::Tensor present = groups.select(1, 0) > 0.5;
    int64_t k = present.size(0);
    torch::Tensor out = torch::empty({k, n}, torch::kFloat);
    // Coalitions recur (every permutation of ShapleyValueSampling starts
    // and ends with the same two): score each once per call.
    std::vector<int64_t> todo;
    std::vector<std::string> keys(k);
    std::unordered_map<std::string, int64_t> first;
    torch::Tensor bytes = present.to(torch::kUInt8).contiguous();
    for (int64_t i = 0; i < k; ++i) {
      keys[i].assign(reinterpret_cast<const char*>(bytes[i].data_ptr<uint8_t>()), f);
      if (prompt->deterministic && (cache->count(keys[i]) || first.count(keys[i]))) continue;
      first.emplace(keys[i], i);
      todo.push_back(i);
    }
    if (!todo.empty()) {
      torch::Tensor idx = torch::tensor(todo, torch::kLong);
      torch::Tensor scores = score_prompts(*c, model, perturbed_prompts(*prompt, present.index_select(0, idx)), *goal);
      for (size_t j = 0; j < todo.size(); ++j) {
        out[todo[j]] = scores[j];
        if (prompt->deterministic) (*cache)[keys[todo[j]]] = scores[j];
      }
    }
    if (prompt->deterministic)
      for (int64_t i = 0; i < k; ++i) out[i] = cache->at(keys[i]);
    return out.reshape({k * n}).to(inputs[0].device());
  };
}

const std::vector<std::string>& perturbation_methods() {
  static const std::vector<std::string> m = {"FeatureAblation", "ShapleyValueSampling", "ShapleyValues", "Lime", "KernelShap"};
  return m;
}
const std::vector<std::string>& gradient_methods() {
  static const std::vector<std::string> m = {"LayerIntegratedGradients", "LayerGradientXActivation", "LayerGradientShap"};
  return m;
}

bool among(const std::string& s, const std::vector<std::string>& names) {
  return std::find(names.begin(), names.end(), s) != names.end();
}

// [K, F] attributions of the interpretable features.
torch::Tensor perturbation_attribution(const Context& ctx, const std::string& method, const Options& mo,
                                       std::shared_ptr<const Prompt> prompt, std::shared_ptr<const Goal> goal) {
  Context sub = ctx;
  sub.batch = goal->columns();
  sub.inputs = {torch::ones({sub.batch, prompt->features}, torch::TensorOptions().dtype(torch::kFloat).device(ctx.model->device()))};
  sub.target = Target();
  sub.extra.clear();
  sub.extra_values.clear();
  sub.forward = std::make_shared<const ForwardFn>(prompt_scorer(sub, prompt, goal));
  Options o = mo;
  if (o.has("baselines") || o.has("featureMask"))
    fail("options: LLMAttribution sets the method's baselines and featureMask itself (give baselines and mask to the input)");
  // The scorer plans its own passes; hand it many perturbations at a time.
  if (!o.has("perturbationsPerEval")) o.set("perturbationsPerEval", Value::of(4096.0));
  Result r = invoke(method, sub, o);
  return r.attributions[0].to(torch::kCPU, torch::kFloat);
}

// The model with log_softmax over its last axis appended, which gradient
// methods then differentiate.
std::shared_ptr<const Model> log_softmax_model(const Context& ctx) {
  return ctx.source->derived("llm:log_softmax", [](torch::jit::Module& m) {
    auto& fn = torch::jit::toGraphFunction(m.get_method("forward").function());
    auto graph = fn.graph();
    torch::jit::Value* out = graph->outputs()[0];
    if (out->type()->kind() != c10::TypeKind::TensorType)
      fail("model: forward() returns ", out->type()->str(), "; pick the logits with loadModel's `output` option");
    torch::jit::WithInsertPoint guard(graph->return_node());
    torch::jit::Value* lsm = graph->insert(c10::aten::log_softmax, {out, graph->insertConstant(int64_t{-1})});
    graph->return_node()->replaceInput(0, lsm);
  });
}

// [rows, F] attributions per target token (or one row for a class).
torch::Tensor gradient_attribution(const Context& ctx, const std::string& method, const Options& mo, const Prompt& p,
                                   const Goal& g) {
  if (p.tokenize)
    fail("inputs: LLMGradientAttribution takes a TextTokenInput (gradients need token ids), not a TextTemplateInput");
  int64_t len = p.ids.numel(), t = g.target.numel();
  int64_t rows = g.classifier() ? 1 : t;
  torch::Tensor seq = g.classifier() || t < 2 ? p.ids : torch::cat({p.ids, g.target.slice(0, 0, t - 1)});
  int64_t s = seq.numel();
  torch::Tensor is_feature = torch::cat({p.feature_of >= 0, torch::zeros({s - len}, torch::kBool)});
  torch::Tensor base = torch::where(is_feature, torch::full({1}, p.baseline_id, torch::kLong), seq);
  auto dev = ctx.model->device();
  Context sub = ctx;
  sub.model = sub.source = log_softmax_model(ctx);
  sub.forward = nullptr;
  sub.batch = rows;
  sub.inputs = {seq.unsqueeze(0).expand({rows, s}).contiguous().to(dev)};
  sub.extra_values.clear();
  sub.extra.clear();
  if (sub.model->arity() == 2) sub.extra.emplace_back(torch::ones({rows, s}, torch::TensorOptions().dtype(torch::kLong).device(dev)));
  else if (sub.model->arity() != 1)
    fail("model: expected forward(input_ids) or forward(input_ids, attention_mask), got ", sub.model->signature());
  if (g.classifier()) {
    sub.target = Target::parse(Value::of(double(g.label)), rows);
  } else {
    // Row r explains target token r, predicted at position len - 1 + r.
    torch::Tensor at = torch::stack({torch::arange(len - 1, len - 1 + t, torch::kLong), g.target}, 1);
    sub.target = Target::parse(Value::of(at), rows);
  }
  Options o = mo;
  if (o.has("baselines")) fail("options: LLMGradientAttribution sets the method's baselines itself (give baselines to the input)");
  if (method != "LayerGradientXActivation") o.set("baselines", Value::of(base.unsqueeze(0).to(dev)));
  {
    // A quick check with a clear message before the method's own passes.
    torch::NoGradGuard no_grad;
    run_model(*ctx.model, seq.unsqueeze(0), g, len);
  }
  Result r = invoke(method, sub, o);
  torch::Tensor a = r.attributions[0].to(torch::kCPU, torch::kFloat);
  if (a.dim() < 2 || a.size(0) != rows || a.size(1) != s)
    fail("layer: LLMGradientAttribution needs a layer with one output per token ([batch, tokens, ...], an embedding); its "
         "attributions have shape ", shape_str(a.sizes()));
  if (a.dim() > 2) a = a.flatten(2).sum(2);
  return a.slice(1, 0, len).index_select(1, (p.feature_of >= 0).nonzero().flatten());
}

// Greedy decoding of up to `count` tokens after the prompt (stopping after `eos`).
torch::Tensor generate(const Context& ctx, const torch::Tensor& prompt, int64_t count, int64_t eos) {
  Goal any;
  std::vector<int64_t> out;
  torch::Tensor ids = prompt;
  torch::NoGradGuard no_grad;
  for (int64_t i = 0; i < count; ++i) {
    yield_point();
    torch::Tensor logits = run_model(*ctx.model, ids.unsqueeze(0), any, prompt.numel());
    int64_t next = logits[0][-1].argmax().item<int64_t>();
    out.push_back(next);
    ids = torch::cat({ids, torch::tensor({next}, torch::kLong)});
    if (next == eos) break;
  }
  return torch::tensor(out, torch::kLong);
}

}  // namespace

// inputs[0]: the prompt's token ids [1, L]. Options: method, methodOptions,
// targetIds | label | maxNewTokens (+ eosTokenId), attrTarget, 
// featureOf + baselineId (token inputs) or tokenize + features (template
// inputs), numTrials. Returns [attributions [K, F], target ids].
Result llm_attribution(const Context& ctx, const Options& o) {
  std::string method = o.choice("method", "FeatureAblation", [] {
    auto all = perturbation_methods();
    for (const auto& m : gradient_methods()) all.push_back(m);
    return all;
  }());
  bool gradient = among(method, gradient_methods());
  Options mo = o.sub("methodOptions");
  auto prompt = std::make_shared<Prompt>();
  if (ctx.inputs[0].dim() != 2 || ctx.inputs[0].size(0) != 1)
    fail_shape("inputs: expected one prompt's token ids [1, tokens], got shape ", shape_str(ctx.inputs[0].sizes()));
  prompt->ids = ctx.inputs[0][0].to(torch::kCPU, torch::kLong);
  const Value& tokenize = o.get("tokenize");
  if (tokenize.kind == Value::Kind::Function) {
    prompt->tokenize = tokenize.function;
    prompt->features = o.integer("features", 0, 1);
    prompt->deterministic = o.boolean("deterministic", true);
    prompt->feature_of = torch::full({prompt->ids.numel()}, -1, torch::kLong);
  } else {
    prompt->feature_of = long_tensor(o.get("featureOf"), "featureOf");
    if (prompt->feature_of.numel() != prompt->ids.numel())
      fail("featureOf: ", prompt->feature_of.numel(), " entries for ", prompt->ids.numel(), " tokens");
    prompt->features = prompt->feature_of.numel() ? prompt->feature_of.max().item<int64_t>() + 1 : 0;
    prompt->baseline_id = o.integer("baselineId", 0, 0);
  }
  if (prompt->features < 1) fail("inputs: the input has no features to attribute (every token skipped?)");
  auto goal = std::make_shared<Goal>();
  goal->prob = o.choice("attrTarget", "logProb", {"logProb", "prob"}) == "prob";
  // Lime's and KernelShap's surrogate fits explain one score (the reference's too).
  goal->per_token = method == "FeatureAblation" || method == "ShapleyValueSampling" || method == "ShapleyValues";
  if (o.has("label")) {
    goal->label = o.integer("label", 0, 0);
  } else if (o.has("targetIds")) {
    goal->target = long_tensor(o.get("targetIds"), "target");
  } else {
    int64_t count = o.integer("maxNewTokens", 25, 1);
    goal->target = generate(ctx, prompt->ids, count, o.integer("eosTokenId", -1, -1));
  }
  if (!goal->classifier() && goal->target.numel() == 0) fail("target: is empty (no tokens to explain)");
  int64_t trials = o.integer("numTrials", 1, 1);
  o.reject_unknown("LLMAttribution");
  torch::Tensor sum;
  for (int64_t i = 0; i < trials; ++i) {
    torch::Tensor a = gradient ? gradient_attribution(ctx, method, mo, *prompt, *goal)
                               : perturbation_attribution(ctx, method, mo, prompt, goal);
    sum = sum.defined() ? sum + a : a;
  }
  torch::Tensor target = goal->classifier() ? torch::tensor({goal->label}, torch::kLong) : goal->target;
  return {{sum / double(trials), target}, {}};
}

}  // namespace tx
