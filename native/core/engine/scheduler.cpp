#include "engine/scheduler.h"

#include <pthread.h>
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>
#include <algorithm>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <mutex>

#include <condition_variable>
#include <deque>
#include <map>
#include <thread>
#include <vector>

#include "engine/errors.h"
#include "engine/memory.h"
#include "engine/model.h"
#include "engine/torch_headers.h"

namespace tx {

// ---- cancellation ---------------------------------------------------------

void CancelToken::cancel(const std::string& reason) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (flag_) return;
  reason_ = reason;
  flag_ = true;
}

void CancelToken::set_timeout(double ms) {
  timeout_ms_ = ms;
  has_deadline_ = true;
  deadline_ = std::chrono::steady_clock::now() + std::chrono::microseconds(static_cast<int64_t>(ms * 1000));
}

bool CancelToken::cancelled() const {
  if (flag_) return true;
  return has_deadline_ && std::chrono::steady_clock::now() >= deadline_;
}

void CancelToken::check() const {
  if (!cancelled()) return;
  std::string reason;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    reason = flag_ ? reason_ : concat("timed out after ", timeout_ms_, " ms (timeoutMs)");
  }
  fail_with(ErrorCode::Aborted, "aborted: ", reason);
}

namespace {
thread_local std::shared_ptr<CancelToken> current;
}

RequestScope::RequestScope(std::shared_ptr<CancelToken> token) : previous_(std::move(current)) { current = std::move(token); }
RequestScope::~RequestScope() { current = std::move(previous_); }
std::shared_ptr<CancelToken> current_request() { return current; }

void check_cancelled() {
  if (current) current->check();
}

// ---- threads --------------------------------------------------------------

namespace {

// Threads with a large stack: TorchScript's compiler recurses on the nesting
// depth of a model's code, and a default 8 MB stack overflows on hostile files.
void start_thread(std::function<void()> body) {
  auto* fn = new std::function<void()>(std::move(body));
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256u << 20);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_t id;
  int rc = pthread_create(&id, &attr, [](void* p) -> void* {
    std::unique_ptr<std::function<void()>> f(static_cast<std::function<void()>*>(p));
    (*f)();
    return nullptr;
  }, fn);
  pthread_attr_destroy(&attr);
  if (rc != 0) {
    delete fn;
    fail_with(ErrorCode::Internal, "could not start a compute thread (pthread_create: ", rc, ")");
  }
}

int hardware_threads() { return std::max(1u, std::thread::hardware_concurrency()); }

