#include "engine/context.h"

#include <cmath>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <sstream>
#include <unistd.h>

#include "engine/errors.h"
#include "graph/graph_rewrite.h"
#include "engine/scheduler.h"

namespace tx {

namespace {

std::vector<c10::Device> parse_devices(const Options& o, c10::Device model_device) {
  const Value& v = o.get("devices");
  if (v.is_none()) return {model_device};
  if (!v.is_list() || v.list->empty())
    fail("devices: expected a non-empty array of device names such as [\"cuda:0\", \"cuda:1\"]");
  if (v.list->size() > kMaxDeviceSlots)
    fail("devices: at most ", kMaxDeviceSlots, " worker devices, got ", v.list->size());
  std::vector<c10::Device> out;
  for (size_t i = 0; i < v.list->size(); ++i) {
    const Value& d = (*v.list)[i];
    if (d.kind != Value::Kind::String) fail("devices[", i, "]: expected a device name, got ", d.kind_name());
    out.push_back(parse_device(d.string));
  }
  return out;
}

}  // namespace

void Progress::advance(int64_t n) {
  done_ += n;
  if (!fn_) return;
  auto now = std::chrono::steady_clock::now();
  if (done_ < total_ && std::chrono::duration<double>(now - last_).count() < interval_) return;
  last_ = now;
  fn_(done_, total_);
}

const std::vector<std::string>& context_keys() {
  static const std::vector<std::string> keys = {"target", "additionalForwardArgs", "internalBatchSize", "devices",
                                                "memoryBudget", "allowNonFinite"};
  return keys;
}

double default_memory_budget() {
  // A server can set its own default for every request.
  if (const char* env = std::getenv("TORCHEXPLAIN_MEMORY_BUDGET")) {
    char* end = nullptr;
    double v = std::strtod(env, &end);
    if (end != env && v > 0) return v;
  }
  // Read at most every 100 ms: parsing /proc/meminfo took a tenth of a small
  // request's time (IG on the bench MLP), and what is available moves slowly.
  using Clock = std::chrono::steady_clock;
  static std::mutex mutex;
  static Clock::time_point read_at;
  static double budget = 0;
  std::lock_guard<std::mutex> lock(mutex);
  auto now = Clock::now();
  if (budget > 0 && now - read_at < std::chrono::milliseconds(100)) return budget;
  read_at = now;
  budget = 0;
  // MemAvailable counts reclaimable caches, unlike free pages alone.
  if (std::FILE* f = std::fopen("/proc/meminfo", "r")) {
    char line[256];
    double kb = 0;
    while (std::fgets(line, sizeof line, f))
      if (std::sscanf(line, "MemAvailable: %lf kB", &kb) == 1) {
        budget = kb * 1024 / 2;
        break;
      }
    std::fclose(f);
  }
  if (budget <= 0) {
    long pages = sysconf(_SC_AVPHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    budget = pages > 0 && page > 0 ? double(pages) * page / 2 : 1024.0 * 1024 * 1024;
  }
  return budget;
}

std::string megabytes(double bytes) {
  std::ostringstream os;
  os.precision(bytes < 1e7 ? 3 : 0);
  os << std::fixed << bytes / (1 << 20) << " MiB";
  return os.str();
}

void require_budget(const Context& ctx, double bytes, const std::string& what) {
  if (bytes > ctx.memory_budget)
    fail_with(ErrorCode::MemoryBudget, "memoryBudget: ", what, " needs about ", megabytes(bytes), ", more than the budget of ",
              megabytes(ctx.memory_budget), "; raise memoryBudget or ask for less");
}

double example_bytes(const Context& ctx) {
  double bytes = 0;
  for (const auto& x : ctx.inputs) bytes += double(x.numel() / std::max<int64_t>(1, x.size(0))) * x.element_size();
  return bytes;
}

void require_finite(const Context& ctx, const torch::Tensor& t, const std::string& name) {
  if (ctx.allow_non_finite || !t.defined() || !at::isFloatingType(t.scalar_type()) || t.numel() == 0) return;
  // A finite sum has no NaN or infinity among its terms (one pass, no temporaries);
  // a sum that overflowed is checked element by element.
  if (std::isfinite(t.sum().item<double>())) return;
  if (!torch::isfinite(t).all().item<bool>())
    fail(name, ": contains NaN or infinite values (pass allowNonFinite: true to attribute them anyway)");
}

std::vector<size_t> integer_inputs(const Context& ctx) {
  std::vector<size_t> out;
  for (size_t i = 0; i < ctx.inputs.size(); ++i)
    if (!at::isFloatingType(ctx.inputs[i].scalar_type())) out.push_back(i);
  return out;
}

void require_float_inputs(const Context& ctx) {
  auto ints = integer_inputs(ctx);
  if (!ints.empty())
    fail("inputs[", ints[0], "]: gradient methods need floating-point inputs, got ", dtype_str(ctx.inputs[ints[0]].scalar_type()),
         " (convert with dtype 'float32', or attribute to an embedding layer)");
}

Context make_context(const Request& req, bool fold_batch_norms) {
  const Options& o = req.options;
  Context c;
  c.source = req.model;
  c.model = fold_batch_norms ? with_folded_batch_norms(req.model) : req.model;
  c.options = &o;
  if (req.inputs.empty()) fail("inputs: expected at least one input tensor");
  std::optional<at::ScalarType> weights;
  for (const auto& p : req.model->module().parameters())
    if (at::isFloatingType(p.scalar_type())) {
      weights = p.scalar_type();
      break;
    }
  for (size_t i = 0; i < req.inputs.size(); ++i) {
    const torch::Tensor& x = req.inputs[i];
    if (!x.defined()) fail("inputs[", i, "]: expected a tensor");
    if (x.dim() < 1) fail_shape("inputs[", i, "]: expected a batch dimension first, got a scalar tensor");
    if (i > 0 && x.size(0) != c.batch)
      fail_shape("inputs[", i, "]: batch size ", x.size(0), " differs from inputs[0]'s ", c.batch,
           " (every input needs the same first dimension)");
    c.batch = x.size(0);
    // Floating inputs of another precision than the model's weights (float64
    // from a .npy file, say) run at the weights' precision, as they would in
    // PyTorch after .float(): LibTorch refuses a double input to a float layer.
    torch::Tensor on_device = x.to(c.model->device());
    if (weights && at::isFloatingType(x.scalar_type()) && x.scalar_type() != *weights) on_device = on_device.to(*weights);
    c.inputs.push_back(on_device);
  }
  if (c.batch == 0)
    fail_shape("inputs[0]: the batch is empty (shape ", shape_str(req.inputs[0].sizes()), "); expected at least one example");
  c.allow_non_finite = o.boolean("allowNonFinite", false);
  for (size_t i = 0; i < c.inputs.size(); ++i) require_finite(c, c.inputs[i], "inputs[" + std::to_string(i) + "]");
  double budget = o.number("memoryBudget", 0);
  if (o.has("memoryBudget") && !(budget > 0)) fail("memoryBudget: expected a positive number of bytes, got ", budget);
  c.memory_budget = budget > 0 ? budget : default_memory_budget();
  const Value& extra = o.get("additionalForwardArgs");
  if (!extra.is_none()) {
    if (extra.is_list()) c.extra_values = *extra.list;
    else c.extra_values = {extra};
  }
  c.extra = c.model->convert_extra(c.extra_values, c.inputs.size());
  const Value& target = o.get("target");
  if (target.kind == Value::Kind::String && target.string == "predicted") {
    // Each example's highest-scoring output, from one forward pass.
    torch::NoGradGuard no_grad;
    torch::Tensor out = c.model->forward(c.inputs, c.extra);
    if (out.dim() != 2)
      fail("target: \"predicted\" needs outputs [batch, classes]; the model returns ", shape_str(out.sizes()));
    c.target = Target::parse(Value::of(out.argmax(1)), c.batch);
  } else {
    c.target = Target::parse(target, c.batch);
  }
  c.chunk_rows = o.integer("internalBatchSize", 0, 1);
  c.devices = parse_devices(o, c.model->device());
  c.progress = std::make_shared<Progress>(req.progress);
  return c;
}

Context Context::with_rows(std::vector<torch::Tensor> new_inputs, const torch::Tensor& examples) const {
  Context c = *this;
  c.inputs = std::move(new_inputs);
  c.batch = c.inputs[0].size(0);
  c.extra = select_extra(extra, batch, examples);
  c.target = target.reindexed(examples);
  return c;
}

bool Context::per_example() const {
  if (target.per_example()) return true;
  for (const auto& e : extra)
    if (e.isTensor() && e.toTensor().dim() > 0 && e.toTensor().size(0) == batch) return true;
  return false;
}

std::vector<c10::IValue> select_extra(const std::vector<c10::IValue>& extra, int64_t batch, const torch::Tensor& examples) {
  std::vector<c10::IValue> out;
  out.reserve(extra.size());
  for (const auto& e : extra) {
    if (e.isTensor() && e.toTensor().dim() > 0 && e.toTensor().size(0) == batch) {
      const auto& t = e.toTensor();
      out.emplace_back(t.index_select(0, examples.to(t.device())));
    } else {
      out.push_back(e);
    }
  }
  return out;
}

namespace {

torch::Tensor baseline_tensor(const Value& v, const torch::Tensor& input, size_t i, bool distribution, bool allow_non_finite) {
  std::string name = "baselines[" + std::to_string(i) + "]";
  if (v.is_none()) return torch::zeros_like(input).narrow(0, 0, distribution ? 1 : input.size(0));
  if (v.is_number()) {
    if (!std::isfinite(v.number) && !allow_non_finite) fail(name, ": ", v.number, " is not finite (pass allowNonFinite: true to use it anyway)");
    torch::Tensor b = torch::full({1}, v.number, input.options());
    std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
    shape[0] = distribution ? 1 : input.size(0);
    return b.expand(shape);
  }
  if (!v.is_tensor()) fail(name, ": expected a number or a tensor, got ", v.kind_name());
  if (!v.tensor.defined()) fail(name, ": expected a tensor");
  torch::Tensor b = v.tensor.to(input.device(), input.scalar_type());
  bool rest_matches = b.dim() == input.dim() && b.sizes().slice(1) == input.sizes().slice(1);
  if (distribution) {
    if (!rest_matches)
      fail_shape(name, ": a baseline distribution needs shape [samples", (input.dim() > 1 ? ", " : ""),
           shape_str(input.sizes().slice(1)).substr(1), " to match input ", i, " of shape ", shape_str(input.sizes()),
           ", got ", shape_str(b.sizes()));
    if (b.size(0) == 0) fail_shape(name, ": the baseline distribution is empty; expected at least one reference row");
    return b;
  }
  if (rest_matches && b.size(0) == input.size(0)) return b;
  if (rest_matches && b.size(0) == 1) return b.expand(input.sizes());
  if (b.sizes() == input.sizes().slice(1)) return b.unsqueeze(0).expand(input.sizes());
  std::vector<int64_t> one(input.sizes().begin(), input.sizes().end());
  one[0] = 1;
  fail_shape(name, ": shape ", shape_str(b.sizes()), " does not match input ", i, " of shape ", shape_str(input.sizes()),
       "; expected ", shape_str(input.sizes()), " or ", shape_str(one));
}

std::vector<torch::Tensor> baselines_for(const Context& ctx, const Value& v, bool distribution) {
  size_t n = ctx.inputs.size();
  std::vector<torch::Tensor> out;
  if (v.is_list()) {
    if (v.list->size() != n) fail("baselines: expected one baseline per input (", n, "), got ", v.list->size());
    for (size_t i = 0; i < n; ++i) out.push_back(baseline_tensor((*v.list)[i], ctx.inputs[i], i, distribution, ctx.allow_non_finite));
  } else {
    if (v.is_tensor() && n > 1) fail("baselines: the model has ", n, " inputs; give an array with one baseline per input");
    for (size_t i = 0; i < n; ++i) out.push_back(baseline_tensor(v, ctx.inputs[i], i, distribution, ctx.allow_non_finite));
  }
  for (size_t i = 0; i < n; ++i) require_finite(ctx, out[i], "baselines[" + std::to_string(i) + "]");
  return out;
}

}  // namespace

std::vector<torch::Tensor> format_baselines(const Context& ctx, const Value& baselines) {
  return baselines_for(ctx, baselines, false);
}

std::vector<torch::Tensor> baseline_distribution(const Context& ctx, const Value& baselines) {
  return baselines_for(ctx, baselines, true);
}

std::vector<double> per_input_numbers(const Value& v, size_t count, const std::string& name, double fallback) {
  if (v.is_none()) return std::vector<double>(count, fallback);
  if (v.is_number()) return std::vector<double>(count, v.number);
  if (v.is_list() && v.list->size() == count) {
    std::vector<double> out;
    for (size_t i = 0; i < count; ++i) {
      const Value& e = (*v.list)[i];
      if (!e.is_number()) fail(name, "[", i, "]: expected a number, got ", e.kind_name());
      out.push_back(e.number);
    }
    return out;
  }
  fail(name, ": expected a number or one number per input (", count, ")");
}

torch::Tensor sum_rows(const std::vector<torch::Tensor>& attributions) {
  torch::Tensor total;
  for (const auto& a : attributions) {
    torch::Tensor s = a.reshape({a.size(0), -1}).sum(1);
    total = total.defined() ? total + s : s;
  }
  return total;
}

torch::Tensor per_row(const torch::Tensor& v, const torch::Tensor& like) {
  std::vector<int64_t> shape(like.dim(), 1);
  shape[0] = v.size(0);
  return v.to(like.device(), like.scalar_type()).view(shape);
}

}  // namespace tx
