// The benchmarks' floor: the bare model's forward and backward passes, with
// nothing of torchexplain around them, timed in the calling process.
#pragma once
#include "engine/model.h"

namespace tx {

// Seconds per round, where one round runs forward + backward (gradient of
// output[:, target] with respect to the inputs) over `rows`, `chunk` rows at
// a time (0: all at once). Averaged over `rounds` after one warm-up round.
double time_forward_backward(const Model& model, const std::vector<torch::Tensor>& rows, int64_t target, int64_t chunk,
                             int rounds);

// Seconds per round of forward passes alone (perturbation methods' floor).
double time_forward(const Model& model, const std::vector<torch::Tensor>& rows, int64_t chunk, int rounds);

}  // namespace tx
