// Path integration, shared by IntegratedGradients and (later) its layer and
// neuron variants and conductance.
#pragma once
#include "engine/approximation.h"
#include "engine/batching.h"

namespace tx {

// For every input: sum over quadrature points k of weight_k * dF/dx evaluated
// at baseline + alpha_k * diff, where diff = input - baseline. Rows are laid
// out step-major (all examples at alpha_0, then alpha_1, ...) and evaluated
// in chunks.
std::vector<torch::Tensor> path_gradient_integral(const Context& ctx, const std::vector<torch::Tensor>& baselines,
                                                  const std::vector<torch::Tensor>& diffs, const Quadrature& q);

// Quadrature points or weights as a tensor like `like` (its device and dtype).
torch::Tensor quadrature_tensor(const std::vector<double>& v, const torch::Tensor& like);

// Path points for rows [b, e) laid out step-major over `n` examples:
// baselines + alphas[step] * diffs, one tensor per input.
std::vector<torch::Tensor> path_points(const std::vector<torch::Tensor>& baselines, const std::vector<torch::Tensor>& diffs,
                                       const torch::Tensor& alphas, int64_t n, int64_t b, int64_t e);

// GradientShap's draws (options baselines, nSamples, stdevs, multiplyByInputs,
// returnConvergenceDelta): each example `samples` times, example-major, as a
// noisy input (end), a reference drawn from the distribution (start) and a
// random point between them (alpha).
struct ShapDraws {
  Rows rows;
  std::vector<torch::Tensor> ends, starts;
  torch::Tensor alpha;
  int64_t samples = 0;
  bool multiply = true, want_delta = false;
};
ShapDraws shap_draws(const Context& ctx, const Options& o, const std::string& name);

// nSteps and method options, read and checked in one place.
Quadrature quadrature_option(const Options& o, int64_t default_steps = 50,
                             const std::string& default_method = "gausslegendre");

}  // namespace tx
