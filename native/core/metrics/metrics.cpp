// Attribution metrics (Captum's captum.metrics): infidelity and
// sensitivity-max. Perturbations are drawn natively in batches of samples;
// a caller's JavaScript perturbation function runs once per batch.
#include <cmath>
#include <limits>

#include "algorithms.h"
#include "engine/batching.h"
#include "engine/errors.h"
#include "engine/random.h"
#include "engine/scheduler.h"

namespace tx {

namespace {

std::vector<torch::Tensor> tensors_of(const Value& v, size_t count, const std::string& name) {
  std::vector<Value> given = v.is_list() ? *v.list : std::vector<Value>{v};
  if (given.size() != count) fail(name, ": expected ", count, " tensor(s), one per input, got ", given.size());
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < count; ++i) {
    if (!given[i].is_tensor()) fail(name, "[", i, "]: expected a Tensor, got ", given[i].kind_name());
    out.push_back(given[i].tensor);
  }
  return out;
}

// Samples per batch: all of them, or as many as keep batch * samples within
// maxExamplesPerBatch (at least one).
int64_t samples_per_batch(const Context& ctx, const Options& o, int64_t samples) {
  if (!o.has("maxExamplesPerBatch")) {
    // The reference takes every sample at once; here a batch of samples is
    // at most 4096 rows and fits the memory budget (the inputs' copies, their
    // perturbations and the explainer's work, about four rows' worth a row):
    // the result is the same, a million samples no longer allocate at once,
    // and a cancelled or timed-out call stops between batches.
    double row = std::max(1.0, example_bytes(ctx)) * 4 + 16;
    int64_t fit = static_cast<int64_t>(std::min(4096.0, ctx.memory_budget / row)) / ctx.batch;
    return std::max<int64_t>(1, std::min(samples, fit));
  }
  int64_t most = o.integer("maxExamplesPerBatch", 1, 1);
  return std::max<int64_t>(1, std::min(samples, most / ctx.batch));
}

// A perturbation: what a caller's function returns, or one of the built-in
// kinds drawn natively. `baselines` are already expanded like `x`.
struct Perturber {
  std::string type;  // "gaussian", "uniform", "baseline" or "function"
  double scale = 0;   // stdev, radius or swap probability
  std::shared_ptr<Callable> fn;

  static Perturber parse(const Value& v, const char* fallback, double fallback_scale) {
    Perturber p;
    if (v.is_none()) {
      p.type = fallback;
      p.scale = fallback_scale;
      return p;
    }
    if (v.kind == Value::Kind::Function) {
      p.type = "function";
      p.fn = v.function;
      return p;
    }
    if (v.kind != Value::Kind::Object) fail("perturbFunc: expected a function or { type: \"gaussian\" | \"uniform\" | \"baseline\", ... }");
    Options spec(*v.object);
    p.type = spec.choice("type", "gaussian", {"gaussian", "uniform", "baseline"});
    const char* key = p.type == "gaussian" ? "stdev" : p.type == "uniform" ? "radius" : "probability";
    p.scale = spec.number(key, p.type == "gaussian" ? 0.01 : p.type == "uniform" ? 0.02 : 0.5);
    if (!std::isfinite(p.scale) || p.scale < 0 || (p.type == "baseline" && p.scale > 1))
      fail("perturbFunc.", key, ": expected a number ", p.type == "baseline" ? "in [0, 1]" : ">= 0", ", got ", p.scale);
    spec.reject_unknown("perturbFunc");
    return p;
  }
};

// Checks a caller's perturbed tensors against the expanded inputs.
std::vector<torch::Tensor> checked(const Value& v, const std::vector<torch::Tensor>& like, const std::string& what) {
  auto t = tensors_of(v, like.size(), what);
  for (size_t i = 0; i < t.size(); ++i) {
    if (t[i].sizes() != like[i].sizes())
      fail(what, "[", i, "]: expected shape ", shape_str(like[i].sizes()), ", got ", shape_str(t[i].sizes()));
    if (!at::isFloatingType(t[i].scalar_type())) fail(what, "[", i, "]: expected floating-point values");
    t[i] = t[i].to(like[i].device(), like[i].scalar_type());
  }
  return t;
}

Value list_value(const std::vector<torch::Tensor>& ts) {
  List l;
  for (const auto& t : ts) l.push_back(Value::of(t));
  return ts.size() == 1 ? l[0] : Value::of(std::move(l));
}

}  // namespace

