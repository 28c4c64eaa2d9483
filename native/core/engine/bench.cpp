#include "engine/bench.h"

#include <chrono>
#include <torch/cuda.h>

#include "engine/scheduler.h"

namespace tx {

namespace {

// Rows on the model's device beforehand (a floor owes nothing to copies);
// on a GPU each round waits for its kernels to finish.
template <typename Pass>
double time_rounds(const Model& model, const std::vector<torch::Tensor>& host_rows, int64_t chunk, int rounds,
                   const Pass& pass) {
  std::vector<torch::Tensor> rows;
  for (const auto& r : host_rows) rows.push_back(r.to(model.device()));
  int64_t n = rows[0].size(0), size = chunk > 0 ? chunk : n;
  bool cuda = model.device().is_cuda();
  auto round = [&] {
    for (int64_t b = 0; b < n; b += size) {
      std::vector<torch::Tensor> part;
      for (const auto& r : rows) part.push_back(r.slice(0, b, std::min(n, b + size)));
      pass(part);
    }
    if (cuda) torch::cuda::synchronize(model.device().index());
  };
  // On the compute thread the attributions use, so that both see the same thread state.
  return run_request<double>([&] {
    round();  // warm-up: lets the TorchScript executor specialise first
    auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < rounds; ++i) round();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / rounds;
  });
}

}  // namespace

double time_forward_backward(const Model& model, const std::vector<torch::Tensor>& rows, int64_t target, int64_t chunk,
                             int rounds) {
  return time_rounds(model, rows, chunk, rounds, [&](const std::vector<torch::Tensor>& part) {
    std::vector<torch::Tensor> leaves;
    for (const auto& p : part) leaves.push_back(p.detach().requires_grad_(true));
    torch::Tensor out = model.forward(leaves, {});
    torch::autograd::grad({out.select(1, target).sum()}, leaves);
  });
}

double time_forward(const Model& model, const std::vector<torch::Tensor>& rows, int64_t chunk, int rounds) {
  torch::NoGradGuard no_grad;
  return time_rounds(model, rows, chunk, rounds, [&](const std::vector<torch::Tensor>& part) { model.forward(part, {}); });
}

}  // namespace tx
