// Perturbation family: FeatureAblation, FeaturePermutation, Occlusion,
// ShapleyValueSampling and ShapleyValues. Perturbed copies are built and run
// in C++, perturbationsPerEval copies per forward pass.
#include "attr/perturbation.h"

#include <algorithm>
#include <chrono>
#include <sstream>
#include <numeric>

#include "algorithms.h"
#include "engine/errors.h"
#include "engine/lru_cache.h"
#include "engine/scheduler.h"

namespace tx {

Features feature_mask_option(const Context& ctx, const Value& v) {
  Features f;
  auto dev = ctx.model->device();
  size_t n = ctx.inputs.size();
  if (v.is_none()) {
    int64_t offset = 0;
    for (const auto& x : ctx.inputs) {
      std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
      shape[0] = 1;
      int64_t per = x.numel() / std::max<int64_t>(1, x.size(0));
      f.masks.push_back(torch::arange(offset, offset + per, torch::TensorOptions().dtype(torch::kLong).device(dev)).view(shape));
      offset += per;
    }
    f.count = offset;
    return f;
  }
  std::vector<Value> items;
  if (v.is_list()) items = *v.list;
  else items = {v};
  if (items.size() != n) fail("featureMask: expected one mask per input (", n, "), got ", items.size());
  std::vector<bool> seen;
  for (size_t i = 0; i < n; ++i) {
    const Value& m = items[i];
    const torch::Tensor& x = ctx.inputs[i];
    std::string name = n > 1 ? "featureMask[" + std::to_string(i) + "]" : "featureMask";
    if (!m.is_tensor()) fail(name, ": expected an integer tensor, got ", m.kind_name());
    torch::Tensor t = m.tensor;
    if (at::isFloatingType(t.scalar_type()) || t.scalar_type() == at::kBool)
      fail(name, ": expected an integer tensor, got ", dtype_str(t.scalar_type()));
    if (t.dim() == x.dim() - 1) t = t.unsqueeze(0);  // a mask for one example
    bool ok = t.dim() == x.dim() && (t.size(0) == 1 || t.size(0) == x.size(0));
    for (int64_t d = 1; ok && d < x.dim(); ++d) ok = t.size(d) == 1 || t.size(d) == x.size(d);
    if (!ok)
      fail_shape(name, ": shape ", shape_str(t.sizes()), " does not broadcast to input ", i, " of shape ", shape_str(x.sizes()),
           " (each dimension must be 1 or the input's; the first may be 1 to share the mask across the batch)");
    t = t.to(torch::kCPU, torch::kLong);
    if (t.numel() && t.min().item<int64_t>() < 0) fail(name, ": feature ids must be >= 0, found ", t.min().item<int64_t>());
    if (t.numel()) {
      int64_t hi = t.max().item<int64_t>();
      if (static_cast<int64_t>(seen.size()) <= hi) seen.resize(hi + 1, false);
      torch::Tensor ids = std::get<0>(at::_unique(t.flatten()));
      for (int64_t k = 0; k < ids.size(0); ++k) seen[ids[k].item<int64_t>()] = true;
    }
    f.masks.push_back(t.to(dev));
  }
  for (size_t id = 0; id < seen.size(); ++id)
    if (!seen[id])
      fail("featureMask: feature ids must be contiguous from 0: id ", id, " is missing (ids up to ", seen.size() - 1, " are used)");
  f.count = static_cast<int64_t>(seen.size());
  if (f.count == 0) fail("featureMask: the masks name no features");
  return f;
}

namespace {

// What one probe pass tells about a model and an input shape: whether its
// output follows the batch (so several perturbed copies can share a pass),
// and a pass's time per row.
struct BatchProbe {
  bool follows = false;
  double seconds_per_row = 0;
};

BatchProbe probe_batching(const Context& ctx) {
  static LruCache<std::string, BatchProbe> cache(1 << 20);
  std::ostringstream key;
  key << ctx.model.get() << '/' << ctx.forward.get() << '/' << ctx.batch << '/' << ctx.per_example();
  for (const auto& x : ctx.inputs) key << '/' << dtype_str(x.scalar_type()) << shape_str(x.sizes().slice(1));
  if (auto hit = cache.get(key.str())) return *hit;
  BatchProbe p;
  try {
    torch::NoGradGuard no_grad;
    int64_t n = ctx.batch;
    torch::Tensor examples = torch::arange(2 * n, torch::kLong).remainder(n);
    std::vector<torch::Tensor> twice;
    for (const auto& x : ctx.inputs) twice.push_back(torch::cat({x, x}, 0));
    auto extra = ctx.per_example() ? select_extra(ctx.extra, n, examples) : ctx.extra;
    auto start = std::chrono::steady_clock::now();
    torch::Tensor out = ctx.forward ? (*ctx.forward)(*ctx.model, twice) : ctx.model->infer(twice, extra);
    p.seconds_per_row = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / (2 * n);
    p.follows = out.dim() > 0 && out.size(0) == 2 * n;
  } catch (const std::exception&) {
    p.follows = false;  // a model that takes fixed batches: one copy per pass
  }
  cache.put(key.str(), p, key.str().size() + sizeof(BatchProbe));
  return p;
}

// Copies per pass when the caller leaves it to us: about 50 ms of work per
// pass within the memory budget, or one copy for models that aggregate their batch.
int64_t automatic_per_eval(const Context& ctx, int64_t total) {
  BatchProbe p = probe_batching(ctx);
  if (!p.follows) return 1;
  double rows = p.seconds_per_row > 0 ? 0.05 / p.seconds_per_row : 4096.0;
  double row_bytes = 0;
  for (const auto& x : ctx.inputs) row_bytes += double(x.numel() / ctx.batch) * x.element_size();
  // Inputs are a fraction of a forward pass's memory; allow for activations.
  rows = std::min(rows, ctx.memory_budget / std::max(1.0, row_bytes * 16));
  return std::max<int64_t>(1, std::min<int64_t>(total, static_cast<int64_t>(rows / ctx.batch)));
}

}  // namespace

int64_t perturbations_per_eval_option(const Context& ctx, const Options& o, int64_t total) {
  const Value& v = o.get("perturbationsPerEval");
  if (v.is_none()) return automatic_per_eval(ctx, total);
  if (v.kind == Value::Kind::String) {
    if (v.string != "auto") fail("perturbationsPerEval: expected an integer >= 1 or \"auto\", got '", v.string, "'");
    return automatic_per_eval(ctx, total);
  }
  return std::max<int64_t>(1, std::min(total, o.integer("perturbationsPerEval", 1, 1)));
}

namespace {

// One value per example, or one per batch (aggregate mode), as a row.
torch::Tensor as_row(const torch::Tensor& selected, int64_t rows_expected) {
  if (selected.dim() == 0) return selected.reshape({1, 1});
  if (selected.dim() == 1 && selected.size(0) == rows_expected) return selected.reshape({1, -1});
  fail("target: perturbation methods need one output value per example (or one per batch); the target selects shape ",
       shape_str(selected.sizes()), " per batch of ", rows_expected, " rows: give a target");
}

}  // namespace

torch::Tensor evaluate_inputs(const Context& ctx) {
  torch::Tensor out = forward_rows(ctx, identity_rows(ctx.batch), slice_of(ctx.inputs));
  return as_row(out, ctx.batch);
}

torch::Tensor evaluate_perturbations(const Context& ctx, int64_t count, int64_t per_eval, const PerturbationFn& perturb) {
  int64_t n = ctx.batch;
  std::vector<torch::Tensor> results;
  double row_bytes = 0;
  for (const auto& x : ctx.inputs) row_bytes += double(x.numel() / n) * x.element_size();
  require_budget(ctx, double(count) * n * 8, concat(count, " perturbations' outputs"));
  require_budget(ctx, double(std::min(per_eval, count)) * n * row_bytes * 2,
                 concat("perturbationsPerEval ", per_eval, " (", std::min(per_eval, count) * n, " perturbed rows per pass)"));
  ctx.progress->expect(count);
  for (int64_t p0 = 0; p0 < count; p0 += per_eval) {
    yield_point();
    int64_t k = std::min(per_eval, count - p0);
    Perturbation p = perturb(p0, k);
    std::vector<torch::Tensor> rows;
    for (size_t i = 0; i < ctx.inputs.size(); ++i) {
      const torch::Tensor& x = ctx.inputs[i];
      std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
      shape[0] = k * n;
      rows.push_back(torch::where(p.replace[i], p.with[i].to(x.dtype()), x.unsqueeze(0)).reshape(shape));
    }
    // Rows are perturbation-major: copy j holds every example once.
    Context batch = ctx;
    batch.chunk_rows = k * n;
    torch::Tensor out = forward_rows(batch, Rows::step_major(n, k), slice_of(rows));
    if (out.dim() == 0) {
      if (k != 1) fail("perturbationsPerEval: must be 1 when the model returns one value per batch");
      results.push_back(out.reshape({1, 1}));
    } else {
      results.push_back(as_row(out, k * n).reshape({k, n}));
    }
    ctx.progress->advance(k);
  }
  return torch::cat(results, 0);
}

std::vector<torch::Tensor> scores_to_inputs(const Context& ctx, const Features& f, const torch::Tensor& scores) {
  int64_t cols = scores.size(1);
  std::vector<torch::Tensor> out;
  torch::Tensor by_example = scores.t().contiguous();  // [cols, F]
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    const torch::Tensor& x = ctx.inputs[i];
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape[0] = cols;
    torch::Tensor ids = f.masks[i].expand(shape).reshape({cols, -1});
    out.push_back(by_example.gather(1, ids).view(shape));
  }
  return out;
}