// infidelity: E[(sum(I * attributions) - (F(x) - F(x - I)))^2] over
// perturbations I, per example; with `normalize`, the attributions are first
// scaled by the factor that minimises it.
Result infidelity(const Context& ctx, const Options& o) {
  size_t n = ctx.inputs.size();
  if (!o.has("attributions")) fail("attributions: infidelity needs the attributions to judge");
  auto attributions = tensors_of(o.get("attributions"), n, "attributions");
  for (size_t i = 0; i < n; ++i) {
    if (attributions[i].sizes() != ctx.inputs[i].sizes())
      fail("attributions[", i, "]: expected the input's shape ", shape_str(ctx.inputs[i].sizes()), ", got ",
           shape_str(attributions[i].sizes()));
    attributions[i] = attributions[i].to(ctx.inputs[i].device(), torch::kFloat);
  }
  int64_t samples = o.integer("nPerturbSamples", 10, 1);
  int64_t per_batch = samples_per_batch(ctx, o, samples);
  bool normalize = o.boolean("normalize", false);
  Perturber p = Perturber::parse(o.get("perturbFunc"), "gaussian", 0.01);
  std::vector<torch::Tensor> baselines;
  if (o.has("baselines") || p.type == "baseline") baselines = format_baselines(ctx, o.has("baselines") ? o.get("baselines") : Value::of(0.0));
  o.reject_unknown("infidelity");
  require_budget(ctx, double(ctx.batch) * per_batch * example_bytes(ctx) * 3, concat("infidelity's ", per_batch, " perturbations per example"));

  torch::Tensor fx = forward_rows(ctx, identity_rows(ctx.batch), slice_of(ctx.inputs)).reshape({ctx.batch, -1});
  torch::Tensor sum_aa, sum_ad, sum_dd;  // per example: sums of a^2, a*d, d^2 (a: attribution term, d: output drop)
  for (int64_t done = 0; done < samples; done += per_batch) {
    yield_point();
    int64_t s = std::min(per_batch, samples - done);
    Rows rows = Rows::per_example(ctx.batch, s);
    torch::Tensor ex = rows.examples().to(ctx.model->device());
    std::vector<torch::Tensor> x, b, perturbation, perturbed;
    for (size_t i = 0; i < n; ++i) {
      x.push_back(ctx.inputs[i].index_select(0, ex));
      if (!baselines.empty()) b.push_back(baselines[i].index_select(0, ex));
    }
    if (p.type == "function") {
      List args = {list_value(x)};
      if (!b.empty()) args.push_back(list_value(b));
      Value r = (*p.fn)(args);
      if (!r.is_list() || r.list->size() != 2)
        fail("perturbFunc: expected it to return [perturbations, perturbedInputs]");
      perturbation = checked((*r.list)[0], x, "perturbFunc's perturbations");
      perturbed = checked((*r.list)[1], x, "perturbFunc's perturbed inputs");
    } else {
      for (size_t i = 0; i < n; ++i) {
        torch::Tensor pert;
        if (p.type == "gaussian") {
          pert = add_gaussian_noise(torch::zeros_like(x[i]), p.scale);
        } else if (p.type == "uniform") {
          pert = torch::rand_like(x[i]) * (2 * p.scale) - p.scale;
        } else {
          // Each feature swapped to its baseline with probability `scale`.
          torch::Tensor swap = torch::rand_like(x[i]) < p.scale;
          pert = torch::where(swap, x[i] - b[i], torch::zeros_like(x[i]));
        }
        perturbation.push_back(pert);
        perturbed.push_back(x[i] - pert);
      }
    }
    torch::Tensor f_pert = forward_rows(ctx, rows, slice_of(perturbed)).reshape({ctx.batch, s, -1});
    torch::Tensor drop = (fx.unsqueeze(1) - f_pert).reshape({ctx.batch, -1});
    torch::Tensor term;
    for (size_t i = 0; i < n; ++i) {
      torch::Tensor t = (attributions[i].index_select(0, ex) * perturbation[i]).reshape({rows.count, -1}).sum(1);
      term = term.defined() ? term + t : t;
    }
    term = term.reshape({ctx.batch, -1});
    if (drop.size(1) != term.size(1)) drop = drop.reshape({ctx.batch, s, -1}).sum(2);  // several outputs per row: their sum
    torch::Tensor aa = term.pow(2).sum(1), ad = (term * drop).sum(1), dd = drop.pow(2).sum(1);
    sum_aa = sum_aa.defined() ? sum_aa + aa : aa;
    sum_ad = sum_ad.defined() ? sum_ad + ad : ad;
    sum_dd = sum_dd.defined() ? sum_dd + dd : dd;
  }
  torch::Tensor value;
  if (normalize) {
    torch::Tensor beta = torch::where(sum_aa == 0, torch::zeros_like(sum_ad), sum_ad / sum_aa);
    value = beta * beta * sum_aa - 2 * beta * sum_ad + sum_dd;
  } else {
    value = sum_aa - 2 * sum_ad + sum_dd;
  }
  return {{value / static_cast<double>(samples)}, {}};
}

