// Custom autograd ops that graph rewriting inserts into TorchScript graphs.
// Each returns one of its inputs unchanged in the forward pass; its backward
// implements a propagation rule (DeepLift, guided backprop, LRP).
//
// Rule-based methods run the model on interleaved pairs: row 2i is an input,
// row 2i+1 its reference (DeepLift). Ops that need reference values read them
// from the row beside.
#pragma once
#include <cstdint>

namespace tx::ops {

// Modes of torchexplain::act(x, y, mode): y = f(x) for an activation f.
enum ActMode : int64_t {
  kGuided = 1,   // guided backprop: negative gradients stopped before ReLU's own gradient
  kDeconv = 2,   // deconvolution: negative gradients stopped, ReLU's gradient skipped
  kPass = 3,     // LRP through activations: relevance passes unchanged
};

// Modes of torchexplain::part(t, mode, value).
enum PartMode : int64_t {
  kGammaPart = 0,     // t + value * max(t, 0)
  kPositivePart = 1,  // max(t, 0)
  kNegativePart = 2,  // min(t, 0)
  kFill = 3,          // value everywhere (a bound of the z-box rule)
};

// Registers the torchexplain:: operators (idempotent). Called by the graph
// rewriter, which also keeps this translation unit linked into the addon.
void ensure_registered();

// Whether CPU float tensors take the fused kernels (default) or the tensor-op
// forms every other device takes; tests compare the two.
void use_fused_kernels(bool on);

}  // namespace tx::ops