// This process's threads in state R (/proc/self/task/*/stat).
int own_runnable_threads() {
  int ours = 0;
  DIR* tasks = opendir("/proc/self/task");
  if (!tasks) return 0;
  while (dirent* e = readdir(tasks)) {
    if (e->d_name[0] == '.') continue;
    char path[64], buf[512];
    std::snprintf(path, sizeof path, "/proc/self/task/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    // "pid (comm) S ...": the state follows the last ')' (comm may hold one).
    const char* paren = std::strrchr(buf, ')');
    if (paren && paren[1] == ' ' && paren[2] == 'R') ++ours;
  }
  closedir(tasks);
  return ours;
}

// Threads of other processes that kept runnable: the machine's runnable
// count (the fourth field of /proc/loadavg) less this process's own, the
// least of the reads over the last 100 ms; -1 where it cannot be read.
// - Our own threads are counted before and after the machine's count, and
//   the larger taken: a worker's threads that fell asleep in between had
//   counted as another process's.
// - The least over 100 ms: kernel threads and such are runnable for
//   moments, a busy process throughout.
// Without both, the event loop handing in requests counted as another
// process's thread, and stacked requests ran on one thread of two idle
// cores. Not an average of the machine's recent busy time either: behind a
// process that had just run (a bench timing Captum in alternation) it gave
// one thread to idle cores. Read at most every 10 ms.
int other_runnable_threads() {
  using Clock = std::chrono::steady_clock;
  static std::mutex mutex;
  static std::deque<std::pair<Clock::time_point, int>> reads;
  std::lock_guard<std::mutex> lock(mutex);
  auto now = Clock::now();
  while (!reads.empty() && now - reads.front().first > std::chrono::milliseconds(100)) reads.pop_front();
  auto read_once = [] {
    int before = own_runnable_threads();
    std::FILE* f = std::fopen("/proc/loadavg", "r");
    if (!f) return -1;
    double a, b, c;
    int running = -1, total = 0;
    if (std::fscanf(f, "%lf %lf %lf %d/%d", &a, &b, &c, &running, &total) != 5) running = -1;
    std::fclose(f);
    if (running < 0) return -1;
    return std::max(0, running - std::max(before, own_runnable_threads()));
  };
  if (reads.empty() || now - reads.back().first >= std::chrono::milliseconds(10)) {
    int others = read_once();
    if (others < 0) return -1;
    if (others > 0 && reads.empty()) {
      // With nothing to go by, look again shortly: a process that has just
      // answered (a pipe's other end) is runnable for a moment after.
      std::this_thread::sleep_for(std::chrono::microseconds(300));
      others = std::min(others, std::max(0, read_once()));
    }
    reads.emplace_back(now, others);
  }
  int least = reads.front().second;
  for (const auto& r : reads) least = std::min(least, r.second);
  return least;
}

// A request's intra-op threads, unless the caller set them: the configured
// count, but no more than the cores that other processes leave idle. An
// OpenMP team waits at every barrier for its slowest thread, so a team larger
// than the idle cores stalls: on a machine where other processes ran, two
// threads made IG on six 8x8 digits take 0.5-1.3 s a call, one thread 4-33 ms.
int request_threads(int configured) {
  int others = other_runnable_threads();
  if (others < 0) return configured;
  return std::max(1, std::min(configured, hardware_threads() - others));
}

class Pool {
 public:
  static Pool& get() {
    static auto* pool = new Pool();  // never destroyed: threads outlive static destruction
    return *pool;
  }

  void configure(const SchedulerConfig& c) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (c.workers < 0 || c.workers > 256) fail("workers: expected an integer from 1 to 256, got ", c.workers);
    if (c.threads < 0 || c.threads > 1024) fail("threads: expected an integer from 1 to 1024, got ", c.threads);
    if (c.workers) config_.workers = c.workers;
    if (c.threads) config_.threads = c.threads, threads_set_ = true, ++threads_epoch_;
    grow();
    ready_.notify_all();
  }
  SchedulerConfig config() {
    std::lock_guard<std::mutex> lock(mutex_);
    return config_;
  }

  void schedule(std::function<void()> job) {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(std::move(job));
    try {
      grow();
    } catch (const std::exception&) {
      // With a worker running the job waits its turn; with none it is refused.
      if (started_ == 0) {
        queue_.pop_back();
        throw;
      }
    }
    ready_.notify_all();  // one woken worker may be beyond the configured count
  }

  // Called by a request between its chunks: when every worker is busy and
  // requests wait, start a short-lived extra worker for them, so that a
  // short request waits for one chunk rather than a whole long request. (Not
  // run inline: the waiting request would then hold up the caller's own
  // cancellation.) At most kMaxExtra extra workers at a time.
  void yield() {
    auto now = std::chrono::steady_clock::now();
    if (now - slice_start < std::chrono::milliseconds(20)) return;
    slice_start = now;
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty() || busy_ < config_.workers) return;
    if (idle_extra_ > 0) {
      ready_.notify_all();
    } else if (extra_ < kMaxExtra) {
      ++extra_, ++idle_extra_;
      try {
        start_thread([this] { extra(); });
      } catch (const std::exception&) {
        --extra_, --idle_extra_;  // no thread to spare: the request waits its turn
      }
    }
  }

 private:
  Pool() {
    tune_allocator();
    config_.workers = 2;
    config_.threads = hardware_threads();
  }

  // Starts workers up to the configured count (never more than needed).
  void grow() {
    while (started_ < config_.workers && started_ < static_cast<int>(queue_.size()) + busy_) {
      int index = started_;
      start_thread([this, index] { loop(index); });  // throws to the scheduling call when no thread can start
      ++started_;
    }
  }

  void loop(int index) {
    plain_execution();
    int epoch = -1, current = -1;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ready_.wait(lock, [&] { return !queue_.empty() && index < config_.workers; });
      auto job = std::move(queue_.front());
      queue_.pop_front();
      ++busy_;
      int threads = threads_set_ ? config_.threads : request_threads(config_.threads);
      bool retune = epoch != threads_epoch_ || threads != current;
      epoch = threads_epoch_;
      current = threads;
      lock.unlock();
      if (retune) at::set_num_threads(threads);
      slice_start = std::chrono::steady_clock::now();
      job();
      lock.lock();
      --busy_;
    }
  }

  // An extra worker: takes waiting requests only while every regular worker
  // is busy. Extra workers are kept once started (threads that end take
  // LibTorch's and OpenMP's thread state down with them at awkward times).
  void extra() {
    plain_execution();
    at::set_num_threads(config().threads);
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ready_.wait(lock, [this] { return !queue_.empty() && busy_ >= config_.workers; });
      auto job = std::move(queue_.front());
      queue_.pop_front();
      --idle_extra_, ++busy_;
      lock.unlock();
      slice_start = std::chrono::steady_clock::now();
      job();
      lock.lock();
      ++idle_extra_, --busy_;
    }
  }

  static constexpr int kMaxExtra = 4;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> queue_;
  SchedulerConfig config_;
  int extra_ = 0, idle_extra_ = 0;
  int started_ = 0, busy_ = 0, threads_epoch_ = 0;
  bool threads_set_ = false;  // the caller chose the threads: used as they are
  static thread_local std::chrono::steady_clock::time_point slice_start;  // when this thread's request last got the CPU
};

