// The rule-based backprop machinery (rules.cpp), shared with the layer and
// neuron variants: model copies with rules (and layer taps), and the layout
// of (input, reference) pairs that DeepLift's rules read.
#pragma once
#include <functional>

#include "engine/batching.h"
#include "graph/graph_rewrite.h"

namespace tx {

// A copy of ctx's model rewritten by `rewrite` (after `taps`), made once per
// key; an empty key makes a fresh copy.
Context with_rules(const Context& ctx, const std::string& key, const std::function<void(GraphRewrite&)>& rewrite,
                   bool fold_batch_norm = false, const Taps& taps = {});

// DeepLift's rescale rules; `untouched`: a submodule whose own ops keep plain
// gradients (the layer a layer or neuron variant attributes to, as the reference).
Context deeplift_context(const Context& ctx, bool captum_compatible, const Taps& taps = {},
                         const std::string& untouched = "");
// Guided backprop (ops::kGuided) or deconvolution (ops::kDeconv) ReLUs.
Context guided_context(const Context& ctx, int64_t mode, const Taps& taps = {});
// LRP rules from the options (rules, preset, epsilon, gamma, low, high, foldBatchNorm);
// `untouched` as for deeplift_context (the layer's own ops need no rule).
Context lrp_context(const Context& ctx, const Options& o, const Taps& taps = {}, const std::string& untouched = "");

struct DeepLiftOptions {
  bool multiply, want_delta, captum_compatible;
  explicit DeepLiftOptions(const Options& o);
};

// Rows interleaving each input with its reference: pair p is row p of `ends`
// and `starts` and explains example p / per_example. Chunks never split a pair.
struct PairLayout {
  Rows rows;
  ChunkBuilder build;
};
PairLayout pair_layout(int64_t batch, const std::vector<torch::Tensor>& ends, const std::vector<torch::Tensor>& starts,
                       int64_t per_example);
torch::Tensor input_rows(const torch::Tensor& pair_rows);
torch::Tensor reference_rows(const torch::Tensor& pair_rows);

// Per-pair rows averaged over each example's references.
torch::Tensor mean_per_example(const torch::Tensor& rows, int64_t batch, int64_t per_example);

// The (input, reference) pairs of a DeepLift call: inputs against
// `baselines`, or (`distribution`) every input against every reference sample.
struct DeepLiftPairs {
  std::vector<torch::Tensor> ends, starts;
  int64_t per_example = 1;
};
DeepLiftPairs deeplift_pairs(const Context& ctx, const Options& o, const std::string& name, bool distribution);

// DeepLift attributions at the inputs of ctx (rctx: its rule copy).
Result deep_lift_pairs(const Context& ctx, const Context& rctx, const DeepLiftPairs& pairs, const DeepLiftOptions& opt);

}  // namespace tx
