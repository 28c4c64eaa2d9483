// Surrogate-model family: Lime and KernelShap. Random coalitions of features
// are evaluated in batches, weighted, and a linear model fitted to them in
// C++; its coefficients are the attributions.
#include <cmath>

#include "algorithms.h"
#include "engine/errors.h"
#include "engine/scheduler.h"
#include "attr/perturbation.h"

namespace tx {

namespace {

// Weighted linear fit with an intercept, y ~ X beta + c, as scikit-learn's
// Lasso (sum w r^2 / (2 sum w) + alpha |beta|_1), Ridge (sum w r^2 +
// alpha |beta|^2) and LinearRegression fit it. Centring by the weighted
// means removes the intercept.
enum class Fit { Lasso, Ridge, Linear };

torch::Tensor fit_linear(torch::Tensor x, torch::Tensor y, torch::Tensor w, Fit kind, double alpha) {
  x = x.to(torch::kDouble);
  y = y.to(torch::kDouble);
  w = w.to(torch::kDouble);
  double total = w.sum().item<double>();
  w = w / total;
  torch::Tensor xc = x - (w.unsqueeze(1) * x).sum(0, true), yc = y - (w * y).sum();
  torch::Tensor sw = w.sqrt();
  torch::Tensor a = xc * sw.unsqueeze(1), b = yc * sw;  // the weighted problem as plain least squares
  int64_t f = x.size(1);
  if (kind == Fit::Linear) {
    // The minimum-norm solution, as scipy's lstsq (gelsd) gives it.
    return std::get<0>(torch::linalg_lstsq(a, b.unsqueeze(1), {}, "gelsd")).squeeze(1);
  }
  int64_t n = a.size(0);
  if (kind == Fit::Ridge) {
    // Ridge's alpha is on the unnormalised weighted squared error: scale it to the normalised weights.
    // With more features than samples (an image's pixels), the n x n dual form:
    // an f x f Gram matrix of 150,528 pixels would not fit in memory.
    double reg = alpha / total;
    if (f > n) return a.t().mv(torch::linalg_solve(a.mm(a.t()) + torch::eye(n, torch::kDouble) * reg, b));
    return torch::linalg_solve(a.t().mm(a) + torch::eye(f, torch::kDouble) * reg, a.t().mv(b));
  }
  // Lasso by cyclic coordinate descent, keeping the residual b - a beta up to
  // date (O(samples) a coordinate, no f x f Gram matrix). A sweep is where a
  // cancelled or timed-out request stops.
  torch::Tensor at = a.t().contiguous();  // a column per row, read in order
  auto cols = at.accessor<double, 2>();
  std::vector<double> beta(f, 0.0), norm(f, 0.0), res(b.data_ptr<double>(), b.data_ptr<double>() + n);
  for (int64_t j = 0; j < f; ++j)
    for (int64_t i = 0; i < n; ++i) norm[j] += cols[j][i] * cols[j][i];
  for (int iter = 0; iter < 10000; ++iter) {
    check_cancelled();
    double change = 0, largest = 0;
    for (int64_t j = 0; j < f; ++j) {
      if (norm[j] <= 0) continue;
      double rho = norm[j] * beta[j];
      for (int64_t i = 0; i < n; ++i) rho += cols[j][i] * res[i];
      double next = (rho > alpha ? rho - alpha : rho < -alpha ? rho + alpha : 0.0) / norm[j];
      double step = next - beta[j];
      if (step != 0) {
        for (int64_t i = 0; i < n; ++i) res[i] -= cols[j][i] * step;
        beta[j] = next;
      }
      change = std::max(change, std::abs(step));
      largest = std::max(largest, std::abs(next));
    }
    if (change <= 1e-10 * std::max(1.0, largest)) break;
  }
  return torch::tensor(beta, torch::kDouble);
}

// Per example and feature: sums over the feature's elements of x*x, x*b,
// b*b and (x-b)^2, for similarities without materialising perturbed inputs.
struct FeatureSums {
  torch::Tensor xx, xb, bb, dd;  // [N, F]
};

FeatureSums feature_sums(const Context& ctx, const Features& f, const std::vector<torch::Tensor>& baselines) {
  int64_t n = ctx.batch;
  auto opts = torch::TensorOptions().dtype(torch::kDouble).device(ctx.model->device());
  FeatureSums s{torch::zeros({n, f.count}, opts), torch::zeros({n, f.count}, opts), torch::zeros({n, f.count}, opts),
                torch::zeros({n, f.count}, opts)};
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    torch::Tensor x = ctx.inputs[i].to(torch::kDouble).reshape({n, -1});
    torch::Tensor b = baselines[i].to(torch::kDouble).expand(ctx.inputs[i].sizes()).reshape({n, -1});
    torch::Tensor ids = f.masks[i].expand(ctx.inputs[i].sizes()).reshape({n, -1});
    s.xx.scatter_add_(1, ids, x * x);
    s.xb.scatter_add_(1, ids, x * b);
    s.bb.scatter_add_(1, ids, b * b);
    s.dd.scatter_add_(1, ids, (x - b).pow(2));
  }
  return s;
}

Perturbation absent_per_example(const Context& ctx, const Features& f, const std::vector<torch::Tensor>& baselines,
                                const torch::Tensor& absent /* [k, B, F] bool */) {
  Perturbation p;
  int64_t k = absent.size(0), rows = absent.size(1);
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    const torch::Tensor& x = ctx.inputs[i];
    std::vector<int64_t> shape(x.sizes().begin(), x.sizes().end());
    shape[0] = rows;
    torch::Tensor ids = f.masks[i].expand(shape).reshape({1, rows, -1}).expand({k, rows, -1});
    shape.insert(shape.begin(), k);
    p.replace.push_back(absent.gather(2, ids).view(shape));
    p.with.push_back(baselines[i].unsqueeze(0));
  }
  return p;
}

