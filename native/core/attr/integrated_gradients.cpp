// Path methods: IntegratedGradients and the path integral they share.
#include "algorithms.h"
#include "engine/errors.h"
#include "attr/path.h"

namespace tx {

Quadrature quadrature_option(const Options& o, int64_t default_steps, const std::string& default_method) {
  int64_t steps = o.integer("nSteps", default_steps, 1);
  std::string method = o.choice("method", default_method, quadrature_methods());
  return quadrature(method, steps);
}

torch::Tensor quadrature_tensor(const std::vector<double>& v, const torch::Tensor& like) {
  // from_blob + to() copies once into the working dtype and device.
  auto opts = torch::TensorOptions().dtype(torch::kDouble);
  return torch::from_blob(const_cast<double*>(v.data()), {static_cast<int64_t>(v.size())}, opts)
      .to(like.device(), like.scalar_type());
}

std::vector<torch::Tensor> path_points(const std::vector<torch::Tensor>& baselines, const std::vector<torch::Tensor>& diffs,
                                       const torch::Tensor& alphas, int64_t n, int64_t b, int64_t e) {
  torch::Tensor row = torch::arange(b, e, torch::kLong).to(alphas.device());
  torch::Tensor step = row.div(n, "floor"), ex = row.remainder(n);
  torch::Tensor a = alphas.index_select(0, step);
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < diffs.size(); ++i) {
    torch::Tensor d = diffs[i].index_select(0, ex);
    out.push_back(torch::addcmul(baselines[i].index_select(0, ex), per_row(a, d), d));
  }
  return out;
}

std::vector<torch::Tensor> path_gradient_integral(const Context& ctx, const std::vector<torch::Tensor>& baselines,
                                                  const std::vector<torch::Tensor>& diffs, const Quadrature& q) {
  int64_t n = ctx.batch, steps = static_cast<int64_t>(q.alphas.size());
  Rows rows = Rows::step_major(n, steps);
  torch::Tensor alphas = quadrature_tensor(q.alphas, ctx.inputs[0]);
  torch::Tensor weights = quadrature_tensor(q.weights, ctx.inputs[0]);

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
    c.inputs = path_points(baselines, diffs, alphas, n, b, e);
    torch::Tensor w = weights.index_select(0, torch::arange(b, e, torch::kLong).div(n, "floor").to(weights.device()));
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
