// A loaded TorchScript module and the one way every algorithm calls it.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "lru_cache.h"
#include "value.h"

namespace tx {

c10::Device parse_device(const std::string& spec);

// Makes the calling thread run TorchScript graphs unoptimised (see model.cpp).
void plain_execution();

class Model : public std::enable_shared_from_this<Model> {
 public:
  static std::shared_ptr<Model> load(const std::string& path, const std::string& device);

  // Forward pass; `extra` are additional forward arguments already converted
  // by convert_extra(). Errors raised inside the model are reported as such.
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs,
                        const std::vector<c10::IValue>& extra) const;

  // Forward pass of a model returning a Tensor or a tuple of Tensors (the
  // layer-tapped copies), as a list.
  std::vector<torch::Tensor> forward_values(const std::vector<torch::Tensor>& inputs,
                                            const std::vector<c10::IValue>& extra) const;

  // JavaScript values -> IValues of the types forward() declares after the inputs.
  std::vector<c10::IValue> convert_extra(const List& extra, size_t num_inputs) const;

  std::vector<std::string> layers() const;

  // A deep copy whose `layers` (dotted names) have their parameters redrawn
  // from N(0, std of each parameter): the model-parameter randomisation
  // sanity check. Unknown layers are an error.
  std::shared_ptr<Model> randomized(const std::vector<std::string>& layers, uint64_t seed) const;
  std::string signature() const;
  c10::Device device() const { return device_; }
  const std::string& path() const { return path_; }

  // The model on `device` for worker `slot`: slot 0 on the model's own device
  // is the model itself, anything else a cached clone, so that worker threads
  // never share a module.
  std::shared_ptr<const Model> replica(c10::Device device, size_t slot) const;

  // A copy of the model (sharing its tensors) whose forward graph `rewrite`
  // has changed before it ever ran: made once per `key` and kept in a cache
  // bounded by bytes. An empty key makes a fresh copy that is not kept.
  std::shared_ptr<const Model> derived(const std::string& key,
                                       const std::function<void(torch::jit::Module&)>& rewrite) const;

 private:
  Model(torch::jit::Module module, c10::Device device, std::string path);
  static void check_storages(const torch::jit::Module& module, const std::string& path);
  const std::vector<c10::Argument>& arguments() const;
  c10::IValue call(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const;

  mutable torch::jit::Module module_;
  c10::Device device_;
  std::string path_;
  mutable std::mutex replicas_mutex_;
  mutable std::map<std::string, std::shared_ptr<Model>> replicas_;
  // Rewritten copies (rule sets, layer taps), least recently used evicted first.
  mutable LruCache<std::string, std::shared_ptr<Model>> derived_{32u << 20};
};

}  // namespace tx
