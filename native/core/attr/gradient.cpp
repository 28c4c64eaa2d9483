// Gradient family: attributions from gradients at the inputs (Saliency,
// InputXGradient) or at random points between baselines and inputs
// (GradientShap, an expectation of gradients).
#include "algorithms.h"
#include "engine/batching.h"
#include "attr/path.h"
#include "engine/errors.h"
#include "engine/random.h"

namespace tx {

Result saliency(const Context& ctx, const Options& o) {
  bool abs = o.boolean("abs", true);
  o.reject_unknown("Saliency");
  auto grads = row_gradients(ctx, identity_rows(ctx.batch), slice_of(ctx.inputs));
  if (abs)
    for (auto& g : grads) g = g.abs();
  return {grads, {}};
}

Result input_x_gradient(const Context& ctx, const Options& o) {
  o.reject_unknown("InputXGradient");
  auto grads = row_gradients(ctx, identity_rows(ctx.batch), slice_of(ctx.inputs));
  for (size_t i = 0; i < grads.size(); ++i) grads[i] = grads[i] * ctx.inputs[i];
  return {grads, {}};
}

ShapDraws shap_draws(const Context& ctx, const Options& o, const std::string& name) {
  if (!o.has("baselines"))
    fail("baselines: ", name, " needs a baseline distribution (a tensor of reference samples per input, or a number)");
  auto dist = baseline_distribution(ctx, o.get("baselines"));
  ShapDraws d;
  d.samples = o.integer("nSamples", 5, 1);
  auto stdevs = per_input_numbers(o.get("stdevs"), ctx.inputs.size(), "stdevs", 0.0);
  d.multiply = o.boolean("multiplyByInputs", true);
  d.want_delta = o.boolean("returnConvergenceDelta", false);
  int64_t count = ctx.batch * d.samples;
  // The draws (noisy ends, picked starts, alphas) are made up front.
  require_budget(ctx, double(count) * (2 * example_bytes(ctx) + 16), concat(name, "'s ", count, " drawn samples"));
  d.rows = Rows::per_example(ctx.batch, d.samples);
  torch::Tensor examples = d.rows.examples().to(ctx.model->device());
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    torch::Tensor x = ctx.inputs[i].index_select(0, examples);
    if (stdevs[i] != 0 && !at::isFloatingType(x.scalar_type()))
      fail("stdevs: noise cannot be added to inputs[", i, "] of dtype ", dtype_str(x.scalar_type()), " (integer inputs such as "
           "token ids take stdevs 0; the path then runs between the layer's values)");
    if (stdevs[i] != 0) x = add_gaussian_noise(x, stdevs[i]);
    d.ends.push_back(x);
    torch::Tensor pick = torch::randint(dist[i].size(0), {count}, examples.options());
    d.starts.push_back(dist[i].index_select(0, pick));
  }
  auto dtype = at::isFloatingType(ctx.inputs[0].scalar_type()) ? ctx.inputs[0].scalar_type() : torch::kFloat;
  d.alpha = torch::rand({count}, ctx.inputs[0].options().dtype(dtype));
  return d;
}

Result gradient_shap(const Context& ctx, const Options& o) {
  ShapDraws d = shap_draws(ctx, o, "GradientShap");
  o.reject_unknown("GradientShap");
  int64_t n = ctx.batch, samples = d.samples;
  bool multiply = d.multiply, want_delta = d.want_delta;
  const Rows& rows = d.rows;
  const auto &ends = d.ends, &starts = d.starts;
  const torch::Tensor& alpha = d.alpha;
  auto build = [&](int64_t b, int64_t e) {
    Chunk c;
    torch::Tensor a = alpha.slice(0, b, e);
    std::vector<torch::Tensor> diffs;
    for (size_t i = 0; i < ends.size(); ++i) {
      torch::Tensor s = starts[i].slice(0, b, e), d = ends[i].slice(0, b, e) - s;
      c.inputs.push_back(s + per_row(a, d) * d);
      diffs.push_back(d);
    }
    if (multiply)
      c.finish = [diffs](std::vector<torch::Tensor>& grads) {
        for (size_t i = 0; i < grads.size(); ++i) grads[i] = grads[i] * diffs[i];
      };
    return c;
  };
  if (!want_delta) {
    auto sums = sum_gradients(ctx, rows, build);
    for (auto& s : sums) s = s / static_cast<double>(samples);
    return {sums, {}};
  }
  // The delta is per drawn sample, as in the reference, so keep every row.
  auto per_sample = row_gradients(ctx, rows, build);
  torch::Tensor delta = convergence_delta(ctx.with_rows(ends, rows.examples()), per_sample, starts, ends);
  std::vector<torch::Tensor> means;
  for (auto& g : per_sample) {
    std::vector<int64_t> shape = {n, samples};
    shape.insert(shape.end(), g.sizes().begin() + 1, g.sizes().end());
    means.push_back(g.view(shape).mean(1));
  }
  return {means, delta};
}

}  // namespace tx
