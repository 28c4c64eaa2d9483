// Adversarial robustness (Captum's captum.robust): FGSM and PGD. Every
// attack step is one native forward/backward over the batch, chunked and
// spread over the worker devices like any other pass.
#include <cmath>
#include <limits>

#include "algorithms.h"
#include "engine/batching.h"
#include "engine/errors.h"
#include "engine/scheduler.h"

namespace tx {

namespace {

// Below this the reference treats a gradient entry as zero (no step there).
constexpr double kZeroGradient = 1e-6;

struct Attack {
  double lower = -std::numeric_limits<double>::infinity();
  double upper = std::numeric_limits<double>::infinity();
  bool targeted = false;
  std::vector<torch::Tensor> masks;  // undefined: every element moves
};

double required_number(const Options& o, const std::string& key, const std::string& who, const char* what) {
  if (!o.has(key)) fail(key, ": ", who, " needs ", what);
  double v = o.number(key, 0);
  if (!std::isfinite(v)) fail(key, ": expected a finite number, got ", v);
  return v;
}

Attack parse_attack(const Context& ctx, const Options& o, const std::string& who) {
  Attack a;
  if (ctx.target.is_none())
    fail("target: ", who, " needs the true labels (or the target class of a targeted attack)");
  a.lower = o.number("lowerBound", a.lower);
  a.upper = o.number("upperBound", a.upper);
  if (std::isnan(a.lower) || std::isnan(a.upper) || a.lower > a.upper)
    fail("lowerBound, upperBound: expected lowerBound <= upperBound, got ", a.lower, " and ", a.upper);
  a.targeted = o.boolean("targeted", false);
  const Value& mask = o.get("mask");
  size_t n = ctx.inputs.size();
  if (!mask.is_none()) {
    std::vector<Value> given = mask.is_list() ? *mask.list : std::vector<Value>{mask};
    if (given.size() != n) fail("mask: expected one mask per input (", n, "), got ", given.size());
    for (size_t i = 0; i < n; ++i) {
      if (!given[i].is_tensor()) fail("mask[", i, "]: expected a Tensor of zeros and ones");
      torch::Tensor m = given[i].tensor.to(ctx.inputs[i].device(), ctx.inputs[i].scalar_type());
      if (m.dim() != ctx.inputs[i].dim() || !at::is_expandable_to(m.sizes(), ctx.inputs[i].sizes()))
        fail("mask[", i, "]: expected a shape that broadcasts to the input's ", shape_str(ctx.inputs[i].sizes()),
             ", got ", shape_str(m.sizes()));
      a.masks.push_back(m);
    }
  }
  return a;
}

// Gradient of the reference's default loss, the negative log of the target
// output (for models that end in a softmax), with respect to each input.
std::vector<torch::Tensor> loss_gradients(const Context& ctx, const std::vector<torch::Tensor>& x) {
  return map_rows(ctx, identity_rows(ctx.batch), slice_of(x), [&](const ChunkCall& c) {
    torch::Tensor out = c.model.forward(c.leaves, c.extra);
    torch::Tensor loss = -torch::log(ctx.target.select_scalars(out, c.examples));
    return gradients(loss, c.leaves, false, "the inputs");
  });
}

// One signed-gradient step of size eps, then the bounds.
std::vector<torch::Tensor> fgsm_step(const Context& ctx, const Attack& a, const std::vector<torch::Tensor>& x,
                                     double eps) {
  auto grads = loss_gradients(ctx, x);
  std::vector<torch::Tensor> out;
  double signed_eps = a.targeted ? -eps : eps;
  for (size_t i = 0; i < x.size(); ++i) {
    torch::Tensor step = grads[i].sign() * signed_eps;
    if (!a.masks.empty()) step = step * a.masks[i];
    torch::Tensor moved = torch::where(grads[i].abs() > kZeroGradient, x[i] + step, x[i]);
    out.push_back(moved.clamp(a.lower, a.upper));
  }
  return out;
}

}  // namespace

Result fgsm(const Context& ctx, const Options& o) {
  Attack a = parse_attack(ctx, o, "FGSM");
  double eps = required_number(o, "epsilon", "FGSM", "the step size epsilon");
  o.reject_unknown("FGSM");
  return {fgsm_step(ctx, a, ctx.inputs, eps), {}};
}

Result pgd(const Context& ctx, const Options& o) {
  Attack a = parse_attack(ctx, o, "PGD");
  double radius = required_number(o, "radius", "PGD", "the radius of the allowed perturbation");
  double step = required_number(o, "stepSize", "PGD", "the step size stepSize");
  if (radius < 0) fail("radius: expected a number >= 0, got ", radius);
  if (!o.has("stepNum")) fail("stepNum: PGD needs the number of steps");
  int64_t steps = o.integer("stepNum", 1, 0);
  std::string norm = o.choice("norm", "Linf", {"Linf", "L2"});
  bool random_start = o.boolean("randomStart", false);
  o.reject_unknown("PGD");

  // Back into the ball of `radius` around the original inputs.
  auto project = [&](const torch::Tensor& center, const torch::Tensor& x) {
    torch::Tensor diff = x - center;
    diff = norm == "Linf" ? diff.clamp(-radius, radius) : diff.renorm(2, 0, radius);
    return center + diff;
  };
  std::vector<torch::Tensor> x = ctx.inputs;
  if (random_start)
    for (size_t i = 0; i < x.size(); ++i) {
      torch::Tensor offset;
      if (norm == "Linf") {
        offset = torch::rand_like(x[i]) * (2 * radius) - radius;
      } else {
        // Uniform in the L2 ball: a random direction, a radius by the d-th root.
        torch::Tensor u = torch::randn_like(x[i]);
        int64_t b = u.size(0);
        torch::Tensor flat = u.reshape({b, -1});
        torch::Tensor unit = (flat / flat.norm(2, {1}, true).clamp_min(1e-12)).view(u.sizes());
        double d = static_cast<double>(x[i][0].numel());
        torch::Tensor r = torch::rand({b}, x[i].options()).pow(1.0 / d) * radius;
        offset = per_row(r, unit) * unit;
      }
      if (!a.masks.empty()) offset = offset * a.masks[i];
      x[i] = (x[i] + offset).clamp(a.lower, a.upper);
    }
  for (int64_t s = 0; s < steps; ++s) {
    yield_point();
    x = fgsm_step(ctx, a, x, step);
    for (size_t i = 0; i < x.size(); ++i) x[i] = project(ctx.inputs[i], x[i]).clamp(a.lower, a.upper);
  }
  return {x, {}};
}

}  // namespace tx
