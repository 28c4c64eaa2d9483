// Long-lived compute threads. All LibTorch work runs on them rather than on
// whichever thread asked: thread-local state (OpenMP teams, autograd and
// TorchScript executor caches) then stays warm between calls, which is most
// of the cost of a small model's attribution.
#pragma once
#include <functional>
#include <future>
#include <memory>

namespace tx {

// Queues `work` on compute thread `slot` (0 serves every call; 1.. serve
// extra worker devices). The future carries its exception, if any.
std::future<void> submit(size_t slot, std::function<void()> work);

// Runs `work` on compute thread `slot` and waits for it (inline when called
// from that thread already).
void run_on(size_t slot, const std::function<void()>& work);

template <typename T>
T run_on(size_t slot, const std::function<T()>& work) {
  T out;
  run_on(slot, std::function<void()>([&] { out = work(); }));
  return out;
}

}  // namespace tx
