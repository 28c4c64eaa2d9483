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
                                                  const std::vector<torch::Tensor>& diffs, const Quadrature& q) {
  int64_t n = ctx.batch, steps = static_cast<int64_t>(q.alphas.size());
  Rows rows = Rows::step_major(n, steps);
  auto dev = ctx.model->device();
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  auto dtype = ctx.inputs[0].scalar_type();
  // from_blob + to() copies once into the working dtype and device.
  torch::Tensor alphas = torch::from_blob(const_cast<double*>(q.alphas.data()), {steps}, opts).to(dev, dtype);
  torch::Tensor weights = torch::from_blob(const_cast<double*>(q.weights.data()), {steps}, opts).to(dev, dtype);

  return sum_gradients(ctx, rows, [&](int64_t b, int64_t e) {
    Chunk c;
    if (b % n == 0 && e % n == 0) {
      // Whole steps: broadcast the path points and fold the weighted step
      // sum into one matrix product per input.
      int64_t k = (e - b) / n;
      torch::Tensor a = alphas.slice(0, b / n, e / n), w = weights.slice(0, b / n, e / n).view({1, k});
      for (size_t i = 0; i < diffs.size(); ++i) {
        std::vector<int64_t> shape = {k};
        shape.insert(shape.end(), diffs[i].sizes().begin(), diffs[i].sizes().end());
        std::vector<int64_t> rows_shape(shape.begin() + 1, shape.end());
        rows_shape[0] = k * n;
        torch::Tensor points = torch::addcmul(baselines[i].unsqueeze(0), per_row(a, diffs[i].unsqueeze(0)), diffs[i].unsqueeze(0));
        c.inputs.push_back(points.view(rows_shape));
      }
      c.reduced = true;
      c.finish = [w, k, this_shapes = ctx.inputs](std::vector<torch::Tensor>& grads) {
        for (size_t i = 0; i < grads.size(); ++i) grads[i] = torch::mm(w, grads[i].reshape({k, -1})).view(this_shapes[i].sizes());
      };
      return c;
    }
    // A chunk that splits a step: pick each row's example and alpha.
    torch::Tensor row = torch::arange(b, e, torch::kLong).to(dev);
    torch::Tensor step = row.div(n, "floor"), ex = row.remainder(n);
    torch::Tensor a = alphas.index_select(0, step);
    for (size_t i = 0; i < diffs.size(); ++i) {
      torch::Tensor d = diffs[i].index_select(0, ex);
      c.inputs.push_back(torch::addcmul(baselines[i].index_select(0, ex), per_row(a, d), d));
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

  std::vector<torch::Tensor> diffs;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) diffs.push_back(ctx.inputs[i] - baselines[i]);
  auto attributions = path_gradient_integral(ctx, baselines, diffs, q);
  if (multiply)
    for (size_t i = 0; i < attributions.size(); ++i) attributions[i] = attributions[i] * diffs[i];
  Result r{attributions, {}};
  if (want_delta) r.delta = convergence_delta(ctx, attributions, baselines, ctx.inputs);
  return r;
}

}  // namespace tx