// The inputs of example g (all examples for g < 0), as a list for callbacks.
Value example_inputs(const Context& ctx, int64_t g) {
  List out;
  for (const auto& x : ctx.inputs) out.push_back(Value::of(g < 0 ? x : x.narrow(0, g, 1)));
  return Value::of(out);
}

Result surrogate(const Context& ctx, const Options& o, const std::string& name, bool kernel_shap) {
  auto baselines = format_baselines(ctx, o.get("baselines"));
  Features f = feature_mask_option(ctx, o.get("featureMask"));
  int64_t samples = o.integer("nSamples", kernel_shap ? 25 : 50, 1);
  bool input_shape = o.boolean("returnInputShape", true);
  Fit fit = Fit::Linear;
  double alpha = 0, width = 1;
  std::string distance = "cosine";
  if (!kernel_shap) {
    std::string model = o.choice("interpretableModel", "lasso", {"lasso", "ridge", "linear"});
    fit = model == "lasso" ? Fit::Lasso : model == "ridge" ? Fit::Ridge : Fit::Linear;
    alpha = o.number("alpha", model == "ridge" ? 1.0 : 0.01);
    if (alpha < 0) fail("alpha: expected a number >= 0, got ", alpha);
    distance = o.choice("distanceMode", "cosine", {"cosine", "euclidean"});
    width = o.number("kernelWidth", 1.0);
    if (width <= 0) fail("kernelWidth: expected a positive number, got ", width);
  }
  // Caller-supplied replacements for the sampling and the similarity (Lime only).
  const Value& perturb_fn = kernel_shap ? Value() : o.get("perturbFunc");
  const Value& similarity_fn = kernel_shap ? Value() : o.get("similarityFunc");
  for (const auto* fn : {&perturb_fn, &similarity_fn})
    if (!fn->is_none() && fn->kind != Value::Kind::Function)
      fail(fn == &perturb_fn ? "perturbFunc" : "similarityFunc", ": expected a function, got ", fn->kind_name());
  int64_t per_eval = perturbations_per_eval_option(ctx, o, samples);
  o.reject_unknown(name);

  torch::Tensor initial = evaluate_inputs(ctx);
  bool aggregate = initial.size(1) == 1 && ctx.batch > 1;
  int64_t groups = aggregate ? 1 : ctx.batch;  // one surrogate per example (or one per batch)
  // Coalitions (bool), their weights and the least-squares design (double);
  // KernelShap's draws also rank random keys (float, two int64 orders).
  require_budget(ctx, double(samples) * groups * f.count * (kernel_shap ? 38 : 18), concat(name, "'s ", samples, " samples of ", f.count, " features"));

  // Coalitions: 1 = the feature keeps its input value. KernelShap starts with
  // all and none, then draws the coalition size from the Shapley kernel's
  // distribution and a uniform subset of that size.
  torch::Tensor z;
  int64_t fc = f.count;
  if (kernel_shap) {
    z = torch::zeros({samples, groups, fc}, torch::kBool);
    if (samples > 0) z[0].fill_(true);
    std::vector<double> p;
    for (int64_t k = 1; k < fc; ++k) p.push_back((fc - 1.0) / (k * (fc - k)));
    if (samples > 2) {
      // All draws at once (a few ops per draw took 3 ms of a 200-sample call
      // on a small model): a size k per draw, and the k features whose
      // random keys rank lowest, a uniform subset of that size.
      int64_t draws = samples - 2;
      torch::Tensor sizes = fc > 1 ? torch::multinomial(torch::tensor(p, torch::kDouble), draws * groups, true) + 1
                                   : torch::ones({draws * groups}, torch::kLong);
      torch::Tensor rank = torch::rand({draws, groups, fc}).argsort(int64_t{2}, false).argsort(int64_t{2}, false);
      z.slice(0, 2).copy_(rank < sizes.view({draws, groups, 1}));
    }
  } else if (!perturb_fn.is_none()) {
    z = torch::empty({samples, groups, fc}, torch::kBool);
    for (int64_t g = 0; g < groups; ++g)
      for (int64_t s = 0; s < samples; ++s) {
        check_cancelled();
        Value r = (*perturb_fn.function)({example_inputs(ctx, aggregate ? -1 : g)});
        if (!r.is_tensor() || r.tensor.numel() != fc)
          fail("perturbFunc: expected a tensor of ", fc, " zeros and ones (one per feature), got ",
               r.is_tensor() ? "shape " + shape_str(r.tensor.sizes()) : r.kind_name());
        z[s][g].copy_(r.tensor.flatten().to(torch::kCPU) != 0);
      }
  } else {
    z = torch::rand({samples, groups, fc}) < 0.5;
  }
  auto dev = ctx.model->device();
  torch::Tensor absent = z.logical_not().to(dev);
  torch::Tensor v = evaluate_perturbations(ctx, samples, per_eval, [&](int64_t first, int64_t k) {
    torch::Tensor a = absent.slice(0, first, first + k);
    return absent_per_example(ctx, f, baselines, aggregate ? a.expand({k, ctx.batch, fc}) : a);
  });  // [S, groups]

  // Sample weights.
  torch::Tensor zd = z.to(torch::kDouble).to(dev), weights;
  if (kernel_shap) {
    // The kernel is in the sampling; all and none get a large weight, as in the reference.
    weights = torch::ones({samples, groups}, zd.options());
    torch::Tensor kept = z.sum(2).to(dev);
    weights.masked_fill_((kept == 0).logical_or(kept == fc), 1e6);
  } else if (!similarity_fn.is_none()) {
    weights = torch::empty({samples, groups}, torch::kDouble);
    for (int64_t g = 0; g < groups; ++g) {
      Value original = example_inputs(ctx, aggregate ? -1 : g);
      for (int64_t s = 0; s < samples; ++s) {
        check_cancelled();
        torch::Tensor row = z[s].slice(0, aggregate ? 0 : g, (aggregate ? 0 : g) + 1);  // [1, F]
        Perturbation p = absent_per_example(ctx, f, baselines, row.logical_not().to(dev).unsqueeze(0).expand({1, ctx.batch, fc}));
        List perturbed;
        for (size_t i = 0; i < ctx.inputs.size(); ++i) {
          torch::Tensor x = torch::where(p.replace[i], p.with[i].to(ctx.inputs[i].dtype()), ctx.inputs[i].unsqueeze(0)).squeeze(0);
          perturbed.push_back(Value::of(aggregate ? x : x.narrow(0, g, 1)));
        }
        Value w = (*similarity_fn.function)({original, Value::of(perturbed), Value::of(row.to(torch::kLong))});
        if (!w.is_number()) fail("similarityFunc: expected a number, got ", w.kind_name());
        weights[s][g] = w.number;
      }
    }
    weights = weights.to(dev);
  } else {
    FeatureSums s = feature_sums(ctx, f, baselines);
    auto pick = [&](const torch::Tensor& t) { return aggregate ? t.sum(0, true) : t; };  // [groups, F]
    torch::Tensor xx = pick(s.xx), xb = pick(s.xb), bb = pick(s.bb), dd = pick(s.dd);
    torch::Tensor d;
    if (distance == "cosine") {
      torch::Tensor dot = (zd * xx).sum(2) + ((1 - zd) * xb).sum(2);
      torch::Tensor norm_p = ((zd * xx).sum(2) + ((1 - zd) * bb).sum(2)).sqrt();
      torch::Tensor norm_x = xx.sum(1).sqrt().unsqueeze(0);
      d = 1 - dot / (norm_x * norm_p).clamp_min(1e-8);  // cosine similarity's eps
    } else {
      d = ((1 - zd) * dd).sum(2).sqrt();
    }
    weights = torch::exp(-d.pow(2) / (2 * width * width));
  }

  torch::Tensor coefs = torch::empty({fc, groups}, torch::kDouble);
  for (int64_t g = 0; g < groups; ++g)
    coefs.select(1, g).copy_(fit_linear(zd.select(1, g).cpu(), v.select(1, g).cpu(), weights.select(1, g).cpu(), fit, alpha));
  auto dtype = at::isFloatingType(ctx.inputs[0].scalar_type()) ? ctx.inputs[0].scalar_type() : initial.scalar_type();
  coefs = coefs.to(dev, dtype);
  if (input_shape) return {scores_to_inputs(ctx, f, coefs), {}};
  return {{coefs.t().contiguous()}, {}};
}

}  // namespace

Result lime(const Context& ctx, const Options& o) { return surrogate(ctx, o, "Lime", false); }
Result kernel_shap(const Context& ctx, const Options& o) { return surrogate(ctx, o, "KernelShap", true); }

}  // namespace tx
