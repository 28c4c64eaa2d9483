// Shared machinery of the perturbation family: feature masks, and batched
// evaluation of perturbed copies of the inputs (no gradients).
#pragma once
#include <functional>

#include "engine/batching.h"

namespace tx {

// Feature groups over the inputs: element e of input i belongs to feature
// masks[i][e] (masks broadcast to the inputs; batch dimension 1 or N). A
// feature may span inputs. Ids run from 0 to count - 1.
struct Features {
  std::vector<torch::Tensor> masks;  // int64, on the model's device
  int64_t count = 0;
};

// The featureMask option (one mask per input, or one tensor for one input),
// checked; without it every element of every input is its own feature.
Features feature_mask_option(const Context& ctx, const Value& v);

// A batch of k perturbations of the inputs: for each input, where to replace
// values ([k, 1 or N, ...] bool) and what with (broadcastable to [k, N, ...]).
struct Perturbation {
  std::vector<torch::Tensor> replace;
  std::vector<torch::Tensor> with;
};
// Builds perturbations [first, first + k) in one go (vectorised: a batch
// costs a few tensor operations, whatever k).
using PerturbationFn = std::function<Perturbation(int64_t first, int64_t k)>;

// The perturbationsPerEval option: a count, or "auto" for as many as fit in
// memoryBudget bytes of perturbed inputs (default 256 MiB).
int64_t perturbations_per_eval_option(const Context& ctx, const Options& o, int64_t total);

// Target-selected output for `count` perturbations, `per_eval` at a time
// (one forward pass each): [count, N] (or [count, 1] when the model returns
// one value per batch).
torch::Tensor evaluate_perturbations(const Context& ctx, int64_t count, int64_t per_eval, const PerturbationFn& perturb);

// Target-selected output for the unperturbed inputs, as a [1, N] or [1, 1] row.
torch::Tensor evaluate_inputs(const Context& ctx);

// Per-feature scores [F, N or 1] spread onto the inputs: every element gets
// its feature's score. Shapes follow the inputs (batch N, or 1 in aggregate mode).
std::vector<torch::Tensor> scores_to_inputs(const Context& ctx, const Features& f, const torch::Tensor& scores);

}  // namespace tx
