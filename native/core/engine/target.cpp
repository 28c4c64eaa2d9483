#include "engine/target.h"

#include "engine/errors.h"

namespace tx {

namespace {

std::vector<int64_t> index_tuple(const Value& v, const std::string& where) {
  if (v.is_integer()) return {static_cast<int64_t>(v.number)};
  if (v.is_list()) {
    std::vector<int64_t> idx;
    for (size_t i = 0; i < v.list->size(); ++i) {
      const Value& e = (*v.list)[i];
      if (!e.is_integer()) fail(where, "[", i, "]: expected an integer index, got ", e.kind_name());
      idx.push_back(static_cast<int64_t>(e.number));
    }
    if (idx.empty()) fail(where, ": expected a non-empty index tuple");
    return idx;
  }
  fail(where, ": expected an integer or an array of integers, got ", v.kind_name());
}

}  // namespace

Target Target::parse(const Value& v, int64_t batch) {
  Target t;
  if (v.is_none()) return t;
  if (v.is_integer()) {
    t.kind_ = Kind::Shared;
    t.shared_ = {static_cast<int64_t>(v.number)};
    return t;
  }
  if (v.is_tensor()) {
    torch::Tensor idx = v.tensor.to(torch::kCPU);
    if (at::isFloatingType(idx.scalar_type()) || idx.scalar_type() == at::kBool)
      fail("target: expected an integer tensor, got ", dtype_str(idx.scalar_type()));
    idx = idx.to(torch::kLong);
    if (idx.numel() == 1) {
      t.kind_ = Kind::Shared;
      t.shared_ = {idx.reshape({}).item<int64_t>()};
      return t;
    }
    if (idx.dim() == 1) idx = idx.unsqueeze(1);
    if (idx.dim() != 2 || (idx.size(0) != batch && idx.size(0) != 1))
      fail("target: a tensor target must have one entry per example (", batch, "), got shape ", shape_str(idx.sizes()));
    t.kind_ = Kind::PerExample;
    t.per_example_ = idx.expand({batch, idx.size(1)}).contiguous();
    return t;
  }
  if (v.is_list()) {
    const List& items = *v.list;
    if (items.size() != static_cast<size_t>(batch) && items.size() != 1)
      fail("target: expected one target per example (", batch, ") or a single one, got ", items.size());
    std::vector<std::vector<int64_t>> rows;
    for (size_t i = 0; i < items.size(); ++i) rows.push_back(index_tuple(items[i], "target[" + std::to_string(i) + "]"));
    for (const auto& r : rows)
      if (r.size() != rows[0].size()) fail("target: every example's index tuple must have the same length");
    auto k = static_cast<int64_t>(rows[0].size());
    torch::Tensor idx = torch::empty({static_cast<int64_t>(rows.size()), k}, torch::kLong);
    auto acc = idx.accessor<int64_t, 2>();
    for (size_t i = 0; i < rows.size(); ++i)
      for (int64_t j = 0; j < k; ++j) acc[i][j] = rows[i][j];
    t.kind_ = Kind::PerExample;
    t.per_example_ = idx.expand({batch, k}).contiguous();
    return t;
  }
  if (v.is_number()) fail("target: expected an integer (an output index), got ", v.number);
  if (v.kind == Value::Kind::String)
    fail("target: expected a number, an array (one per example, or index tuples), a tensor, or \"predicted\"; got the string '", v.string, "'");
  fail("target: expected a number, an array (one per example, or index tuples), a tensor, or \"predicted\"; got ", v.kind_name());
}

Target Target::reindexed(const torch::Tensor& examples) const {
  Target t = *this;
  if (kind_ == Kind::PerExample) t.per_example_ = per_example_.index_select(0, examples.to(torch::kCPU));
  return t;
}

torch::Tensor Target::select(const torch::Tensor& output, const torch::Tensor& examples) const {
  if (kind_ == Kind::None) return output;
  auto k = static_cast<int64_t>(kind_ == Kind::Shared ? shared_.size() : per_example_.size(1));
  if (output.dim() < 1 + k)
    fail("target: selects ", k, " index(es) after the batch dimension, but the model output has shape ",
         shape_str(output.sizes()));
  auto out_of_range = [&](int64_t i, int64_t j) {
    fail("target: index ", i, " is out of range for output dimension ", 1 + j, " of size ", output.size(1 + j),
         " (each example's output has shape ", shape_str(output.sizes().slice(1)), ")");
  };
  if (kind_ == Kind::Shared) {  // plain integer indexing: the common, cheap case
    torch::Tensor sel = output;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i = shared_[j], size = output.size(1 + j);
      if (i >= size || i < -size) out_of_range(i, j);
      sel = sel.select(1, i < 0 ? i + size : i);
    }
    return sel;
  }
  torch::Tensor idx = examples.defined() ? per_example_.index_select(0, examples.to(torch::kCPU)) : per_example_;
  if (idx.size(0) != output.size(0))
    fail("target: ", idx.size(0), " targets for ", output.size(0), " output rows");
  // Validate ranges and wrap negative indices as Python indexing does.
  idx = idx.clone();
  for (int64_t j = 0; j < k; ++j) {
    int64_t size = output.size(1 + j);
    auto col = idx.select(1, j);
    int64_t lo = col.min().item<int64_t>(), hi = col.max().item<int64_t>();
    if (hi >= size) out_of_range(hi, j);
    if (lo < -size) out_of_range(lo, j);
    col.copy_(torch::where(col < 0, col + size, col));
  }
  // Flatten the k indexed dimensions into one and gather along it.
  std::vector<int64_t> flat_shape = {output.size(0), -1};
  for (int64_t d = 1 + k; d < output.dim(); ++d) flat_shape.push_back(output.size(d));
  torch::Tensor flat = output.reshape(flat_shape);
  torch::Tensor linear = torch::zeros({idx.size(0)}, torch::kLong);
  for (int64_t j = 0; j < k; ++j) linear = linear * output.size(1 + j) + idx.select(1, j);
  linear = linear.to(output.device());
  std::vector<int64_t> gshape(flat.dim(), 1);
  gshape[0] = flat.size(0);
  torch::Tensor gidx = linear.view(gshape);
  std::vector<int64_t> eshape(flat.sizes().begin(), flat.sizes().end());
  eshape[1] = 1;
  return flat.gather(1, gidx.expand(eshape)).squeeze(1);
}

torch::Tensor Target::select_scalars(const torch::Tensor& output, const torch::Tensor& examples) const {
  torch::Tensor sel = select(output, examples);
  if (sel.dim() > 1 || (sel.dim() == 1 && output.dim() == 0))
    fail("target: gradient methods need one scalar per example, but the target selects shape ",
         shape_str(sel.sizes()), " from the model output of shape ", shape_str(output.sizes()),
         (is_none() ? "; give a target" : "; give more indices in the target"));
  return sel;
}

}  // namespace tx