namespace {

// Features of perturbation j are taken from `with` where absent[j] is set
// (absent: [k, F] bool on the model's device).
Perturbation replace_features(const Context& ctx, const Features& f, const std::vector<torch::Tensor>& with,
                              const torch::Tensor& absent) {
  Perturbation p;
  int64_t k = absent.size(0);
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    std::vector<int64_t> shape = {k};
    shape.insert(shape.end(), f.masks[i].sizes().begin(), f.masks[i].sizes().end());
    p.replace.push_back(absent.index_select(1, f.masks[i].flatten()).view(shape));
    p.with.push_back(with[i].dim() == ctx.inputs[i].dim() ? with[i].unsqueeze(0) : with[i]);
  }
  return p;
}

// Perturbations [first, first + k) each ablate one feature: feature first + j in copy j.
torch::Tensor one_feature_each(const Context& ctx, int64_t features, int64_t first, int64_t k) {
  auto opts = torch::TensorOptions().dtype(torch::kLong).device(ctx.model->device());
  return torch::arange(first, first + k, opts).unsqueeze(1) == torch::arange(features, opts).unsqueeze(0);
}

// Input `input`'s sliding windows, in the reference's order. Masks are made
// a batch at a time: all of them at once would take windows x elements bytes.
struct Windows {
  std::vector<int64_t> dims, window, stride, shifts;
  int64_t count = 1;
  c10::Device device = c10::kCPU;
  torch::Tensor masks(int64_t first, int64_t k) const;  // [k, 1, dims...] bool
};
Windows occlusion_windows(const Context& ctx, size_t input, const std::vector<int64_t>& window,
                          const std::vector<int64_t>& stride);

}  // namespace

