// Rewriting of TorchScript forward graphs, shared by the rule-based methods
// (DeepLift, guided backprop, LRP) and the layer taps: the graph of a cloned
// module is inlined into aten ops, each op knows the submodule call it came
// from, and rules are inserted as custom autograd ops around the ops they touch.
#pragma once
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "engine/torch_headers.h"

namespace tx {

class Model;

// What a rule needs to know about an op: the family that decides how
// relevance or multipliers cross it.
enum class OpFamily {
  Structural,  // moves or copies values (view, cat, slicing, dropout, ...): plain gradient
  Linear,      // weighted sums (linear, conv, batch norm, average pooling, add, ...): LRP rules
  MaxPool,     // max pooling
  Softmax,
  Activation,  // elementwise nonlinearities
  Other,       // no rule known
};

// Where layer attribution reads or writes a submodule's value (its output,
// or its input with `input`), by surgery on the forward graph.
enum class TapMode {
  None,
  Return,      // forward returns the layers' values (a Tensor, or a tuple for several)
  Append,      // forward returns (output, layer values...)
  Substitute,  // the layers' values become forward's first arguments, after self
};
struct Taps {
  std::vector<std::string> layers;
  bool input = false;
  // Both values of each layer, input then output (Return or Append only):
  // what per-example parameter gradients of a layer are made of.
  bool both = false;
  TapMode mode = TapMode::None;
};

// One op of the inlined graph and where it comes from.
struct OpSite {
  torch::jit::Node* node = nullptr;
  std::string op;           // "conv2d" for aten ops, qualified otherwise
  std::string module;       // dotted name of the innermost submodule call ("" at top level)
  std::string module_type;  // class name of that submodule ("Conv2d")
  OpFamily family = OpFamily::Other;
  // "aten::exp in 'block.act' (Exp), model code: torch.exp(x)"
  std::string where() const;
};

// The inlined forward graph of a module clone, with the values that depend
// (differentiably) on the attributed inputs.
class GraphRewrite {
 public:
  // Inlines the forward graph of `module` (a copy that nothing has run yet);
  // its first `num_inputs` arguments are the attributed inputs. With
  // `fold_batch_norm`, batch norms right after a convolution or linear layer
  // are folded into that layer's weights first.
  // `taps` first reroutes the graph's inputs or outputs through layers; a
  // Substitute tap makes the layers' values the attributed inputs.
  GraphRewrite(torch::jit::Module& module, size_t num_inputs, bool fold_batch_norm = false, const Taps& taps = {});

  torch::jit::Graph& graph() { return *graph_; }
  bool depends(const torch::jit::Value* v) const { return dependent_.count(v) > 0; }
  // Ops with an input-dependent tensor input and an output that the graph's
  // result differentiably depends on, in execution order (nested blocks included).
  std::vector<OpSite> path() const;
  // Layer norm and scaled dot-product attention become the ops they are made
  // of (means, products, rsqrt, matmul, softmax), so that the rules meet
  // only ops they have a form for. The ops made keep the replaced op's module.
  void decompose();
  // Layer norm's u * rsqrt(var + eps), made by decompose().
  bool normalising(const torch::jit::Node* n) const { return normalising_.count(n) > 0; }
  // softmax(x) = e / sum(e), e = exp(x - c) with c the largest value of the
  // input and reference rows (shared, so that it cancels exactly): for rules
  // on the parts, which keep summation to delta where an elementwise rule on
  // the whole cannot (an unchanged score whose weight changed).
  void decompose_softmax(torch::jit::Node* n);
  // Recomputes which values depend on the inputs (after inputs were rerouted, e.g. through a detach).
  void reanalyse();
  OpSite site(torch::jit::Node* n) const;
  // Input-dependent tensor inputs of `n`, as input indices.
  std::vector<size_t> dependent_inputs(torch::jit::Node* n) const;

  // Inserts `op(inputs...)` (op qualified, e.g. "torchexplain::act") after
  // `after` and returns its first output; its `outputs` outputs are tensors
  // typed like `like`.
  torch::jit::Value* insert_after(torch::jit::Node* after, const char* op,
                                  const std::vector<torch::jit::Value*>& inputs, torch::jit::Value* like,
                                  size_t outputs = 1);
  torch::jit::Value* insert_before(torch::jit::Node* before, const char* op,
                                   const std::vector<torch::jit::Value*>& inputs, torch::jit::Value* like);
  // Replaces a max_pool{1,2,3}d node by its _with_indices form (outputs:
  // values, indices) and returns it; `n` is left without readers.
  torch::jit::Node* with_indices(torch::jit::Node* n);
  // A copy of `n` placed after `after` (the same inputs until replaced).
  torch::jit::Node* copy_after(torch::jit::Node* n, torch::jit::Node* after);
  torch::jit::Value* constant(const c10::IValue& v, torch::jit::Node* before);
  // A tensor stored on the module (so that it follows the module to other
  // devices), read in the graph before `before`.
  torch::jit::Value* buffer(const std::string& stem, const torch::Tensor& t, torch::jit::Node* before);
  // The value behind a graph value when it is known without running the
  // graph: a constant, or an attribute of the module or its submodules.
  c10::optional<c10::IValue> resolve(torch::jit::Value* v) const;
  // Every use of `v` after `node` now reads `replacement`.
  void reroute_after(torch::jit::Value* v, torch::jit::Node* node, torch::jit::Value* replacement);

  // Names of the module's submodules and of their classes, for messages.
  const std::vector<std::string>& layer_names() const { return layer_names_; }
  // How many batch norms were folded into their layers.
  int folded() const { return folded_; }

 private:
  void tap(const Taps& taps);
  void inline_all();
  void inline_call(torch::jit::Node* n, torch::jit::GraphFunction& fn, torch::jit::Graph& body);
  void functionalise(torch::jit::Block* b);
  void fold_batch_norm(torch::jit::Block* b);
  torch::jit::Node* insert(const char* op, const std::vector<torch::jit::Value*>& inputs, torch::jit::Value* like,
                           torch::jit::Node* anchor, size_t outputs = 1);
  void analyse(torch::jit::Block* b);
  void mark_live(torch::jit::Block* b, std::unordered_set<const torch::jit::Value*>& live) const;
  void collect(torch::jit::Block* b, const std::unordered_set<const torch::jit::Value*>& live,
               std::vector<OpSite>& out) const;
  void decompose_layer_norm(torch::jit::Node* n);
  void decompose_attention(torch::jit::Node* n);

  torch::jit::Module& module_;
  std::shared_ptr<torch::jit::Graph> graph_;
  std::set<std::pair<const torch::jit::Node*, size_t>> tap_reads_;  // (reader, input) of the tapped values
  int buffers_ = 0;
  int folded_ = 0;
  std::unordered_set<const torch::jit::Value*> dependent_;
  std::vector<const torch::jit::Value*> roots_;  // the attributed inputs
  std::unordered_set<const torch::jit::Node*> normalising_;
  std::vector<std::string> layer_names_;
};

OpFamily op_family(const std::string& op);

// The model that passes without rules or taps run: a copy whose batch
// norms (inference mode) are folded into the convolutions or linear layers
// before them, which saves their passes over the activations (equal up to
// float32 rounding), or the model itself when there is nothing to fold or
// its graph cannot be rewritten.
std::shared_ptr<const Model> with_folded_batch_norms(const std::shared_ptr<const Model>& model);

}  // namespace tx
