// Influence functions (NaiveInfluenceFunction, ArnoldiInfluenceFunction):
// the influence of training example z on test example x is
// g(x)^T (H + reg I)^-1 g(z), with H the Hessian of the training loss summed
// over the Hessian set, inverted on its top eigenvectors: R = V diag(l)^-1/2
// keeps the projectionDim largest eigenvalues above hessianInverseTol, and
// every example is embedded once as g^T R. The naive method forms H
// (one backward pass of the gradient per parameter); Arnoldi's builds a
// Krylov basis from Hessian-vector products and takes the eigenvectors of
// H restricted to it.
#include <cmath>

#include "algorithms.h"
#include "engine/errors.h"
#include "engine/scheduler.h"
#include "influence/influence.h"

namespace tx {

namespace {

torch::Tensor flat(const std::vector<torch::Tensor>& grads, const std::vector<torch::Tensor>& params) {
  std::vector<torch::Tensor> parts;
  for (size_t i = 0; i < grads.size(); ++i)
    parts.push_back(grads[i].defined() ? grads[i].reshape(-1) : torch::zeros({params[i].numel()}, params[i].options()));
  return torch::cat(parts);
}

// The gradient of the slice's summed loss, kept differentiable.
torch::Tensor loss_gradient(const Context& part, const GradientSpec& spec, const torch::Tensor& labels,
                            const std::vector<torch::Tensor>& params) {
  torch::Tensor out = part.model->forward(part.inputs, part.extra);
  spec.loss.check(out, labels, "labels");
  torch::Tensor total = spec.loss.per_example(out, labels).sum();
  if (!total.requires_grad()) fail("model output: does not depend on the parameters (is the output detached, or computed under no_grad?)");
  return flat(torch::autograd::grad({total}, params, {}, /*retain_graph=*/true, /*create_graph=*/true, /*allow_unused=*/true), params);
}

// Eigenvalues (ascending) and eigenvectors (columns) of H + reg I above `tol`,
// the `k` largest, each vector signed so that its entries sum to more than
// zero: the reference's choice among +-v. LAPACK's general solver, as the reference.
std::pair<torch::Tensor, torch::Tensor> top_eigen(const torch::Tensor& h, int64_t k, double reg, double tol) {
  torch::Tensor m = h + torch::eye(h.size(0), h.options()) * reg;
  auto [values, vectors] = torch::linalg_eig(m);
  torch::Tensor l = at::real(values), v = at::real(vectors);
  auto [sorted, order] = l.sort();
  v = v.index_select(1, order);
  torch::Tensor keep = sorted > tol;
  l = sorted.masked_select(keep);
  v = v.index_select(1, keep.nonzero().reshape(-1));
  if (k > 0 && l.size(0) > k) {
    l = l.narrow(0, l.size(0) - k, k);
    v = v.narrow(1, v.size(1) - k, k);
  }
  torch::Tensor sign = (v.sum(0) > 0).to(v.scalar_type()) * 2 - 1;
  return {l, v * sign.unsqueeze(0)};
}

struct Fit {
  GradientSpec spec;
  torch::Tensor labels;
  std::vector<torch::Tensor> params;
  int64_t dims = 0;
  int64_t projection = 50;
  double reg = 0, tol = 0;
};

Fit fit_options(const Context& ctx, const Options& o, double reg, double tol) {
  Fit f;
  f.spec = gradient_spec(o, *ctx.source, false);
  f.labels = labels_option(o, "labels", ctx.batch, ctx.source->device());
  f.projection = o.integer("projectionDim", 50, 1);
  f.reg = o.number("hessianReg", reg);
  f.tol = o.number("hessianInverseTol", tol);
  if (f.reg < 0) fail("hessianReg: expected a number >= 0, got ", f.reg);
  f.params = measured_parameters(*ctx.source, f.spec);
  for (const auto& p : f.params) f.dims += p.numel();
  return f;
}

Result projection_result(const torch::Tensor& basis, const torch::Tensor& l, const torch::Tensor& w) {
  if (l.numel() == 0)
    fail("hessianInverseTol: no eigenvalue of the regularised Hessian is above it, so it has no inverse to take (raise hessianReg)");
  torch::Tensor r = (basis.defined() ? basis.mm(w) : w) / l.sqrt().unsqueeze(0);
  return {{r, l}, {}};
}

}  // namespace

// NaiveInfluenceFunction's projection: the Hessian formed, summed over the
// slices of the Hessian set. Returns [R (parameters x kept), eigenvalues].
Result influence_function_naive(const Context& ctx, const Options& o) {
  Fit f = fit_options(ctx, o, 1e-6, 1e-5);
  o.reject_unknown("NaiveInfluenceFunction");
  require_budget(ctx, double(f.dims) * f.dims * 4 * 4, concat("the Hessian of ", f.dims, " parameters"));
  torch::Tensor h = torch::zeros({f.dims, f.dims}, f.params[0].options().requires_grad(false));
  ctx.progress->expect(ctx.batch * f.dims);
  by_slices(ctx, 0, f.labels, [&](const Context& part, const torch::Tensor& labels) {
    torch::Tensor g = loss_gradient(part, f.spec, labels, f.params);
    for (int64_t i = 0; i < f.dims; ++i) {
      if (i % 16 == 0) check_cancelled();
      auto row = torch::autograd::grad({g[i]}, f.params, {}, /*retain_graph=*/i + 1 < f.dims, false, /*allow_unused=*/true);
      h[i] += flat(row, f.params).detach();
      ctx.progress->advance(part.batch);
    }
    return torch::zeros({0});
  });
  auto [l, v] = top_eigen(h, f.projection, f.reg, f.tol);
  return projection_result({}, l, v);
}

// ArnoldiInfluenceFunction's projection: arnoldiDim steps of the Arnoldi
// iteration from a Gaussian start (drawn from `seed` as the reference draws
// it, one parameter at a time), Hessian-vector products summed over the
// Hessian set, stopping early when the residual's norm falls below
// arnoldiTol; the last basis vector and row are dropped, as the reference does.
Result influence_function_arnoldi(const Context& ctx, const Options& o) {
  Fit f = fit_options(ctx, o, 1e-3, 1e-4);
  int64_t steps = o.integer("arnoldiDim", 200, 2);
  double stop = o.number("arnoldiTol", 1e-1);
  int64_t seed = o.integer("seed", 0, 0);
  o.reject_unknown("ArnoldiInfluenceFunction");
  require_budget(ctx, double(f.dims) * (steps + 2) * 4, concat("an Arnoldi basis of ", steps, " vectors of ", f.dims, " parameters"));
  auto hvp = [&](const torch::Tensor& v) {
    torch::Tensor total = torch::zeros({f.dims}, v.options());
    by_slices(ctx, 0, f.labels, [&](const Context& part, const torch::Tensor& labels) {
      torch::Tensor g = loss_gradient(part, f.spec, labels, f.params);
      total += flat(torch::autograd::grad({(g * v).sum()}, f.params, {}, false, false, /*allow_unused=*/true), f.params).detach();
      return torch::zeros({0});
    });
    return total;
  };
  at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
  std::vector<torch::Tensor> start;
  for (const auto& p : f.params) start.push_back(at::randn(p.sizes(), gen, p.options().device(torch::kCPU).requires_grad(false)).reshape(-1));
  torch::Tensor b = torch::cat(start).to(f.params[0].device());
  std::vector<torch::Tensor> q = {b / b.dot(b).sqrt()};
  torch::Tensor hm = torch::zeros({steps + 1, steps}, b.options());
  ctx.progress->expect(steps);
  int64_t k = 1;
  for (; k <= steps; ++k) {
    check_cancelled();
    torch::Tensor v = hvp(q[k - 1]);
    for (int64_t i = 0; i < k; ++i) {
      torch::Tensor h = q[i].dot(v);
      hm[i][k - 1] = h;
      v = v - h * q[i];
    }
    torch::Tensor norm = v.dot(v).sqrt();
    hm[k][k - 1] = norm;
    ctx.progress->advance(1);
    if (norm.item<double>() < stop) break;
    q.push_back(v / norm);
  }
  if (k > steps) k = steps;
  int64_t m = k - 1;  // the basis kept: the last vector (and the matrix's last row) dropped
  if (m < 1) fail("arnoldiTol: the Arnoldi basis is empty (the first residual was already below it): lower arnoldiTol");
  torch::Tensor basis = torch::stack(std::vector<torch::Tensor>(q.begin(), q.begin() + m), 1);  // [D, m]
  auto [l, w] = top_eigen(hm.narrow(0, 0, m).narrow(1, 0, m), f.projection, f.reg, f.tol);
  return projection_result(basis, l, w);
}

// Examples embedded by an influence function's projection: per-example loss
// gradients (in the parameters' order) times R. With `norms`, their squared
// norms (self-influence) instead.
Result influence_embed(const Context& ctx, const Options& o) {
  GradientSpec spec = gradient_spec(o, *ctx.source, false);
  torch::Tensor labels = labels_option(o, "labels", ctx.batch, ctx.source->device());
  const Value& r = o.get("projection");
  bool norms = o.boolean("norms", false);
  o.reject_unknown("InfluenceEmbed");
  if (!r.is_tensor() || r.tensor.dim() != 2) fail("projection: expected the projection R made by the fit");
  torch::Tensor e = by_slices(ctx, 0, labels, [&](const Context& part, const torch::Tensor& y) {
    torch::Tensor g = sketch_flat(example_gradients(part, *part.source, spec, y));
    if (g.size(1) != r.tensor.size(0)) fail("projection: made for ", r.tensor.size(0), " parameters, not ", g.size(1));
    torch::Tensor emb = g.mm(r.tensor.to(g.device(), g.scalar_type()));
    return norms ? emb.pow(2).sum(1) : emb;
  });
  return {{e}, {}};
}

}  // namespace tx
