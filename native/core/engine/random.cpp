#include "engine/random.h"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <mutex>

namespace tx {

namespace {
constexpr int64_t kBlock = int64_t(1) << 16;  // elements per generator
}

torch::Tensor add_gaussian_noise(const torch::Tensor& base, double stdev) {
  bool floating = base.scalar_type() == torch::kFloat || base.scalar_type() == torch::kDouble;
  if (!base.device().is_cpu() || !floating || base.numel() < 2 * kBlock)
    return base + torch::randn_like(base) * stdev;
  torch::Tensor out = torch::empty_like(base, at::MemoryFormat::Contiguous);
  uint64_t seed;
  {
    auto gen = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(gen.mutex());
    seed = gen.get<at::CPUGeneratorImpl>()->random64();
  }
  torch::Tensor flat = out.view({-1});
  const int64_t n = flat.numel(), blocks = (n + kBlock - 1) / kBlock;
  at::parallel_for(0, blocks, 1, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      at::Generator g = at::detail::createCPUGenerator(seed + static_cast<uint64_t>(b) * 0x9E3779B97F4A7C15ULL);
      flat.slice(0, b * kBlock, std::min(n, (b + 1) * kBlock)).normal_(0.0, stdev, g);
    }
  });
  return out.add_(base);
}

}  // namespace tx