Result feature_ablation(const Context& ctx, const Options& o) {
  auto baselines = format_baselines(ctx, o.get("baselines"));
  Features f = feature_mask_option(ctx, o.get("featureMask"));
  int64_t per_eval = perturbations_per_eval_option(ctx, o, f.count);
  o.reject_unknown("FeatureAblation");
  torch::Tensor initial = evaluate_inputs(ctx);
  torch::Tensor scores = initial - evaluate_perturbations(ctx, f.count, per_eval, [&](int64_t first, int64_t k) {
    return replace_features(ctx, f, baselines, one_feature_each(ctx, f.count, first, k));
  });
  return {scores_to_inputs(ctx, f, scores), {}};
}

Result feature_permutation(const Context& ctx, const Options& o) {
  Features f = feature_mask_option(ctx, o.get("featureMask"));
  int64_t per_eval = perturbations_per_eval_option(ctx, o, f.count);
  o.reject_unknown("FeaturePermutation");
  if (ctx.batch < 2) fail("inputs: FeaturePermutation shuffles features across the batch and needs at least 2 examples, got ", ctx.batch);
  torch::Tensor initial = evaluate_inputs(ctx);
  auto dev = ctx.model->device();
  torch::Tensor scores = initial - evaluate_perturbations(ctx, f.count, per_eval, [&](int64_t first, int64_t k) {
    // Copy j shuffles feature first + j by a permutation of the examples that moves at least one.
    std::vector<torch::Tensor> perms;
    for (int64_t j = 0; j < k; ++j) {
      torch::Tensor perm;
      do {
        perm = torch::randperm(ctx.batch, torch::kLong);
      } while (perm.equal(torch::arange(ctx.batch, torch::kLong)));
      perms.push_back(perm);
    }
    torch::Tensor order = torch::stack(perms).to(dev).flatten();  // [k * N]
    std::vector<torch::Tensor> shuffled;
    for (const auto& x : ctx.inputs) {
      std::vector<int64_t> shape = {k};
      shape.insert(shape.end(), x.sizes().begin(), x.sizes().end());
      shuffled.push_back(x.index_select(0, order).view(shape));
    }
    return replace_features(ctx, f, shuffled, one_feature_each(ctx, f.count, first, k));
  });
  return {scores_to_inputs(ctx, f, scores), {}};
}

