// Path methods: IntegratedGradients and the path integral they share.
#include "algorithms.h"
#include "errors.h"
#include "path.h"

namespace tx {

Quadrature quadrature_option(const Options& o, int64_t default_steps) {
  int64_t steps = o.integer("nSteps", default_steps, 1);
  std::string method = o.choice("method", "gausslegendre", quadrature_methods());
  return quadrature(method, steps);
}

std::vector<torch::Tensor> path_gradient_integral(const Context& ctx, const std::vector<torch::Tensor>& baselines,
                                                  const Quadrature& q) {
  int64_t n = ctx.batch, steps = static_cast<int64_t>(q.alphas.size());
  Rows rows{n * steps, torch::arange(n * steps, torch::kLong).remainder(n)};
  auto dev = ctx.model->device();
  torch::Tensor step_of_row = torch::arange(n * steps, torch::kLong).div(n, "floor").to(dev);
  torch::Tensor examples = rows.examples.to(dev);
  auto dtype = ctx.inputs[0].scalar_type();
  torch::Tensor alphas = torch::tensor(q.alphas, torch::kDouble).to(dev, dtype);
  torch::Tensor weights = torch::tensor(q.weights, torch::kDouble).to(dev, dtype);
  std::vector<torch::Tensor> diffs;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) diffs.push_back(ctx.inputs[i] - baselines[i]);

  return sum_gradients(ctx, rows, [&](int64_t b, int64_t e) {
    Chunk c;
    torch::Tensor step = step_of_row.slice(0, b, e), ex = examples.slice(0, b, e);
    torch::Tensor a = alphas.index_select(0, step);
    for (size_t i = 0; i < diffs.size(); ++i) {
      torch::Tensor d = diffs[i].index_select(0, ex);
      c.inputs.push_back(baselines[i].index_select(0, ex) + per_row(a, d) * d);
    }
    torch::Tensor w = weights.index_select(0, step);
    c.finish = [w](std::vector<torch::Tensor>& grads) {
      for (auto& g : grads) g = g * per_row(w, g);
    };
    return c;
  });
}

Result integrated_gradients(const Context& ctx, const Options& o) {
  Quadrature q = quadrature_option(o);
  auto baselines = format_baselines(ctx, o.get("baselines"));
  bool multiply = o.boolean("multiplyByInputs", true);
  bool want_delta = o.boolean("returnConvergenceDelta", false);
  o.reject_unknown("IntegratedGradients");

  auto attributions = path_gradient_integral(ctx, baselines, q);
  if (multiply)
    for (size_t i = 0; i < attributions.size(); ++i) attributions[i] = attributions[i] * (ctx.inputs[i] - baselines[i]);
  Result r{attributions, {}};
  if (want_delta) r.delta = convergence_delta(ctx, attributions, baselines, ctx.inputs);
  return r;
}

}  // namespace tx
