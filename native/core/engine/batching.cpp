#include "engine/batching.h"

#include <algorithm>

#include <chrono>
#include <atomic>
#include <cstring>
#include <exception>
#include <unordered_map>
#include <limits>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <sstream>

#include <c10/core/CPUAllocator.h>
#include <torch/version.h>

#include "engine/lru_cache.h"
#include "engine/scheduler.h"

#include "engine/errors.h"

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

// Peak bytes LibTorch allocates on the CPU for this thread while a probe is
// installed. The CPU allocator is wrapped once: outside probes it hands out
// the original allocations untouched; inside, each allocation carries the
// probe's counter so that its free is counted wherever it happens.
class AllocationProbe {
 public:
  AllocationProbe() : previous_(active) {
    static bool installed = [] {
      c10::SetCPUAllocator(new Tracking(c10::GetCPUAllocator()), /*priority=*/100);
      return true;
    }();
    (void)installed;
    active = &counter_;
  }
  ~AllocationProbe() { active = previous_; }
  int64_t peak() const { return counter_->peak; }

 private:
  struct Counter {
    std::atomic<int64_t> live{0}, peak{0};
    void add(int64_t n) {
      int64_t now = live += n;
      int64_t p = peak;
      while (now > p && !peak.compare_exchange_weak(p, now)) {
      }
    }
  };
  // Allocations made under a probe, by address: the counter their free
  // updates. Pointers stay raw (context == data), as LibTorch's raw
  // allocations (convolution buffers) require.
  struct Held {
    std::shared_ptr<Counter> counter;
    int64_t bytes;
  };
  static std::mutex& held_mutex() {
    static auto* m = new std::mutex();
    return *m;
  }
  static std::unordered_map<void*, Held>& held() {
    static auto* h = new std::unordered_map<void*, Held>();
    return *h;
  }
  static c10::DeleterFnPtr& inner_free() {
    static c10::DeleterFnPtr f = nullptr;
    return f;
  }
  static void tracked_free(void* p) {
    {
      std::lock_guard<std::mutex> lock(held_mutex());
      auto it = held().find(p);
      if (it != held().end()) {
        it->second.counter->add(-it->second.bytes);
        held().erase(it);
      }
    }
    inner_free()(p);
  }
  class Tracking : public c10::Allocator {
   public:
    explicit Tracking(c10::Allocator* inner) : inner_(inner) { inner_free() = inner->raw_deleter(); }
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 3)
    c10::DataPtr allocate(size_t n) override { return track(n); }
    void copy_data(void* dest, const void* src, std::size_t count) const override { std::memcpy(dest, src, count); }
#else
    c10::DataPtr allocate(size_t n) const override { return track(n); }
#endif
    c10::DeleterFnPtr raw_deleter() const override { return &tracked_free; }

   private:
    c10::DataPtr track(size_t n) const {
      c10::DataPtr d = inner_->allocate(n);
      void* data = d.get();
      // Only raw allocations whose free we can chain to are counted.
      if (!active || !data || d.get_context() != data || d.get_deleter() != inner_free()) return d;
      {
        std::lock_guard<std::mutex> lock(held_mutex());
        held()[data] = Held{*active, static_cast<int64_t>(n)};
      }
      (*active)->add(static_cast<int64_t>(n));
      c10::Device device = d.device();
      d.release_context();
      return c10::DataPtr(data, data, &tracked_free, device);
    }
    c10::Allocator* inner_;
  };

  static thread_local std::shared_ptr<Counter>* active;
  std::shared_ptr<Counter> counter_ = std::make_shared<Counter>();
  std::shared_ptr<Counter>* previous_;
};
thread_local std::shared_ptr<AllocationProbe::Counter>* AllocationProbe::active = nullptr;

// Measured bytes per row of one kind of pass, remembered per model, pass and
// row shape so that only a request's first call pays for the probe.
struct RowCost {
  double fixed = 0, per_row = 0, kept_per_row = 0;
  double seconds_per_row = 0;  // an upper estimate, from the probes
  int64_t best_rows = 0;       // the fastest chunk size found (0: not searched yet)
};

