// The evaluation engine shared by all algorithms: a virtual batch of rows
// (path points, noisy samples, perturbations), each derived from one original
// example, evaluated in chunks of `internalBatchSize` rows and spread over the
// worker devices, without ever materialising the whole expansion.
#pragma once
#include <functional>

#include "engine/context.h"

namespace tx {

// A virtual batch of `count` rows over `batch` original examples, laid out
// step-major (row r explains example r % batch: path points, all examples at
// one step together) or example-major (row r explains example r / repeats:
// one example's samples together).
struct Rows {
  int64_t count = 0;
  int64_t batch = 0;
  bool example_major = false;
  int64_t granule = 1;  // chunks hold whole groups of this many rows (input/reference pairs)

  static Rows step_major(int64_t batch, int64_t steps) { return {batch * steps, batch, false}; }
  static Rows per_example(int64_t batch, int64_t repeats) { return {batch * repeats, batch, true}; }
  // The example behind each of rows [begin, end): int64 on CPU.
  torch::Tensor examples(int64_t begin, int64_t end) const;
  torch::Tensor examples() const { return examples(0, count); }
};

// The model inputs for rows [begin, end), plus an optional step that turns
// the rows' gradients into their contributions (weights, input - baseline...).
struct Chunk {
  std::vector<torch::Tensor> inputs;
  std::function<void(std::vector<torch::Tensor>& grads)> finish;
  // Set when `finish` already sums its rows per example, leaving tensors
  // shaped like ctx.inputs (cheaper than a scatter when rows are regular).
  bool reduced = false;
};
using ChunkBuilder = std::function<Chunk(int64_t begin, int64_t end)>;

// For every input, sum over the rows of each example of the (finished)
// gradient of the target output: result[i] has the shape of ctx.inputs[i].
std::vector<torch::Tensor> sum_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build);

// Gradient of the target output for every row, finished: result[i] has
// rows.count rows. `outputs`, when given, receives the target-selected
// output of every row from the same passes.
std::vector<torch::Tensor> row_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build,
                                         torch::Tensor* outputs = nullptr);

// Gradients of a sum of scalars with respect to `wrt` (zeros for a tensor
// the scalars do not use); `retain` keeps the graph for further gradients.
// Scalars with no gradient path at all are an error naming `what`.
std::vector<torch::Tensor> gradients(const torch::Tensor& scalars, const std::vector<torch::Tensor>& wrt,
                                     bool retain = false, const char* what = "the layer");

// One chunk's evaluation: the model replica, the rows' inputs as leaves that
// require gradients (floating-point ones, on the replica's device), their
// forward arguments, and the examples the rows explain.
struct ChunkCall {
  const Model& model;
  std::vector<torch::Tensor> leaves;
  std::vector<c10::IValue> extra;
  torch::Tensor examples;
};
using ChunkFn = std::function<std::vector<torch::Tensor>(const ChunkCall&)>;

// Runs `fn` on every chunk and concatenates its per-row results (on the
// main device, detached). Chunks' `finish` steps are not run.
std::vector<torch::Tensor> map_rows(const Context& ctx, const Rows& rows, const ChunkBuilder& build, const ChunkFn& fn);

// For models whose forward returns (output, layer values...): per row, the
// gradient of the target output with respect to each layer value, the layer
// values, and the target-selected outputs.
struct LayerRows {
  std::vector<torch::Tensor> grads, values;
  torch::Tensor outputs;
};
LayerRows layer_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build);

// Target-selected model output for every row (no gradients): [rows, ...];
// `transform`, when given, maps each chunk's raw output first (a softmax).
using OutputFn = std::function<torch::Tensor(const torch::Tensor&)>;
torch::Tensor forward_rows(const Context& ctx, const Rows& rows, const ChunkBuilder& build, const OutputFn& transform = nullptr);

// The identity expansion: one row per example, the inputs as they are.
inline Rows identity_rows(int64_t batch) { return Rows::step_major(batch, 1); }
ChunkBuilder slice_of(const std::vector<torch::Tensor>& tensors);

// Convergence delta: sum of attributions - (F(end) - F(start)), per row.
torch::Tensor convergence_delta(const Context& ctx, const std::vector<torch::Tensor>& attributions,
                                const std::vector<torch::Tensor>& start, const std::vector<torch::Tensor>& end);

}  // namespace tx