Result occlusion(const Context& ctx, const Options& o) {
  auto baselines = format_baselines(ctx, o.get("baselines"));
  size_t n = ctx.inputs.size();
  auto per_input_shape = [&](const std::string& key, bool required) {
    const Value& v = o.get(key);
    std::vector<std::vector<int64_t>> out(n);
    if (v.is_none()) {
      if (required) fail(key, ": Occlusion needs a window shape per input (the input's shape without the batch dimension)");
      for (size_t i = 0; i < n; ++i) out[i].assign(ctx.inputs[i].dim() - 1, 1);
      return out;
    }
    // One shape for one input, or one per input; a stride may be a single number.
    std::vector<Value> items;
    bool nested = v.is_list() && !v.list->empty() && (*v.list)[0].is_list();
    if (n > 1 || nested) {
      if (!v.is_list() || v.list->size() != n) fail(key, ": expected one entry per input (", n, ")");
      items = *v.list;
    } else {
      items = {v};
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t dims = ctx.inputs[i].dim() - 1;
      const Value& e = items[i];
      if (e.is_integer() && !required) {
        if (e.number < 1) fail(key, ": sizes must be integers >= 1, got ", e.number);
        out[i].assign(dims, static_cast<int64_t>(e.number));
      } else {
        if (!e.is_list() || static_cast<int64_t>(e.list->size()) != dims)
          fail(key, (n > 1 ? "[" + std::to_string(i) + "]" : std::string()), ": expected ", dims,
               " sizes (input ", i, " has shape ", shape_str(ctx.inputs[i].sizes()), " with the batch first)");
        for (const auto& s : *e.list) {
          if (!s.is_integer() || s.number < 1) fail(key, ": sizes must be integers >= 1");
          out[i].push_back(static_cast<int64_t>(s.number));
        }
      }
    }
    return out;
  };
  auto windows = per_input_shape("slidingWindowShapes", true);
  auto strides = per_input_shape("strides", false);
  int64_t total_windows = 0;
  std::vector<Windows> all(n);
  for (size_t i = 0; i < n; ++i) {
    all[i] = occlusion_windows(ctx, i, windows[i], strides[i]);
    total_windows += all[i].count;
  }
  int64_t per_eval = perturbations_per_eval_option(ctx, o, total_windows);
  o.reject_unknown("Occlusion");

  torch::Tensor initial = evaluate_inputs(ctx);
  Result r;
  for (size_t i = 0; i < n; ++i) {
    const Windows& win = all[i];
    torch::Tensor none = torch::zeros({1, 1}, torch::TensorOptions().dtype(torch::kBool).device(ctx.model->device()));
    torch::Tensor scores = initial - evaluate_perturbations(ctx, win.count, per_eval, [&](int64_t first, int64_t k) {
      Perturbation pt;
      for (size_t j = 0; j < n; ++j) {
        pt.replace.push_back(j == i ? win.masks(first, k) : none.view(std::vector<int64_t>(ctx.inputs[j].dim() + 1, 1)));
        pt.with.push_back(baselines[j].unsqueeze(0));
      }
      return pt;
    });
    // Each element: the mean score of the windows that covered it, summed a
    // batch of windows at a time.
    int64_t elements = ctx.inputs[i].numel() / ctx.batch;
    int64_t step = std::max<int64_t>(1, (64 << 20) / (elements * 4));
    torch::Tensor sums = torch::zeros({scores.size(1), elements}, scores.options());
    torch::Tensor covered = torch::zeros({1, elements}, scores.options());
    for (int64_t w = 0; w < win.count; w += step) {
      yield_point();
      int64_t k = std::min(step, win.count - w);
      torch::Tensor cover = win.masks(w, k).flatten(1).to(scores.dtype());  // [k, E]
      sums.addmm_(scores.slice(0, w, w + k).t(), cover);
      covered += cover.sum(0, true);
    }
    std::vector<int64_t> shape(ctx.inputs[i].sizes().begin(), ctx.inputs[i].sizes().end());
    shape[0] = scores.size(1);
    r.attributions.push_back((sums / covered).view(shape));
  }
  return r;
}