thread_local std::chrono::steady_clock::time_point Pool::slice_start;

class DeviceWorker {
 public:
  DeviceWorker() {
    start_thread([this] {
      plain_execution();
      // One intra-op thread: the request's own worker already uses the
      // configured threads, and an OpenMP team per device thread is what
      // ran out first under an address-space limit (libgomp then aborts the
      // process instead of failing a call).
      at::set_num_threads(1);
      std::unique_lock<std::mutex> lock(mutex_);
      for (;;) {
        ready_.wait(lock, [this] { return !queue_.empty(); });
        auto task = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        task();
        lock.lock();
      }
    });
  }
  std::future<void> submit(std::function<void()> work) {
    std::packaged_task<void()> task(std::move(work));
    auto done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
    return done;
  }

 private:
  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> queue_;
};

}  // namespace

void yield_point() {
  check_cancelled();
  Pool::get().yield();
}

void configure(const SchedulerConfig& config) { Pool::get().configure(config); }
SchedulerConfig scheduler_config() { return Pool::get().config(); }
void schedule(std::function<void()> job) { Pool::get().schedule(std::move(job)); }

std::future<void> submit_device(size_t slot, std::function<void()> work) {
  if (slot == 0 || slot >= kMaxDeviceSlots) fail_with(ErrorCode::Internal, "device slot ", slot, " out of range");
  static std::mutex mutex;
  static auto* workers = new std::map<size_t, DeviceWorker*>();  // never destroyed, as the pool
  DeviceWorker* w;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto& slot_worker = (*workers)[slot];
    if (!slot_worker) slot_worker = new DeviceWorker();
    w = slot_worker;
  }
  // The chunk works for the same request: carry its token over.
  auto token = current_request();
  return w->submit([token, work = std::move(work)] {
    RequestScope scope(token);
    work();
  });
}

const char* error_code_name(ErrorCode code) {
  switch (code) {
    case ErrorCode::BadOption: return "ERR_BAD_OPTION";
    case ErrorCode::BadShape: return "ERR_BAD_SHAPE";
    case ErrorCode::BadTarget: return "ERR_BAD_TARGET";
    case ErrorCode::Aborted: return "ERR_ABORTED";
    case ErrorCode::MemoryBudget: return "ERR_MEMORY_BUDGET";
    case ErrorCode::ModelLoad: return "ERR_MODEL_LOAD";
    case ErrorCode::ModelNewerPyTorch: return "ERR_MODEL_NEWER_PYTORCH";
    case ErrorCode::ModelForward: return "ERR_MODEL_FORWARD";
    case ErrorCode::Disposed: return "ERR_DISPOSED";
    default: return "ERR_NATIVE";
  }
}

ErrorCode code_of(const std::exception& e) {
  if (auto* a = dynamic_cast<const ArgumentError*>(&e)) return a->code();
  if (auto* c = dynamic_cast<const CodedError*>(&e)) return c->code();
  if (dynamic_cast<const std::bad_alloc*>(&e)) return ErrorCode::MemoryBudget;
  return ErrorCode::Internal;
}

}  // namespace tx
