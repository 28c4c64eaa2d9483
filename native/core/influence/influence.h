// Training-data influence (captum.influence): which training examples a
// prediction owes to. Every method here reduces a set of examples to a
// per-example representation, a "sketch" (loss gradients at checkpoints,
// their projections, layer activations), and scores two sets by a kernel on
// their sketches. Sketches of the test set are made once and kept by the
// caller; the training set streams through in chunks, each scored against
// them and folded into the running top k.
#pragma once
#include <string>
#include <vector>

#include "engine/context.h"

namespace tx {

// A loss by name (crossEntropy, mse, nll, bce) and its reduction. Per example
// it is the loss of that example's output, its elements summed (reductions
// 'sum' and 'none') or averaged ('mean'): for cross-entropy and NLL the three
// agree, and for MSE and BCE on C outputs 'mean' is 1/C of the others, as
// the reference's per-example gradients are.
struct Loss {
  enum class Kind { CrossEntropy, Mse, Nll, Bce };
  Kind kind = Kind::CrossEntropy;
  bool mean = false;
  std::string name = "crossEntropy";

  // A name, or { name, reduction }; `key` names the option in messages.
  static Loss parse(const Value& v, const std::string& key);
  // Labels fit for this loss and `outputs` (class ids for cross-entropy and
  // NLL, values shaped like the outputs otherwise); `what` names them.
  void check(const torch::Tensor& outputs, const torch::Tensor& labels, const std::string& what) const;
  // [n] per-example losses.
  torch::Tensor per_example(const torch::Tensor& outputs, const torch::Tensor& labels) const;
};

// One layer's per-example loss gradients, as one of:
//  - factored: a linear layer on [n, features] inputs, gradient_n = d_n (x) a_n
//    (the outer product of the output gradient and the input, with a column of
//    ones in `a` for the bias), never formed: two sets' gradients dot as
//    (d d'^T) * (a a'^T);
//  - explicit: the flattened gradients, one row per example, in the order of
//    the layer's parameters (weight row-major, then bias).
struct LayerGrads {
  torch::Tensor d, a;  // factored
  bool bias = false;   // factored: a's last column is the bias's ones
  int64_t inputs = 0;  // factored: the weight's input features
  torch::Tensor g;     // explicit
  bool factored() const { return d.defined(); }
  int64_t rows() const { return factored() ? d.size(0) : g.size(0); }
  // The explicit form (the factored one materialised).
  torch::Tensor flat() const;
  // Sum over the examples, kept explicit: [1, P].
  LayerGrads summed() const;
};
// A set's gradients at one checkpoint: one entry per layer.
using Sketch = std::vector<LayerGrads>;

// Sum over layers of the dot products of two sets' per-example gradients: [nx, ny].
torch::Tensor sketch_dot(const Sketch& x, const Sketch& y);
// Squared norms of each example's gradient: [n].
torch::Tensor sketch_norms(const Sketch& x);
// Explicit rows over all layers: [n, P], in the layers' order.
torch::Tensor sketch_flat(const Sketch& x);

// Sketches cross the binding as a list of tensors: per checkpoint a header
// (int64: layer count, then per layer 1 = factored, 0 = explicit) and the
// layers' tensors.
std::vector<torch::Tensor> encode_sketches(const std::vector<Sketch>& sketches);
std::vector<Sketch> decode_sketches(const Value& v, const std::string& key);

// How the per-example gradients of a model are taken (TracInCP: the named
// layers' parameters, every parameter by default; TracInCPFast: one linear
// layer's weight).
struct GradientSpec {
  std::vector<std::string> layers;  // empty: every parameter
  bool weight_only = false;         // the fast form: weight, no bias, factored
  Loss loss;
};
GradientSpec gradient_spec(const Options& o, const Model& model, bool fast);

// Per-example loss gradients of `inputs` (with their `labels`) under `model`,
// in chunks of ctx.chunk_rows rows: closed forms from the layer's input and
// output gradient for linear and convolution layers, one backward pass per
// example for the parameters of other layers.
Sketch example_gradients(const Context& ctx, const Model& model, const GradientSpec& spec, const torch::Tensor& labels);

// The parameters whose gradients example_gradients() takes, in its order
// (made to require gradients).
std::vector<torch::Tensor> measured_parameters(const Model& model, const GradientSpec& spec);

// ctx with `model` as the model its passes run (a checkpoint of ctx's).
Context with_model(const Context& ctx, const std::shared_ptr<const Model>& model);
// ctx restricted to rows [b, e).
Context rows_of(const Context& ctx, int64_t b, int64_t e);
// `fn` on consecutive slices of internalBatchSize rows (all rows at once
// without it), so that one slice's gradients are all that is held at a time;
// the results concatenated along `dim`.
torch::Tensor by_slices(const Context& ctx, int64_t dim, const torch::Tensor& labels,
                        const std::function<torch::Tensor(const Context&, const torch::Tensor& labels)>& fn);

// The checkpoints option: models whose parameters match `model`'s, and
// their learning rates (1 unless given).
struct Checkpoint {
  std::shared_ptr<const Model> model;
  double learning_rate = 1;
};
std::vector<Checkpoint> checkpoints_option(const Options& o, const Model& model);

// The labels option for `n` examples.
torch::Tensor labels_option(const Options& o, const std::string& key, int64_t n, c10::Device device);

// The k highest (proponents) or lowest (opponents) scores per row of
// `scores` [rows, m] (columns are examples offset + j), merged with the best
// so far (`indices`, `values`, [rows, <= k], or undefined): sorted best first.
void merge_top_k(const torch::Tensor& scores, int64_t offset, int64_t k, bool largest, torch::Tensor& indices,
                 torch::Tensor& values);

// Results of the k-best mode, or the scores themselves: what the scoring
// algorithms return for one chunk of the training set.
Result ranked(const torch::Tensor& scores, const Options& o);

}  // namespace tx