namespace {

Windows occlusion_windows(const Context& ctx, size_t input, const std::vector<int64_t>& window,
                          const std::vector<int64_t>& stride) {
  const torch::Tensor& x = ctx.inputs[input];
  Windows w;
  w.dims.assign(x.sizes().begin() + 1, x.sizes().end());
  w.window = window;
  w.stride = stride;
  w.device = ctx.model->device();
  for (size_t d = 0; d < w.dims.size(); ++d) {
    if (window[d] > w.dims[d])
      fail("slidingWindowShapes: window ", shape_str(window), " is larger than input ", input, "'s example shape ",
           shape_str(w.dims), " in dimension ", d);
    if (stride[d] > window[d] && w.dims[d] != window[d])
      fail("strides: stride ", stride[d], " is larger than the window (", window[d], ") in dimension ", d, ", so some values would never be occluded");
    w.shifts.push_back((w.dims[d] - window[d] + stride[d] - 1) / stride[d] + 1);  // ceil, as the reference
    w.count *= w.shifts.back();
  }
  return w;
}

torch::Tensor Windows::masks(int64_t first, int64_t k) const {
  std::vector<int64_t> full = {k, 1};
  full.insert(full.end(), dims.begin(), dims.end());
  torch::Tensor m = torch::zeros(full, torch::TensorOptions().dtype(torch::kBool));
  for (int64_t j = 0; j < k; ++j) {
    // Window w's position: the first dimension varies fastest, as in the reference.
    torch::Tensor view = m.select(0, j).select(0, 0);
    int64_t rest = first + j;
    for (size_t d = 0; d < dims.size(); ++d) {
      int64_t start = (rest % shifts[d]) * stride[d];
      rest /= shifts[d];
      view = view.narrow(d, start, std::min(window[d], dims[d] - start));
    }
    view.fill_(true);
  }
  return m.to(device);
}

// Shapley weights |S|! (F - |S| - 1)! / F! for coalition sizes 0..F-1.
std::vector<double> shapley_weights(int64_t features) {
  std::vector<double> w(features);
  for (int64_t s = 0; s < features; ++s)
    w[s] = std::exp(std::lgamma(s + 1.0) + std::lgamma(features - s + 0.0) - std::lgamma(features + 1.0));
  return w;
}

// Coalition -> perturbation: features outside the coalition take the baseline.
PerturbationFn coalitions(const Context& ctx, const Features& f, const std::vector<torch::Tensor>& baselines,
                          const torch::Tensor& present /* [P, F] bool, on CPU */) {
  torch::Tensor absent = present.logical_not().to(ctx.model->device());
  return [&, absent](int64_t first, int64_t k) { return replace_features(ctx, f, baselines, absent.slice(0, first, first + k)); };
}

}  // namespace

