// Random draws for the sampling methods (NoiseTunnel, GradientShap).
#pragma once
#include "engine/torch_headers.h"

namespace tx {

// `base` plus Gaussian noise of standard deviation `stdev`, drawn into a new
// tensor shaped like `base`. On CPU the draws are split into fixed blocks,
// each from its own generator seeded by one draw of the default generator,
// and the blocks run in parallel: a single Mersenne twister stream is the
// slowest part of a noisy batch. Fixed blocks keep results independent of
// the thread count (and reproducible under manualSeed).
torch::Tensor add_gaussian_noise(const torch::Tensor& base, double stdev);

}  // namespace tx