// sensitivity-max: the largest relative change of an explanation, in norm,
// under small perturbations of the inputs (an explainer of this library,
// named by `explainer`, run on every batch of perturbed copies at once).
Result sensitivity_max(const Context& ctx, const Options& o) {
  const Value& name_v = o.get("explainer");
  if (name_v.kind != Value::Kind::String) fail("explainer: expected an attribution method of this library");
  std::string name = name_v.string;
  if (name == "forward" || name == "SensitivityMax" || name == "Infidelity") fail("explainer: cannot be '", name, "'");
  size_t n = ctx.inputs.size();
  int64_t samples = o.integer("nPerturbSamples", 10, 1);
  int64_t per_batch = samples_per_batch(ctx, o, samples);
  double radius = o.number("perturbRadius", 0.02);
  if (!std::isfinite(radius) || radius < 0) fail("perturbRadius: expected a number >= 0, got ", radius);
  Perturber p = Perturber::parse(o.get("perturbFunc"), "uniform", radius);
  double ord = 2;
  const Value& ord_v = o.get("normOrd");
  if (ord_v.kind == Value::Kind::String) {
    if (ord_v.string == "inf") ord = std::numeric_limits<double>::infinity();
    else if (ord_v.string != "fro") fail("normOrd: expected \"fro\", \"inf\" or a number, got \"", ord_v.string, "\"");
  } else if (ord_v.is_number()) {
    ord = ord_v.number;
    if (!(ord > 0)) fail("normOrd: expected a number > 0, got ", ord);
  } else if (!ord_v.is_none()) {
    fail("normOrd: expected \"fro\", \"inf\" or a number");
  }
  std::vector<std::string> own = {"explainer", "nPerturbSamples", "maxExamplesPerBatch", "perturbRadius", "perturbFunc", "normOrd"};
  own.insert(own.end(), context_keys().begin(), context_keys().end());
  Object explainer_options = o.without(own);

  auto flat = [](const std::vector<torch::Tensor>& ts) {
    std::vector<torch::Tensor> f;
    for (const auto& t : ts) f.push_back(t.reshape({t.size(0), -1}).to(torch::kFloat));
    return torch::cat(f, 1);
  };
  auto norms = [&](const torch::Tensor& m) { return torch::linalg_vector_norm(m, ord, {1}, false, c10::nullopt); };
  torch::Tensor original = flat(invoke(name, ctx, Options(explainer_options)).attributions);
  torch::Tensor scale = norms(original);
  scale = torch::where(scale == 0, torch::ones_like(scale), scale);
  const Value baselines = o.get("baselines");
  torch::Tensor best;
  for (int64_t done = 0; done < samples; done += per_batch) {
    yield_point();
    int64_t s = std::min(per_batch, samples - done);
    Rows rows = Rows::per_example(ctx.batch, s);
    torch::Tensor ex = rows.examples().to(ctx.model->device());
    std::vector<torch::Tensor> x;
    for (size_t i = 0; i < n; ++i) x.push_back(ctx.inputs[i].index_select(0, ex));
    if (p.type == "function") {
      Value r = (*p.fn)({list_value(x), Value::of(radius)});
      x = checked(r, x, "perturbFunc's perturbed inputs");
    } else {
      for (size_t i = 0; i < n; ++i) {
        if (!at::isFloatingType(x[i].scalar_type())) continue;
        x[i] = p.type == "gaussian" ? add_gaussian_noise(x[i], p.scale)
                                    : x[i] + (torch::rand_like(x[i]) * (2 * p.scale) - p.scale);
      }
    }
    Options part(explainer_options);
    // Per-example baselines follow their example, as the reference expands them.
    if (baselines.is_tensor() && baselines.tensor.dim() > 0 && baselines.tensor.sizes() == ctx.inputs[0].sizes())
      part.set("baselines", Value::of(baselines.tensor.index_select(0, ex.to(baselines.tensor.device()))));
    Context perturbed_ctx = ctx.with_rows(x, rows.examples());
    perturbed_ctx.expanded = true;
    torch::Tensor changed = flat(invoke(name, perturbed_ctx, part).attributions);
    torch::Tensor rel = (norms(changed - original.index_select(0, ex.to(original.device()))) /
                         scale.index_select(0, ex.to(scale.device())))
                            .reshape({ctx.batch, s})
                            .amax(1);
    best = best.defined() ? torch::maximum(best, rel) : rel;
  }
  return {{best}, {}};
}

}  // namespace tx

