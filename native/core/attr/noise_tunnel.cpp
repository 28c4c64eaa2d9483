// NoiseTunnel: any attribution method averaged over noisy copies of the
// inputs (SmoothGrad, SmoothGrad-squared, VarGrad).
#include "algorithms.h"
#include "engine/batching.h"
#include "engine/errors.h"
#include "engine/random.h"
#include "engine/scheduler.h"

namespace tx {

namespace {

// Baselines for the expanded batch: per-example baselines follow their
// example; with drawBaselineFromDistrib every row draws a random reference.
Value expand_baselines(const Value& v, const Context& ctx, const torch::Tensor& examples, bool draw) {
  auto one = [&](const Value& b) -> Value {
    if (!b.is_tensor()) return b;
    const torch::Tensor& t = b.tensor;
    if (draw) {
      torch::Tensor pick = torch::randint(t.size(0), {examples.size(0)}, torch::kLong);
      return Value::of(t.index_select(0, pick.to(t.device())));
    }
    if (t.dim() > 0 && t.size(0) == ctx.batch && ctx.batch > 1)
      return Value::of(t.index_select(0, examples.to(t.device())));
    return b;
  };
  if (!v.is_list()) return one(v);
  List out;
  for (const auto& b : *v.list) out.push_back(one(b));
  return Value::of(out);
}

}  // namespace

Result noise_tunnel(const Context& ctx, const Options& o) {
  const Value& base_v = o.get("base");
  if (base_v.kind != Value::Kind::String) fail("NoiseTunnel: expected the wrapped attribution method");
  std::string base = base_v.string;
  if (base == "NoiseTunnel" || base == "forward") fail("NoiseTunnel: cannot wrap '", base, "'");
  std::string type = o.choice("ntType", "smoothgrad", {"smoothgrad", "smoothgrad_sq", "vargrad"});
  int64_t samples = o.has("ntSamples") ? o.integer("ntSamples", 5, 1) : o.integer("nSamples", 5, 1);
  // Noisy copies are made a batch of samples at a time: by default as many as
  // fit a quarter of the memory budget (the wrapped method needs the rest).
  int64_t fit = static_cast<int64_t>(ctx.memory_budget / 4 / std::max(1.0, ctx.batch * example_bytes(ctx)));
  int64_t per_batch = o.integer("ntSamplesBatchSize", std::max<int64_t>(1, std::min(samples, fit)), 1);
  auto stdevs = per_input_numbers(o.get("stdevs"), ctx.inputs.size(), "stdevs", 1.0);
  bool draw = o.boolean("drawBaselineFromDistrib", false);
  bool want_delta = o.boolean("returnConvergenceDelta", false);
  for (size_t i = 0; i < ctx.inputs.size(); ++i)
    if (stdevs[i] != 0 && !at::isFloatingType(ctx.inputs[i].scalar_type()))
      fail("inputs[", i, "]: NoiseTunnel adds noise, which needs floating-point inputs, got ",
           dtype_str(ctx.inputs[i].scalar_type()));

  std::vector<std::string> own = {"base", "ntType", "ntSamples", "nSamples", "ntSamplesBatchSize", "stdevs",
                                  "drawBaselineFromDistrib"};
  own.insert(own.end(), context_keys().begin(), context_keys().end());
  Object base_options = o.without(own);
  const Value baselines = o.get("baselines");

  std::vector<torch::Tensor> sum, sum_sq;
  std::vector<torch::Tensor> deltas;
  for (int64_t done = 0; done < samples; done += per_batch) {
    yield_point();
    int64_t s = std::min(per_batch, samples - done);
    torch::Tensor examples = Rows::per_example(ctx.batch, s).examples();
    torch::Tensor ex_dev = examples.to(ctx.model->device());
    std::vector<torch::Tensor> noisy;
    for (size_t i = 0; i < ctx.inputs.size(); ++i) {
      torch::Tensor x = ctx.inputs[i].index_select(0, ex_dev);
      if (stdevs[i] != 0) x = add_gaussian_noise(x, stdevs[i]);
      noisy.push_back(x);
    }
    Options part(base_options);
    if (!baselines.is_none()) part.set("baselines", expand_baselines(baselines, ctx, examples, draw));
    Context noisy_ctx = ctx.with_rows(noisy, examples);
    noisy_ctx.expanded = true;
    Result r = invoke(base, noisy_ctx, part);
    for (size_t i = 0; i < r.attributions.size(); ++i) {
      const torch::Tensor& a = r.attributions[i];
      std::vector<int64_t> shape = {ctx.batch, s};
      shape.insert(shape.end(), a.sizes().begin() + 1, a.sizes().end());
      torch::Tensor v = a.reshape(shape);
      // Plain SmoothGrad needs no squares.
      torch::Tensor s1 = v.sum(1), s2 = type == "smoothgrad" ? torch::Tensor() : v.pow(2).sum(1);
      if (sum.size() <= i) {
        sum.push_back(s1);
        sum_sq.push_back(s2);
      } else {
        sum[i] += s1;
        if (s2.defined()) sum_sq[i] += s2;
      }
    }
    if (r.delta.defined()) deltas.push_back(r.delta);
  }
  Result out;
  for (size_t i = 0; i < sum.size(); ++i) {
    torch::Tensor mean = sum[i] / static_cast<double>(samples);
    if (type == "smoothgrad") {
      out.attributions.push_back(mean);
      continue;
    }
    torch::Tensor mean_sq = sum_sq[i] / static_cast<double>(samples);
    out.attributions.push_back(type == "smoothgrad_sq" ? mean_sq : mean_sq - mean * mean);
  }
  if (want_delta && !deltas.empty()) out.delta = torch::cat(deltas, 0);
  return out;
}

}  // namespace tx
