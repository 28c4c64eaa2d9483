// A thread-safe least-recently-used cache bounded by the bytes its entries
// hold, as the caller counts them: a bound on entry count alone lets a few
// large entries (long quadrature rules, model copies) take unbounded memory.
#pragma once
#include <cstddef>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <utility>

namespace tx {

// V is copied out by get(), so for large values use a shared_ptr<const T>:
// the lock is then held only for a pointer copy. K needs operator<.
template <class K, class V>
class LruCache {
 public:
  explicit LruCache(size_t max_bytes) : max_bytes_(max_bytes) {}

  std::optional<V> get(const K& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = index_.find(key);
    if (it == index_.end()) return std::nullopt;
    order_.splice(order_.begin(), order_, it->second);  // now the most recently used
    return it->second->value;
  }

  // Stores `value`, evicting the least recently used entries until the total
  // fits. An entry larger than the whole bound is not kept (it would evict
  // everything and then itself).
  void put(const K& key, V value, size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    erase(key);
    if (bytes > max_bytes_) return;
    while (bytes_ + bytes > max_bytes_) erase(order_.back().key);
    order_.push_front(Entry{key, std::move(value), bytes});
    index_.emplace(key, order_.begin());
    bytes_ += bytes;
  }

  size_t bytes() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return bytes_;
  }
  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return index_.size();
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    index_.clear();
    order_.clear();
    bytes_ = 0;
  }

 private:
  struct Entry {
    K key;
    V value;
    size_t bytes;
  };

  void erase(const K& key) {  // caller holds the lock
    auto it = index_.find(key);
    if (it == index_.end()) return;
    auto pos = it->second;
    bytes_ -= pos->bytes;
    index_.erase(it);
    order_.erase(pos);  // last: `key` may refer into this entry
  }

  mutable std::mutex mutex_;
  const size_t max_bytes_;
  size_t bytes_ = 0;
  std::list<Entry> order_;  // most recently used first
  std::map<K, typename std::list<Entry>::iterator> index_;
};

}  // namespace tx
