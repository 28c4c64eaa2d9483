#include "batching.h"

#include <exception>
#include <future>

#include "executor.h"

#include "errors.h"

namespace tx {

torch::Tensor Rows::examples(int64_t begin, int64_t end) const {
  torch::Tensor r = torch::arange(begin, end, torch::kLong);
  return example_major ? r.div(count / batch, "floor") : r.remainder(batch);
}

namespace {

// Which example each row of [begin, end) explains, when anything needs to
// know (per-example targets or forward arguments); undefined otherwise.
torch::Tensor examples_if_needed(const Context& ctx, const Rows& rows, int64_t begin, int64_t end) {
  return ctx.per_example() ? rows.examples(begin, end) : torch::Tensor();
}

// Boundaries of the chunks: internalBatchSize rows each, or an even split
// over the workers when no size is given.
std::vector<std::pair<int64_t, int64_t>> chunks(const Context& ctx, const Rows& rows) {
  int64_t count = rows.count, g = rows.granule;
  int64_t size = ctx.chunk_rows > 0 ? ctx.chunk_rows
                                    : std::max<int64_t>(1, (count + ctx.devices.size() - 1) / ctx.devices.size());
  size = std::max<int64_t>(g, (size + g - 1) / g * g);
  std::vector<std::pair<int64_t, int64_t>> out;
  for (int64_t b = 0; b < count; b += size) out.emplace_back(b, std::min(count, b + size));
  return out;
}

// Runs `work(worker, model, k)` for every chunk k, chunk k on worker
// k mod devices; one thread per extra worker. Exceptions are re-thrown here.
template <typename Work>
void for_each_chunk(const Context& ctx, const std::vector<std::pair<int64_t, int64_t>>& parts, const Work& work) {
  size_t workers = std::min(ctx.devices.size(), parts.size());
  auto run = [&](size_t w) {
    auto model = ctx.model->replica(ctx.devices[w], w);
    for (size_t k = w; k < parts.size(); k += workers) work(w, *model, k);
  };
  if (workers <= 1) {
    run(0);
    return;
  }
  // Worker w runs on compute thread w: extra workers get long-lived threads
  // of their own, so that each device's thread state stays warm.
  std::vector<std::future<void>> others;
  for (size_t w = 1; w < workers; ++w)
    others.push_back(submit(w, [&, w] { run(w); }));
  std::exception_ptr first;
  try {
    run(0);
  } catch (...) {
    first = std::current_exception();
  }
  for (auto& f : others) {
    try {
      f.get();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

// Gradients of the target output for one chunk, moved back to the main
// device; the target-selected outputs go to `selected_out` when given.
std::vector<torch::Tensor> chunk_gradients(const Context& ctx, const Model& model, const Rows& rows,
                                           const Chunk& chunk, int64_t begin, int64_t end,
                                           torch::Tensor* selected_out = nullptr) {
  c10::Device dev = model.device();
  torch::Tensor examples = examples_if_needed(ctx, rows, begin, end);
  std::vector<torch::Tensor> leaves;
  leaves.reserve(chunk.inputs.size());
  for (const auto& x : chunk.inputs) leaves.push_back((x.device() == dev ? x : x.to(dev)).detach().requires_grad_(true));
  torch::Tensor out = model.forward(leaves, examples.defined() ? select_extra(ctx.extra, ctx.batch, examples) : ctx.extra);
  torch::Tensor selected = ctx.target.select_scalars(out, examples);
  if (selected_out) *selected_out = selected.detach().to(ctx.model->device());
  auto grads = gradients(selected, leaves);
  for (auto& g : grads)
    if (g.device() != ctx.model->device()) g = g.to(ctx.model->device());
  return grads;
}

// Per-chunk lists of per-row tensors, joined along the rows.
std::vector<torch::Tensor> concat_rows(std::vector<std::vector<torch::Tensor>>& pieces) {
  if (pieces.size() == 1) return std::move(pieces[0]);
  std::vector<torch::Tensor> out;
  for (size_t i = 0; i < pieces[0].size(); ++i) {
    std::vector<torch::Tensor> col;
    for (auto& p : pieces) col.push_back(p[i]);
    out.push_back(torch::cat(col, 0));
  }
  return out;
}

}  // namespace

std::vector<torch::Tensor> gradients(const torch::Tensor& scalars, const std::vector<torch::Tensor>& wrt, bool retain) {
  std::vector<torch::Tensor> grads;
  if (scalars.requires_grad())
    grads = torch::autograd::grad({scalars.sum()}, wrt, {}, retain, false, /*allow_unused=*/true);
  else
    grads.resize(wrt.size());  // the scalars do not depend on these tensors at all
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = torch::zeros_like(wrt[i]);
  return grads;
}

std::vector<torch::Tensor> map_rows(const Context& ctx, const Rows& rows, const ChunkBuilder& build, const ChunkFn& fn) {
  auto parts = chunks(ctx, rows);
  std::vector<std::vector<torch::Tensor>> pieces(parts.size());
  for_each_chunk(ctx, parts, [&](size_t, const Model& model, size_t k) {
    auto [begin, end] = parts[k];
    Chunk chunk = build(begin, end);
    ChunkCall call{model, {}, {}, rows.examples(begin, end)};
    for (const auto& x : chunk.inputs) {
      torch::Tensor leaf = (x.device() == model.device() ? x : x.to(model.device())).detach();
      call.leaves.push_back(at::isFloatingType(leaf.scalar_type()) ? leaf.requires_grad_(true) : leaf);
    }
    call.extra = ctx.per_example() ? select_extra(ctx.extra, ctx.batch, call.examples) : ctx.extra;
    auto out = fn(call);
    for (auto& t : out) t = t.detach().to(ctx.model->device());
    pieces[k] = std::move(out);
  });
  return concat_rows(pieces);
}

LayerRows layer_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build) {
  auto out = map_rows(ctx, rows, build, [&](const ChunkCall& c) {
    auto values = c.model.forward_values(c.leaves, c.extra);
    if (values.size() < 2) fail("model output: expected the output and the layer values");
    torch::Tensor selected = ctx.target.select_scalars(values[0], c.examples);
    std::vector<torch::Tensor> layers(values.begin() + 1, values.end());
    auto result = gradients(selected, layers);
    result.insert(result.end(), layers.begin(), layers.end());
    result.push_back(selected);
    return result;
  });
  size_t k = (out.size() - 1) / 2;
  LayerRows r;
  r.grads.assign(out.begin(), out.begin() + k);
  r.values.assign(out.begin() + k, out.begin() + 2 * k);
  r.outputs = out.back();
  return r;
}

std::vector<torch::Tensor> sum_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build) {
  auto parts = chunks(ctx, rows);
  size_t workers = std::min(ctx.devices.size(), parts.size());
  // One accumulator per worker, summed at the end: no locking on the hot path.
  std::vector<std::vector<torch::Tensor>> acc(workers);
  for_each_chunk(ctx, parts, [&](size_t w, const Model& model, size_t k) {
    auto part = parts[k];
    Chunk chunk = build(part.first, part.second);
    auto grads = chunk_gradients(ctx, model, rows, chunk, part.first, part.second);
    if (chunk.finish) chunk.finish(grads);
    if (chunk.reduced) {
      if (acc[w].empty()) acc[w] = std::move(grads);
      else for (size_t i = 0; i < grads.size(); ++i) acc[w][i] += grads[i];
      return;
    }
    torch::Tensor idx = rows.examples(part.first, part.second).to(ctx.model->device());
    if (acc[w].empty())
      for (size_t i = 0; i < grads.size(); ++i) acc[w].push_back(torch::zeros(ctx.inputs[i].sizes(), grads[i].options()));
    for (size_t i = 0; i < grads.size(); ++i) acc[w][i].index_add_(0, idx, grads[i]);
  });
  std::vector<torch::Tensor> total = acc[0];
  for (size_t w = 1; w < workers; ++w)
    if (!acc[w].empty())
      for (size_t i = 0; i < total.size(); ++i) total[i] += acc[w][i];
  return total;
}

std::vector<torch::Tensor> row_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build,
                                         torch::Tensor* outputs) {
  auto parts = chunks(ctx, rows);
  std::vector<std::vector<torch::Tensor>> pieces(parts.size());
  std::vector<torch::Tensor> selected(parts.size());
  for_each_chunk(ctx, parts, [&](size_t, const Model& model, size_t k) {
    Chunk chunk = build(parts[k].first, parts[k].second);
    auto grads = chunk_gradients(ctx, model, rows, chunk, parts[k].first, parts[k].second,
                                 outputs ? &selected[k] : nullptr);
    if (chunk.finish) chunk.finish(grads);
    pieces[k] = std::move(grads);
  });
  if (outputs) *outputs = parts.size() == 1 ? selected[0] : torch::cat(selected, 0);
  return concat_rows(pieces);
}

torch::Tensor forward_rows(const Context& ctx, const Rows& rows, const ChunkBuilder& build) {
  auto parts = chunks(ctx, rows);
  std::vector<torch::Tensor> pieces(parts.size());
  for_each_chunk(ctx, parts, [&](size_t, const Model& model, size_t k) {
    torch::NoGradGuard no_grad;
    auto part = parts[k];
    Chunk chunk = build(part.first, part.second);
    torch::Tensor examples = examples_if_needed(ctx, rows, part.first, part.second);
    std::vector<torch::Tensor> inputs;
    for (const auto& x : chunk.inputs) inputs.push_back(x.to(model.device()));
    torch::Tensor out = model.forward(inputs, examples.defined() ? select_extra(ctx.extra, ctx.batch, examples) : ctx.extra);
    pieces[k] = ctx.target.select(out, examples).to(ctx.model->device());
  });
  return parts.size() == 1 ? pieces[0] : torch::cat(pieces, 0);
}

ChunkBuilder slice_of(const std::vector<torch::Tensor>& tensors) {
  return [tensors](int64_t begin, int64_t end) {
    Chunk c;
    for (const auto& t : tensors) c.inputs.push_back(t.slice(0, begin, end));
    return c;
  };
}

torch::Tensor convergence_delta(const Context& ctx, const std::vector<torch::Tensor>& attributions,
                                const std::vector<torch::Tensor>& start, const std::vector<torch::Tensor>& end) {
  if (start[0].size(0) != ctx.batch) fail("convergence delta: ", start[0].size(0), " rows for ", ctx.batch, " examples");
  Rows rows = identity_rows(ctx.batch);
  torch::Tensor f_start = forward_rows(ctx, rows, slice_of(start));
  torch::Tensor f_end = forward_rows(ctx, rows, slice_of(end));
  if (f_start.dim() > 1)
    fail("returnConvergenceDelta: needs one output value per example; the target selects shape ",
         shape_str(f_start.sizes()));
  torch::Tensor attr_sum = sum_rows(attributions);
  return attr_sum - (f_end - f_start).to(attr_sum.scalar_type());
}

}  // namespace tx
