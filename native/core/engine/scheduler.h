// Where work runs. Requests (attribute calls, model loads) run on a small
// pool of long-lived request workers; chunks for extra devices run on one
// long-lived thread per device slot. Long-lived threads keep their
// thread-local state (OpenMP teams, autograd and TorchScript executor caches)
// warm between calls, which is most of the cost of a small model's call.
//
// Fairness: a long request yields between its chunks (yield_point), running
// queued requests inline when every worker is busy, so a short request waits
// for at most one chunk of a long one.
#pragma once
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <string>

namespace tx {

// Cancellation of one request: by its caller (an AbortSignal), by its
// deadline (timeoutMs), or by the JavaScript environment going away.
class CancelToken {
 public:
  void cancel(const std::string& reason);  // the first reason wins
  void set_timeout(double ms);
  bool cancelled() const;
  // Throws the Aborted error when cancelled (or past the deadline).
  void check() const;

 private:
  std::atomic<bool> flag_{false};
  bool has_deadline_ = false;
  std::chrono::steady_clock::time_point deadline_;
  double timeout_ms_ = 0;
  mutable std::mutex mutex_;
  std::string reason_;
};

// The request this thread works for, so that deep loops can check it
// without threading a token through every call.
class RequestScope {
 public:
  explicit RequestScope(std::shared_ptr<CancelToken> token);
  ~RequestScope();
  RequestScope(const RequestScope&) = delete;
  RequestScope& operator=(const RequestScope&) = delete;

 private:
  std::shared_ptr<CancelToken> previous_;
};
std::shared_ptr<CancelToken> current_request();

// Throws if the current request was cancelled.
void check_cancelled();
// Between chunks: check_cancelled(), then let waiting requests run.
void yield_point();

// Pool settings: request workers and intra-op threads per worker (0 keeps
// the current value). Defaults: 2 workers, as many threads as cores.
struct SchedulerConfig {
  int workers = 0;
  int threads = 0;
};
void configure(const SchedulerConfig& config);
SchedulerConfig scheduler_config();

// Queues a request; `job` must not throw.
void schedule(std::function<void()> job);

// Runs `work` as a request on the pool and waits for it (benchmarks).
template <typename T>
T run_request(const std::function<T()>& work) {
  std::packaged_task<T()> task(work);
  auto done = task.get_future();
  schedule([&task] { task(); });
  return done.get();
}

// Runs `work` on the long-lived thread of device slot `slot` (>= 1).
std::future<void> submit_device(size_t slot, std::function<void()> work);
constexpr size_t kMaxDeviceSlots = 64;

}  // namespace tx
