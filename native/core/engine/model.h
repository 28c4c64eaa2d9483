// A loaded TorchScript module and the one way every algorithm calls it.
#pragma once
#include <functional>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/lru_cache.h"
#include "engine/value.h"

namespace tx {

c10::Device parse_device(const std::string& spec);

// Makes the calling thread run TorchScript graphs unoptimised (see model.cpp).
void plain_execution();

// How a model's 4-d floating-point tensors (convolution weights, image
// inputs) are laid out in memory while it runs. Channels-last runs CPU
// convolutions through oneDNN without reordering (1.1-2.5x faster fwd/bwd on
// this project's bench nets); "auto" measures both on the first 4-d input
// and keeps the faster one, or contiguous where channels-last fails or differs.
enum class MemoryFormat { Auto, Contiguous, ChannelsLast };
MemoryFormat parse_memory_format(const std::string& spec);

class Model : public std::enable_shared_from_this<Model> {
 public:
  // `output` picks what is explained when forward() returns a tuple (an
  // index, or a field name of a named tuple) or a dict (a key): forward()
  // is rewritten to return that element.
  static std::shared_ptr<Model> load(const std::string& path, const std::string& device,
                                     MemoryFormat format = MemoryFormat::Auto, const c10::IValue& output = {});

  // Forward pass; `extra` are additional forward arguments already converted
  // by convert_extra(). Errors raised inside the model are reported as such.
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs,
                        const std::vector<c10::IValue>& extra) const;

  // Forward pass for callers that need no gradients (perturbations, scores):
  // on models that no rule or tap has rewritten, a frozen copy optimised for
  // inference (constants folded, convolutions prepacked and fused with their
  // activations), once its first outputs have matched forward()'s.
  torch::Tensor infer(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const;

  // Forward pass of a model returning a Tensor or a tuple of Tensors (the
  // layer-tapped copies), as a list.
  std::vector<torch::Tensor> forward_values(const std::vector<torch::Tensor>& inputs,
                                            const std::vector<c10::IValue>& extra) const;

  // JavaScript values -> IValues of the types forward() declares after the inputs.
  std::vector<c10::IValue> convert_extra(const List& extra, size_t num_inputs) const;

  // Dotted names of the submodules; with `with_parameters`, of those holding
  // parameters (their own or a descendant's).
  std::vector<std::string> layers(bool with_parameters = false) const;
  // The module itself, for reading its parameters and submodules (influence's
  // per-layer gradients); algorithms run it through forward() and friends.
  const torch::jit::Module& module() const { return module_; }
  // How many arguments forward() takes (self not counted).
  size_t arity() const { return arguments().size() - 1; }

  // A deep copy whose `layers` (dotted names) have their parameters redrawn
  // from N(0, std of each parameter): the model-parameter randomisation
  // sanity check. Unknown layers are an error.
  std::shared_ptr<Model> randomized(const std::vector<std::string>& layers, uint64_t seed) const;
  std::string signature() const;
  c10::Device device() const { return device_; }
  // The layout in use: Auto until the first 4-d input has been seen.
  MemoryFormat memory_format() const;
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

  // The copy that plain passes run, made once by `rewrite` (which returns
  // whether it changed anything): the model itself when it did not, or threw.
  std::shared_ptr<const Model> plain(const std::function<bool(torch::jit::Module&)>& rewrite) const;

 private:
  struct Layout;
  Model(torch::jit::Module module, c10::Device device, std::string path, std::shared_ptr<Layout> layout = nullptr);
  static void check_storages(const torch::jit::Module& module, const std::string& path);
  const std::vector<c10::Argument>& arguments() const;
  c10::IValue call(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const;
  c10::IValue invoke(std::vector<c10::IValue> stack) const;
  // Settles an Auto layout on the first call with a 4-d floating input.
  void choose_layout(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const;

  // Shared by a model, its replicas and derived copies (which share its weights).
  struct Layout {
    std::mutex mutex;
    std::atomic<MemoryFormat> format{MemoryFormat::Auto};
  };

  mutable torch::jit::Module module_;
  c10::Device device_;
  std::string path_;
  std::shared_ptr<Layout> layout_ = std::make_shared<Layout>();
  mutable std::mutex replicas_mutex_;
  mutable std::map<std::string, std::shared_ptr<Model>> replicas_;
  // Rewritten copies (rule sets, layer taps), least recently used evicted
  // first, within a bound that grows with the model: a copy holding folded
  // batch norms costs about the model's own weights, and one refused by a
  // fixed bound (resnet18's 45 MB) was rebuilt on every call.
  mutable LruCache<std::string, std::shared_ptr<Model>> derived_;
  mutable std::once_flag plain_once_;
  mutable std::shared_ptr<const Model> plain_;
  // The frozen inference copy (see infer()): allowed on loaded models, their
  // plain copies and replicas of those; made once, then checked once.
  bool inference_allowed_ = false;
  mutable std::once_flag inference_once_;
  mutable std::optional<torch::jit::Module> inference_;
  enum class Checked { Pending, Same, Different };
  mutable std::atomic<Checked> inference_checked_{Checked::Pending};
  mutable std::mutex inference_mutex_;
};

}  // namespace tx
