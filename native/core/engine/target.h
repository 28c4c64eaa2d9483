// Target selection: which output value per example is explained. Mirrors
// Captum's target argument (int, index tuple, one per example, tensor); a list
// of length 1 applies to every example.
#pragma once
#include "engine/value.h"

namespace tx {

class Target {
 public:
  Target() = default;
  static Target parse(const Value& v, int64_t batch);

  bool is_none() const { return kind_ == Kind::None; }
  bool per_example() const { return kind_ == Kind::PerExample; }

  // The target for a new batch whose row r explains old example examples[r].
  Target reindexed(const torch::Tensor& examples) const;

  // The selected value(s) for each row of `output`, where row r explains
  // original example `examples[r]` (undefined: row r is example r, or the
  // target is the same for every row).
  torch::Tensor select(const torch::Tensor& output, const torch::Tensor& examples) const;

  // One scalar per row, as gradients need.
  torch::Tensor select_scalars(const torch::Tensor& output, const torch::Tensor& examples) const;

 private:
  enum class Kind { None, Shared, PerExample };
  Kind kind_ = Kind::None;
  std::vector<int64_t> shared_;
  torch::Tensor per_example_;  // [batch, k] int64 on CPU
};

}  // namespace tx
