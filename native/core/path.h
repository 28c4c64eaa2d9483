// Path integration, shared by IntegratedGradients and (later) its layer and
// neuron variants and conductance.
#pragma once
#include "approximation.h"
#include "batching.h"

namespace tx {

// For every input: sum over quadrature points k of weight_k * dF/dx evaluated
// at baseline + alpha_k * diff, where diff = input - baseline. Rows are laid
// out step-major (all examples at alpha_0, then alpha_1, ...) and evaluated
// in chunks.
std::vector<torch::Tensor> path_gradient_integral(const Context& ctx, const std::vector<torch::Tensor>& baselines,
                                                  const std::vector<torch::Tensor>& diffs, const Quadrature& q);

// nSteps and method options, read and checked in one place.
Quadrature quadrature_option(const Options& o, int64_t default_steps = 50);

}  // namespace tx
