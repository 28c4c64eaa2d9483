// Concept activation vectors for TCAV (Captum's captum.concept): linear
// classifiers that separate the layer activations of concepts, trained
// natively. The activations and the directional derivatives come from the
// layer methods (LayerActivation, LayerGradientXActivation).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include <torch/optim/lbfgs.h>

#include "algorithms.h"
#include "engine/errors.h"
#include "engine/scheduler.h"

namespace tx {

namespace {

// One-vs-rest linear SVM by stochastic gradient descent on the hinge loss
// with an L2 penalty: the reference's default classifier (scikit-learn's
// SGDClassifier, alpha 0.01, learning rate "optimal", stopping when an epoch
// improves the loss by less than tol for 5 epochs).
std::pair<torch::Tensor, torch::Tensor> sgd_hinge(const torch::Tensor& x, const torch::Tensor& sign, double alpha,
                                                  int64_t max_iter, double tol, std::mt19937_64& rng) {
  const int64_t n = x.size(0), d = x.size(1);
  auto X = x.accessor<double, 2>();
  auto Y = sign.accessor<double, 1>();
  std::vector<double> w(d, 0.0);
  double wscale = 1.0, b = 0.0;
  // Initial step size, as the "optimal" schedule chooses it.
  double typw = std::sqrt(1.0 / std::sqrt(alpha));
  double eta0 = typw / std::max(1.0, 1.0 + typw);
  double t = 1.0 / (eta0 * alpha);
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  double best = std::numeric_limits<double>::infinity();
  int no_change = 0;
  for (int64_t epoch = 0; epoch < max_iter; ++epoch) {
    check_cancelled();
    std::shuffle(order.begin(), order.end(), rng);
    double loss = 0;
    for (int64_t k : order) {
      double eta = 1.0 / (alpha * t);
      double p = 0;
      for (int64_t j = 0; j < d; ++j) p += w[j] * X[k][j];
      p = p * wscale + b;
      double z = Y[k] * p;
      loss += std::max(0.0, 1.0 - z);
      wscale *= std::max(1e-9, 1.0 - eta * alpha);
      if (z < 1.0) {
        double step = eta * Y[k] / wscale;
        for (int64_t j = 0; j < d; ++j) w[j] += step * X[k][j];
        b += eta * Y[k];
      }
      if (wscale < 1e-9) {
        for (auto& v : w) v *= wscale;
        wscale = 1.0;
      }
      t += 1;
    }
    if (loss > best - tol * n) {
      if (++no_change >= 5) break;
    } else {
      no_change = 0;
    }
    best = std::min(best, loss);
  }
  torch::Tensor weights = torch::empty({d}, torch::kDouble);
  for (int64_t j = 0; j < d; ++j) weights[j] = w[j] * wscale;
  return {weights, torch::tensor(b, torch::kDouble)};
}

// Multinomial logistic regression with an L2 penalty, by L-BFGS.
std::pair<torch::Tensor, torch::Tensor> logistic(const torch::Tensor& x, const torch::Tensor& labels, int64_t classes,
                                                 double alpha, int64_t max_iter) {
  torch::Tensor w = torch::zeros({classes, x.size(1)}, torch::kDouble).requires_grad_(true);
  torch::Tensor b = torch::zeros({classes}, torch::kDouble).requires_grad_(true);
  torch::optim::LBFGS opt({w, b}, torch::optim::LBFGSOptions(1).max_iter(static_cast<int>(max_iter)).line_search_fn("strong_wolfe"));
  auto closure = [&] {
    opt.zero_grad();
    torch::Tensor loss = torch::nll_loss(torch::log_softmax(torch::addmm(b, x, w.t()), 1), labels) + 0.5 * alpha * w.pow(2).sum();
    loss.backward();
    return loss;
  };
  opt.step(closure);
  return {w.detach(), b.detach()};
}

}  // namespace

// inputs: [activations [N, D], labels [N] (concept ids)]. Returns the CAVs
// (one row per class, in ascending class order; two classes give [-w, w] as
// the reference does), the classes, and the accuracy on the held-out split.
Result train_cav(const Context& ctx, const Options& o) {
  if (ctx.inputs.size() != 2) fail("inputs: expected [activations, labels]");
  torch::Tensor x = ctx.inputs[0].to(torch::kCPU, torch::kDouble), labels = ctx.inputs[1].to(torch::kCPU);
  if (x.dim() < 1) fail("activations: expected [examples, ...], got a scalar");
  x = x.reshape({x.size(0), -1});
  if (labels.dim() != 1 || labels.size(0) != x.size(0) || at::isFloatingType(labels.scalar_type()))
    fail("labels: expected one integer label per example (", x.size(0), ")");
  labels = labels.to(torch::kLong);
  std::string kind = o.choice("classifier", "sgd", {"sgd", "logistic"});
  double alpha = o.number("alpha", 0.01);
  if (!(alpha > 0) || !std::isfinite(alpha)) fail("alpha: expected a number > 0, got ", alpha);
  int64_t max_iter = o.integer("maxIter", kind == "sgd" ? 1000 : 100, 1);
  double tol = o.number("tol", 1e-3);
  double split = o.number("testSplit", 0.33);
  if (!(split >= 0 && split < 1)) fail("testSplit: expected a number in [0, 1), got ", split);
  int64_t seed = o.integer("seed", 0, 0);
  o.reject_unknown("TrainCAV");

  torch::Tensor classes = std::get<0>(at::_unique(labels, /*sorted=*/true));
  int64_t c = classes.size(0);
  if (c < 2) fail("concepts: a CAV needs examples of at least two concepts, got ", c);
  torch::Tensor index = torch::searchsorted(classes, labels);
  // A shuffled split: the first `split` share is held out for the accuracy.
  std::mt19937_64 rng(static_cast<uint64_t>(seed));
  std::vector<int64_t> order(x.size(0));
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  int64_t test = static_cast<int64_t>(split * x.size(0));
  if (x.size(0) - test < 2) fail("concepts: too few examples to train a CAV (", x.size(0), ")");
  torch::Tensor perm = torch::tensor(order, torch::kLong);
  torch::Tensor test_rows = perm.slice(0, 0, test), train_rows = perm.slice(0, test);
  torch::Tensor xt = x.index_select(0, train_rows), yt = index.index_select(0, train_rows);

  torch::Tensor weights, bias;
  if (kind == "logistic") {
    std::tie(weights, bias) = logistic(xt, yt, c, alpha, max_iter);
    if (c == 2) {
      // The binary case as one direction, like the reference's linear models.
      torch::Tensor w = (weights[1] - weights[0]) / 2;
      weights = torch::stack({-w, w});
    }
  } else if (c == 2) {
    torch::Tensor sign = (yt == 1).to(torch::kDouble) * 2 - 1;
    auto [w, b] = sgd_hinge(xt, sign, alpha, max_iter, tol, rng);
    weights = torch::stack({-w, w});
    bias = torch::stack({-b, b});
  } else {
    std::vector<torch::Tensor> ws, bs;
    for (int64_t k = 0; k < c; ++k) {
      auto [w, b] = sgd_hinge(xt, (yt == k).to(torch::kDouble) * 2 - 1, alpha, max_iter, tol, rng);
      ws.push_back(w);
      bs.push_back(b);
    }
    weights = torch::stack(ws);
    bias = torch::stack(bs);
  }
  torch::Tensor accuracy = torch::tensor(std::numeric_limits<double>::quiet_NaN());
  if (test > 0) {
    torch::Tensor scores = torch::addmm(bias, x.index_select(0, test_rows), weights.t());
    accuracy = (scores.argmax(1) == index.index_select(0, test_rows)).to(torch::kDouble).mean();
  }
  return {{weights.to(torch::kFloat), classes, accuracy.to(torch::kFloat)}, {}};
}

}  // namespace tx

namespace tx {

// inputs: [layer attributions [N, D], CAVs [C, D]]. Returns each input's
// directional derivative along each CAV, [N, C], then TCAV's sign count
// (share of positive ones) and magnitude (their mean) per CAV, [C] each.
Result project_cavs(const Context& ctx, const Options& o) {
  o.reject_unknown("ProjectCAVs");
  if (ctx.inputs.size() != 2) fail("inputs: expected [layer attributions, CAVs]");
  torch::Tensor a = ctx.inputs[0].to(torch::kFloat), v = ctx.inputs[1].to(ctx.inputs[0].device(), torch::kFloat);
  a = a.reshape({a.size(0), -1});
  if (v.dim() != 2 || v.size(1) != a.size(1))
    fail("CAVs: expected [concepts, ", a.size(1), "] to match the layer, got ", shape_str(v.sizes()));
  torch::Tensor d = a.matmul(v.t());
  return {{d, (d > 0).to(torch::kFloat).mean(0), d.mean(0)}, {}};
}

}  // namespace tx