// The probe sees the tensors LibTorch allocates on the calling thread, not
// oneDNN's workspaces, intra-op threads' buffers or the C allocator's slack:
// measured against peak RSS on convolutional and linear models, a pass uses
// up to about 3.5 times what the probe sees.
constexpr double kUnseen = 4.0;

// Chunks take about this long at most, so that cancellation and waiting
// requests are served within that time.
constexpr double kMaxChunkSeconds = 0.25;

LruCache<std::string, RowCost>& row_costs() {
  static LruCache<std::string, RowCost> cache(1 << 20);
  return cache;
}

std::string cost_key(const Context& ctx, const char* kind, const Chunk& probe) {
  std::ostringstream os;
  os << ctx.model.get() << '/' << kind;
  for (const auto& x : probe.inputs) os << '/' << dtype_str(x.scalar_type()) << shape_str(x.sizes().slice(1));
  return os.str();
}


// Runs `work(worker, model, chunk, begin, end)` over all rows, chunk by chunk;
// `work` returns the bytes it keeps for the result. Chunks hold
// internalBatchSize rows when given; otherwise as many as fit memoryBudget,
// from a probe of the first chunks (one granule, then two) whose measured
// peak gives a fixed and a per-row cost. Chunks beyond the probes are spread
// over the worker devices, chunk k on worker k mod devices.
template <typename Work>
void for_each_chunk(const Context& ctx, const Rows& rows, const char* kind, const ChunkBuilder& build, const Work& work) {
  int64_t count = rows.count, g = rows.granule, done = 0;
  auto round_up = [g](int64_t n) { return std::max<int64_t>(g, (n + g - 1) / g * g); };
  int64_t size = ctx.chunk_rows;
  auto primary = ctx.model->replica(ctx.devices[0], 0);
  // Progress in rows for gradient passes (forward passes are perturbations,
  // which their callers count, or single checks); workers report in turn.
  bool report = std::strcmp(kind, "forward") != 0;
  if (report) ctx.progress->expect(count);
  std::mutex progress_mutex;
  auto run_chunk = [&](size_t w, const Model& model, int64_t begin, int64_t end) {
    yield_point();
    Chunk chunk = build(begin, end);
    auto kept = work(w, model, chunk, begin, end);
    if (report) {
      std::lock_guard<std::mutex> lock(progress_mutex);
      ctx.progress->advance(end - begin);
    }
    return kept;
  };
  if (size == 0 && count <= rows.batch && !ctx.expanded) {
    // No expansion: the caller's batch is one pass (split over the devices).
    size = (count + ctx.devices.size() - 1) / ctx.devices.size();
  } else if (size == 0) {
    // Plan from the remembered cost, or measure it on the first chunks.
    Chunk first = build(0, std::min(count, g));
    std::string key = cost_key(ctx, kind, first);
    first = Chunk();
    std::optional<RowCost> cost = row_costs().get(key);
    if (!cost) {
      int64_t peaks[2] = {0, 0}, kept = 0, ends[2] = {std::min(count, g), std::min(count, 3 * g)};
      double seconds[2] = {0, 0};
      for (int i = 0; i < 2 && done < count; ++i) {
        auto start = std::chrono::steady_clock::now();
        {
          AllocationProbe probe;
          kept += run_chunk(0, *primary, done, ends[i]);
          peaks[i] = probe.peak();
        }
        seconds[i] = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        done = ends[i];
        if (i == 0 && peaks[0] > ctx.memory_budget)
          fail_with(ErrorCode::MemoryBudget, "memoryBudget: one chunk of ", ends[0], " row(s) needed ", megabytes(peaks[0]),
                    " (measured on a probe pass), more than the budget of ", megabytes(ctx.memory_budget),
                    "; raise memoryBudget or use smaller inputs");
      }
      if (count >= 3 * g) {
        // One-time costs in the first probe can hide the per-row cost: take
        // at least a quarter of the second probe's peak per row.
        RowCost c;
        c.per_row = kUnseen * std::max(double(peaks[1] - peaks[0]) / g, double(peaks[1]) / (4 * g));
        c.fixed = std::max(0.0, kUnseen * double(peaks[0]) - c.per_row * g);
        c.kept_per_row = double(kept) / double(ends[1]);
        // The first probe pays one-time costs too; a pass's fixed cost is
        // what the second's time does not grow by.
        c.seconds_per_row = std::max((seconds[1] - std::min(seconds[0], seconds[1])) / g, 0.05 * seconds[1] / (2 * g));
        row_costs().put(key, c, key.size() + sizeof(RowCost));
        cost = c;
      }
    }
    if (done == count) return;
    if (!cost) {
      size = count;
    } else {
      double budget = ctx.memory_budget;
      double kept_total = cost->kept_per_row * count;
      if (kept_total > budget)
        fail_with(ErrorCode::MemoryBudget, "memoryBudget: the result of this request needs about ", megabytes(kept_total),
                  " (", count, " rows), more than the budget of ", megabytes(budget), "; raise memoryBudget or ask for less");
      double one = cost->fixed + cost->per_row * g;
      if (one + kept_total > budget)
        fail_with(ErrorCode::MemoryBudget, "memoryBudget: one chunk of ", g, " row(s) needs about ", megabytes(one),
                  " (measured on a probe pass), more than the budget of ", megabytes(budget - kept_total),
                  " left; raise memoryBudget or use smaller inputs");
      double fit = cost->per_row > 0 ? (budget - kept_total - cost->fixed) / cost->per_row : double(count);
      int64_t limit = static_cast<int64_t>(std::min<double>(double(count), std::floor(fit)));
      if (cost->seconds_per_row > 0)
        limit = std::min<int64_t>(limit, std::max<int64_t>(g, static_cast<int64_t>(kMaxChunkSeconds / cost->seconds_per_row)));
      limit = std::max(limit, g);
      if (cost->best_rows == 0) {
        // Search the fastest chunk size on the request's own chunks: double
        // it while the time per row keeps falling (cache-sized chunks often
        // beat one large pass), then remember it for this model and shape.
        double best_time = std::numeric_limits<double>::infinity();
        int64_t best = 0;
        bool settled = false;  // the search ended on its own, not for want of rows
        // Start where a chunk takes about 10 ms: smaller ones are rarely
        // faster per row, and their timings are the noisiest.
        int64_t first = std::max<int64_t>(4 * g, cost->seconds_per_row > 0 ? static_cast<int64_t>(0.01 / cost->seconds_per_row) : 0);
        for (int64_t s = round_up(first);; s *= 2) {
          if (s > limit) {
            settled = true;
            break;
          }
          if (done + s > count) break;
          auto timed_chunk = [&] {
            auto start = std::chrono::steady_clock::now();
            run_chunk(0, *primary, done, done + s);
            done += s;
            return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / s;
          };
          double per_row = timed_chunk();
          // A slower size ends the search, and is remembered: time it twice,
          // so that one noisy spell on a shared machine does not end it early.
          if (per_row > best_time * 0.97 && done + s <= count) per_row = std::min(per_row, timed_chunk());
          if (per_row > best_time * 0.97) {
            settled = true;
            break;
          }
          best_time = per_row, best = s;
        }
        if (best > 0 && settled) {
          cost->best_rows = best;
          // The probes' time per row carries one-time costs (kernel
          // set-up, the layout choice); the search timed real chunks.
          cost->seconds_per_row = best_time;
          row_costs().put(key, *cost, key.size() + sizeof(RowCost));
        }
        if (done == count) return;
        size = best > 0 ? best : limit;
      } else {
        size = std::min(cost->best_rows, limit);
      }
      // Spread over the workers when everything fits at once.
      size = std::min<int64_t>(size, (count - done + ctx.devices.size() - 1) / ctx.devices.size());
    }
  }
  size = round_up(size);
  // Even chunks: 200 rows at most 163 a chunk run as 100 + 100, not 163 + 37
  // (a small last chunk costs nearly a full one's fixed time).
  if (int64_t left = count - done; left > size) size = round_up((left + (left + size - 1) / size - 1) / ((left + size - 1) / size));
  std::vector<std::pair<int64_t, int64_t>> parts;
  for (int64_t b = done; b < count; b += size) parts.emplace_back(b, std::min(count, b + size));
  size_t workers = std::min(ctx.devices.size(), parts.size());
  auto run = [&](size_t w) {
    auto model = w == 0 ? primary : ctx.model->replica(ctx.devices[w], w);
    for (size_t k = w; k < parts.size(); k += workers) run_chunk(w, *model, parts[k].first, parts[k].second);
  };
  if (workers <= 1) {
    if (!parts.empty()) run(0);
    return;
  }
  // Worker w runs on device slot w's long-lived thread, so that each
  // device's thread state stays warm.
  std::vector<std::future<void>> others;
  std::exception_ptr first;
  // A device thread that cannot start (threads or address space exhausted)
  // fails the request, but only after the workers already given chunks are
  // done: they use this frame's state.
  try {
    for (size_t w = 1; w < workers; ++w) others.push_back(submit_device(w, [&, w] { run(w); }));
  } catch (const std::exception& e) {
    first = std::make_exception_ptr(CodedError(
        code_of(e), concat("devices: could not start the worker for device ", others.size() + 1, " of ", workers, " (",
                           e.what(), "): the machine is out of threads or memory; use fewer devices")));
  }
  if (!first) try {
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

int64_t bytes_of(const std::vector<torch::Tensor>& ts) {
  int64_t n = 0;
  for (const auto& t : ts)
    if (t.defined()) n += t.numel() * t.element_size();
  return n;
}

// Pieces of per-row results in row order (chunks finish out of order across workers).
template <typename Piece>
class Pieces {
 public:
  void put(int64_t begin, Piece p) {
    std::lock_guard<std::mutex> lock(mutex_);
    items_.emplace(begin, std::move(p));
  }
  std::vector<Piece> ordered() {
    std::vector<Piece> out;
    for (auto& [b, p] : items_) out.push_back(std::move(p));
    return out;
  }

 private:
  std::mutex mutex_;
  std::map<int64_t, Piece> items_;
};

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
  auto grads = gradients(selected, leaves, false, "the inputs");
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

std::vector<torch::Tensor> gradients(const torch::Tensor& scalars, const std::vector<torch::Tensor>& wrt, bool retain,
                                     const char* what) {
  bool any = false;
  for (const auto& w : wrt) any = any || w.requires_grad();
  // Zeros here would be a silent wrong answer: the output was detached from
  // what it is attributed to, or is not floating point.
  if (any && !scalars.requires_grad())
    fail("target: the model's selected output does not depend on ", what, " (", dtype_str(scalars.scalar_type()),
         " output without a gradient path: is the output detached, computed under no_grad, or integer?)");
  std::vector<torch::Tensor> grads;
  if (scalars.requires_grad()) {
    try {
      grads = torch::autograd::grad({scalars.sum()}, wrt, {}, retain, false, /*allow_unused=*/true);
    } catch (const c10::Error& e) {
      // An op LibTorch cannot differentiate: name it, and the usual cause.
      std::string m = e.what_without_backtrace();
      auto at = m.find("derivative for ");
      auto end = m.find(" is not implemented", at);
      if (at == std::string::npos || end == std::string::npos) throw;
      std::string op = m.substr(at + 15, end - at - 15);
      op.erase(std::remove(op.begin(), op.end(), '\''), op.end());
      fail("model: LibTorch has no derivative for ", op, ", which forward() calls, so gradient methods cannot run on it",
           op.find("_transformer_encoder_layer_fwd") != std::string::npos || op.find("_native_multi_head_attention") != std::string::npos
               ? " (nn.TransformerEncoderLayer's inference fast path, recorded when the model is traced under torch.no_grad(): "
                 "trace it with gradients on, or script it)"
               : "; perturbation methods (FeatureAblation, Occlusion, ShapleyValueSampling, Lime) still can");
    }
  } else
    grads.resize(wrt.size());
  for (size_t i = 0; i < grads.size(); ++i)
    if (!grads[i].defined()) grads[i] = torch::zeros_like(wrt[i]);
  return grads;
}

std::vector<torch::Tensor> map_rows(const Context& ctx, const Rows& rows, const ChunkBuilder& build, const ChunkFn& fn) {
  Pieces<std::vector<torch::Tensor>> pieces;
  for_each_chunk(ctx, rows, "map", build, [&](size_t, const Model& model, const Chunk& chunk, int64_t begin, int64_t end) {
    ChunkCall call{model, {}, {}, rows.examples(begin, end)};
    for (const auto& x : chunk.inputs) {
      torch::Tensor leaf = (x.device() == model.device() ? x : x.to(model.device())).detach();
      call.leaves.push_back(at::isFloatingType(leaf.scalar_type()) ? leaf.requires_grad_(true) : leaf);
    }
    call.extra = ctx.per_example() ? select_extra(ctx.extra, ctx.batch, call.examples) : ctx.extra;
    auto out = fn(call);
    for (auto& t : out) t = t.detach().to(ctx.model->device());
    int64_t kept = bytes_of(out);
    pieces.put(begin, std::move(out));
    return kept;
  });
  auto ordered = pieces.ordered();
  return concat_rows(ordered);
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
  // One accumulator per worker, summed at the end: no locking on the hot path.
  std::vector<std::vector<torch::Tensor>> acc(ctx.devices.size());
  for_each_chunk(ctx, rows, "sum", build, [&](size_t w, const Model& model, const Chunk& chunk, int64_t begin, int64_t end) {
    auto grads = chunk_gradients(ctx, model, rows, chunk, begin, end);
    if (chunk.finish) chunk.finish(grads);
    if (chunk.reduced) {
      if (acc[w].empty()) acc[w] = std::move(grads);
      else for (size_t i = 0; i < grads.size(); ++i) acc[w][i] += grads[i];
      return int64_t{0};
    }
    torch::Tensor idx = rows.examples(begin, end).to(ctx.model->device());
    if (acc[w].empty())
      for (size_t i = 0; i < grads.size(); ++i) acc[w].push_back(torch::zeros(ctx.inputs[i].sizes(), grads[i].options()));
    for (size_t i = 0; i < grads.size(); ++i) acc[w][i].index_add_(0, idx, grads[i]);
    return int64_t{0};
  });
  std::vector<torch::Tensor> total = acc[0];
  for (size_t w = 1; w < acc.size(); ++w)
    if (!acc[w].empty())
      for (size_t i = 0; i < total.size(); ++i) total[i] += acc[w][i];
  return total;
}

std::vector<torch::Tensor> row_gradients(const Context& ctx, const Rows& rows, const ChunkBuilder& build,
                                         torch::Tensor* outputs) {
  Pieces<std::vector<torch::Tensor>> pieces;
  for_each_chunk(ctx, rows, "rows", build, [&](size_t, const Model& model, const Chunk& chunk, int64_t begin, int64_t end) {
    torch::Tensor selected;
    auto grads = chunk_gradients(ctx, model, rows, chunk, begin, end, outputs ? &selected : nullptr);
    if (chunk.finish) chunk.finish(grads);
    if (outputs) grads.push_back(selected);
    int64_t kept = bytes_of(grads);
    pieces.put(begin, std::move(grads));
    return kept;
  });
  auto ordered = pieces.ordered();
  auto out = concat_rows(ordered);
  if (outputs) {
    *outputs = out.back();
    out.pop_back();
  }
  return out;
}

torch::Tensor forward_rows(const Context& ctx, const Rows& rows, const ChunkBuilder& build, const OutputFn& transform) {
  Pieces<torch::Tensor> pieces;
  for_each_chunk(ctx, rows, "forward", build, [&](size_t, const Model& model, const Chunk& chunk, int64_t begin, int64_t end) {
    torch::NoGradGuard no_grad;
    torch::Tensor examples = examples_if_needed(ctx, rows, begin, end);
    std::vector<torch::Tensor> inputs;
    for (const auto& x : chunk.inputs) inputs.push_back(x.to(model.device()));
    torch::Tensor out = ctx.forward ? (*ctx.forward)(model, inputs)
                                    : model.infer(inputs, examples.defined() ? select_extra(ctx.extra, ctx.batch, examples) : ctx.extra);
    if (transform) out = transform(out);
    torch::Tensor selected = ctx.target.select(out, examples).to(ctx.model->device());
    int64_t kept = selected.numel() * selected.element_size();
    pieces.put(begin, std::move(selected));
    return kept;
  });
  auto ordered = pieces.ordered();
  return ordered.size() == 1 ? ordered[0] : torch::cat(ordered, 0);
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
