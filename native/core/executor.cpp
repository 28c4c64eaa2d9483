#include "executor.h"

#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

namespace tx {

namespace {

class Worker {
 public:
  Worker() {
    std::lock_guard<std::mutex> lock(mutex_);
    thread_ = std::thread([this] { loop(); });
    id_ = thread_.get_id();
    thread_.detach();
  }

  bool is_current() const { return std::this_thread::get_id() == id_; }

  std::future<void> submit(std::function<void()> work) {
    std::packaged_task<void()> task(std::move(work));
    std::future<void> done = task.get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
    return done;
  }

 private:
  void loop() {
    { std::lock_guard<std::mutex> lock(mutex_); }  // the constructor has set id_
    for (;;) {
      std::packaged_task<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::packaged_task<void()>> queue_;
  std::thread::id id_;
  std::thread thread_;
};

Worker& worker(size_t slot) {
  static std::mutex mutex;
  // Workers live for the life of the process (never destroyed: no join at exit).
  static auto* workers = new std::map<size_t, Worker*>();
  std::lock_guard<std::mutex> lock(mutex);
  auto& w = (*workers)[slot];
  if (!w) w = new Worker();
  return *w;
}

}  // namespace

std::future<void> submit(size_t slot, std::function<void()> work) { return worker(slot).submit(std::move(work)); }

void run_on(size_t slot, const std::function<void()>& work) {
  Worker& w = worker(slot);
  if (w.is_current()) {
    work();
    return;
  }
  w.submit(work).get();
}

}  // namespace tx
