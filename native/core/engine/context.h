// What every algorithm needs about one attribute() call, parsed once from the
// request: inputs on the model's device, target, extra forward arguments,
// baselines, chunking and worker devices.
#pragma once
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/model.h"
#include "engine/target.h"

namespace tx {

// Progress of a long call, reported at most every `interval` seconds (and
// once at the end), so that reporting never slows the computation.
using ProgressFn = std::function<void(int64_t done, int64_t total)>;
class Progress {
 public:
  explicit Progress(ProgressFn fn, double interval = 0.1) : fn_(std::move(fn)), interval_(interval) {}
  void expect(int64_t more) { total_ += more; }
  void advance(int64_t n);

 private:
  ProgressFn fn_;
  double interval_;
  int64_t done_ = 0, total_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

struct Request {
  std::shared_ptr<const Model> model;
  std::vector<torch::Tensor> inputs;
  Options options;  // constructor options merged with attribute() options
  ProgressFn progress;  // optional
};

struct Result {
  std::vector<torch::Tensor> attributions;
  torch::Tensor delta;  // undefined unless returnConvergenceDelta
};

// Stands in for the model in passes without gradients (the perturbation
// family): LLMAttribution's evaluator, whose "inputs" are which prompt
// features are present and whose outputs are the target's log-probabilities.
using ForwardFn = std::function<torch::Tensor(const Model& model, const std::vector<torch::Tensor>& inputs)>;

struct Context {
  std::shared_ptr<const Model> model;   // what plain passes run (batch norms folded)
  std::shared_ptr<const Model> source;  // the loaded model, which rules and layer taps rewrite
  std::vector<torch::Tensor> inputs;
  int64_t batch = 0;
  Target target;
  List extra_values;                // additionalForwardArgs as given
  std::vector<c10::IValue> extra;   // ... converted for forward()
  int64_t chunk_rows = 0;           // rows per forward pass; 0 = as many as fit memory_budget
  double memory_budget = 0;         // bytes an expansion may use at once (memoryBudget)
  bool allow_non_finite = false;    // NaN/Inf inputs and baselines on purpose (allowNonFinite)
  bool expanded = false;            // the inputs are already an expansion (NoiseTunnel's noisy copies): plan their passes too
  std::vector<c10::Device> devices; // one worker per entry; [0] is the model's device
  const Options* options = nullptr;
  std::shared_ptr<Progress> progress;  // never null
  std::shared_ptr<const ForwardFn> forward;  // null: the model itself

  // Whether anything depends on which example a row explains (per-example
  // targets or forward arguments with a batch dimension).
  bool per_example() const;

  // The same call on other inputs, with target and per-example forward
  // arguments re-indexed so that new row r explains old example examples[r].
  Context with_rows(std::vector<torch::Tensor> new_inputs, const torch::Tensor& examples) const;
};

// Options that make_context() consumes; an algorithm that hands its options
// on to another (NoiseTunnel) leaves these out, since the Context carries them.
const std::vector<std::string>& context_keys();
// `fold_batch_norms`: plain passes run a copy with inference batch norms folded
// into the layers before them (off where the parameters themselves matter).
Context make_context(const Request& req, bool fold_batch_norms = true);

// The default memoryBudget: half the memory available now.
double default_memory_budget();

// "12.3 MiB": sizes in messages.
std::string megabytes(double bytes);

// Working memory an algorithm is about to take at once (beyond the model's
// passes, which the engine plans): an error when over memoryBudget.
void require_budget(const Context& ctx, double bytes, const std::string& what);

// Bytes of one example's rows over all inputs (an expansion's unit of size).
double example_bytes(const Context& ctx);

// NaN or infinite values are errors naming `name`, unless allowNonFinite.
void require_finite(const Context& ctx, const torch::Tensor& t, const std::string& name);

// Gradient methods take floating-point inputs only.
void require_float_inputs(const Context& ctx);
// Which inputs are not floating-point (token ids, say).
std::vector<size_t> integer_inputs(const Context& ctx);

// Baselines formatted against the inputs: one tensor per input, broadcast to
// the input's shape. Accepts a number, a tensor, or one of those per input.
std::vector<torch::Tensor> format_baselines(const Context& ctx, const Value& baselines);

// Baseline distributions (GradientShap, DeepLiftShap): one tensor per input
// whose rows are reference samples; numbers become a single-row tensor.
std::vector<torch::Tensor> baseline_distribution(const Context& ctx, const Value& baselines);

// A number or one number per input (NoiseTunnel's stdevs).
std::vector<double> per_input_numbers(const Value& v, size_t count, const std::string& name, double fallback);

// Rows of per-example forward arguments picked for new rows.
std::vector<c10::IValue> select_extra(const std::vector<c10::IValue>& extra, int64_t batch, const torch::Tensor& examples);

// Sum of each row over all inputs' attributions: [rows].
torch::Tensor sum_rows(const std::vector<torch::Tensor>& attributions);

// Broadcast a per-row vector so it multiplies a [rows, ...] tensor.
torch::Tensor per_row(const torch::Tensor& v, const torch::Tensor& like);

}  // namespace tx