namespace tx {

// Scores of masked copies, the engine of the deletion/insertion curves and
// faithfulness correlation. Each example's features (every element of every
// input, concatenated) come in `groupsPerExample` orderings, `order` [batch *
// groups, F]; row (group g, point p) takes the first counts[p] features of
// g's ordering from the baseline ("deletion") or only those from the input
// ("insertion"). Rows are built chunk by chunk and never all at once.
// Result: the target score of every row, [batch * groups * points].
Result masked_scores(const Context& ctx, const Options& o) {
  size_t n = ctx.inputs.size();
  const Value& order_v = o.get("order");
  if (!order_v.is_tensor()) fail("order: expected an int64 Tensor of feature orderings");
  std::vector<int64_t> sizes, offsets;
  int64_t features = 0;
  for (const auto& x : ctx.inputs) {
    offsets.push_back(features);
    sizes.push_back(x[0].numel());
    features += x[0].numel();
  }
  torch::Tensor order = order_v.tensor.to(torch::kCPU, torch::kLong);
  if (order.dim() != 2 || order.size(1) != features || order.size(0) % ctx.batch != 0 || order.size(0) == 0)
    fail("order: expected [batch * groups, ", features, "], got ", shape_str(order.sizes()));
  int64_t groups = order.size(0) / ctx.batch;
  const Value& counts_v = o.get("counts");
  if (!counts_v.is_list() || counts_v.list->empty()) fail("counts: expected a non-empty list of feature counts");
  std::vector<int64_t> counts;
  for (const auto& c : *counts_v.list) {
    if (!c.is_integer() || c.number < 0 || c.number > features) fail("counts: expected integers in [0, ", features, "]");
    counts.push_back(static_cast<int64_t>(c.number));
  }
  bool deletion = o.choice("mode", "deletion", {"deletion", "insertion"}) == "deletion";
  bool softmax = o.boolean("softmax", false);
  auto baselines = format_baselines(ctx, o.has("baselines") ? o.get("baselines") : Value::of(0.0));
  o.reject_unknown("masked scores");
  // rank[g][f]: where feature f comes in ordering g (checks it is a permutation).
  torch::Tensor rank = torch::empty_like(order);
  rank.scatter_(1, order, torch::arange(features, torch::kLong).expand_as(order).contiguous());
  if (!torch::equal(std::get<0>(order.sort(1)), torch::arange(features, torch::kLong).expand_as(order)))
    fail("order: every row must be a permutation of the ", features, " features");
  const int64_t points = static_cast<int64_t>(counts.size()), per_example = groups * points;
  torch::Tensor count_t = torch::tensor(counts, torch::kLong);
  Rows rows = Rows::per_example(ctx.batch, per_example);
  c10::Device dev = ctx.model->device();
  auto build = [&](int64_t begin, int64_t end) {
    torch::Tensor r = torch::arange(begin, end, torch::kLong);
    torch::Tensor g = r.div(points, "floor"), p = r.remainder(points), ex = r.div(per_example, "floor");
    // true: the feature takes the baseline's value.
    torch::Tensor from_base = rank.index_select(0, g) < count_t.index_select(0, p).unsqueeze(1);
    if (!deletion) from_base = from_base.logical_not();
    from_base = from_base.to(dev);
    torch::Tensor ex_dev = ex.to(dev);
    Chunk c;
    for (size_t i = 0; i < n; ++i) {
      auto shape = ctx.inputs[i].sizes().vec();
      shape[0] = end - begin;
      torch::Tensor m = from_base.slice(1, offsets[i], offsets[i] + sizes[i]).reshape(shape);
      c.inputs.push_back(torch::where(m, baselines[i].index_select(0, ex_dev), ctx.inputs[i].index_select(0, ex_dev)));
    }
    return c;
  };
  OutputFn transform;
  if (softmax)
    transform = [](const torch::Tensor& out) {
      if (out.dim() != 2) fail("softmax: needs a [batch, classes] output, got ", shape_str(out.sizes()));
      return out.softmax(1);
    };
  torch::Tensor scores = forward_rows(ctx, rows, build, transform).reshape({rows.count, -1});
  if (scores.size(1) != 1)
    fail("target: these metrics read one score per example; the output has ", scores.size(1), " values per row, so give a target");
  return {{scores.reshape({rows.count}).to(torch::kDouble)}, {}};
}

}  // namespace tx