Result shapley_values(const Context& ctx, const Options& o) {
  auto baselines = format_baselines(ctx, o.get("baselines"));
  Features f = feature_mask_option(ctx, o.get("featureMask"));
  if (f.count > 20)
    fail("featureMask: exact ShapleyValues evaluates all 2^F coalitions; ", f.count,
         " features is too many (at most 20): group features with a featureMask or use ShapleyValueSampling");
  int64_t count = int64_t{1} << f.count;
  int64_t per_eval = perturbations_per_eval_option(ctx, o, count);
  o.reject_unknown("ShapleyValues");
  // Every coalition once: bit j of the index says whether feature j is present.
  torch::Tensor present = torch::arange(count, torch::kLong).unsqueeze(1).bitwise_right_shift(torch::arange(f.count, torch::kLong)).bitwise_and(1).to(torch::kBool);
  torch::Tensor v = evaluate_perturbations(ctx, count, per_eval, coalitions(ctx, f, baselines, present)).to(torch::kCPU, torch::kDouble);
  auto w = shapley_weights(f.count);
  torch::Tensor index = torch::arange(count, torch::kLong);
  torch::Tensor weight = torch::tensor(w, torch::kDouble).index_select(0, present.sum(1).clamp_max(f.count - 1));
  torch::Tensor phi = torch::empty({f.count, v.size(1)}, torch::kDouble);
  for (int64_t j = 0; j < f.count; ++j) {
    // Marginal contributions of feature j to every coalition without it.
    torch::Tensor without = index.masked_select(present.select(1, j).logical_not());
    torch::Tensor gain = v.index_select(0, without.bitwise_or(int64_t{1} << j)) - v.index_select(0, without);
    phi[j] = (weight.index_select(0, without).unsqueeze(1) * gain).sum(0);
  }
  auto dtype = ctx.inputs[0].is_floating_point() ? ctx.inputs[0].scalar_type() : torch::kFloat;
  return {scores_to_inputs(ctx, f, phi.to(ctx.model->device(), dtype)), {}};
}

Result shapley_value_sampling(const Context& ctx, const Options& o) {
  auto baselines = format_baselines(ctx, o.get("baselines"));
  Features f = feature_mask_option(ctx, o.get("featureMask"));
  int64_t samples = o.integer("nSamples", 25, 1);
  int64_t count = samples * f.count;
  int64_t per_eval = perturbations_per_eval_option(ctx, o, count);
  o.reject_unknown("ShapleyValueSampling");
  require_budget(ctx, double(count) * f.count, concat("ShapleyValueSampling's ", count, " coalitions of ", f.count, " features"));
  // Each sampled permutation adds features one at a time: prefix k holds its first k + 1 features.
  std::vector<torch::Tensor> orders;
  torch::Tensor present = torch::zeros({count, f.count}, torch::kBool);
  for (int64_t s = 0; s < samples; ++s) {
    if (s % 64 == 0) check_cancelled();
    torch::Tensor order = torch::randperm(f.count, torch::kLong);
    orders.push_back(order);
    for (int64_t k = 0; k < f.count; ++k) present[s * f.count + k].index_fill_(0, order.slice(0, 0, k + 1), true);
  }
  torch::Tensor v = evaluate_perturbations(ctx, count, per_eval, coalitions(ctx, f, baselines, present));
  Context at_baseline = ctx.with_rows(baselines, torch::arange(ctx.batch, torch::kLong));
  torch::Tensor start = evaluate_inputs(at_baseline);
  torch::Tensor phi = torch::zeros({f.count, v.size(1)}, v.options());
  for (int64_t s = 0; s < samples; ++s) {
    if (s % 64 == 0) check_cancelled();
    torch::Tensor values = torch::cat({start, v.slice(0, s * f.count, (s + 1) * f.count)}, 0);
    phi.index_add_(0, orders[s].to(phi.device()), values.slice(0, 1) - values.slice(0, 0, -1));
  }
  return {scores_to_inputs(ctx, f, phi / static_cast<double>(samples)), {}};
}

}  // namespace tx
