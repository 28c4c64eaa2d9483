// C++ tests of the core, runnable with LibTorch alone (ctest), e.g. on a GPU
// machine: core_tests <fixtures/golden> [device].
#include <cmath>
#include <functional>
#include <iostream>
#include <limits>

#include "algorithms.h"
#include "engine/approximation.h"
#include "engine/errors.h"
#include "engine/lru_cache.h"
#include "graph/rule_ops.h"

using namespace tx;

namespace {

int failures = 0, passed = 0;
std::string fixtures;
std::string device = "cpu";

void check(bool ok, const std::string& what) {
  if (ok) {
    ++passed;
  } else {
    ++failures;
    std::cerr << "FAILED: " << what << "\n";
  }
}

bool close(const torch::Tensor& a, const torch::Tensor& b, double tol = 1e-4) {
  auto x = a.to(torch::kCPU, torch::kDouble), y = b.to(torch::kCPU, torch::kDouble);
  return x.sizes() == y.sizes() && (x - y).abs().max().item<double>() <= tol * std::max(1.0, y.abs().max().item<double>());
}

void expect_error(const std::function<void()>& f, const std::string& fragment, const std::string& what) {
  try {
    f();
    check(false, what + " (no error)");
  } catch (const std::exception& e) {
    bool ok = std::string(e.what()).find(fragment) != std::string::npos;
    if (!ok) std::cerr << "  message was: " << e.what() << "\n";
    check(ok, what);
  }
}

Request request(const std::string& model, std::vector<torch::Tensor> inputs, Object options) {
  return {Model::load(fixtures + "/" + model, device), std::move(inputs), Options(std::move(options))};
}

void test_quadrature() {
  std::vector<double> x, w;
  for (int64_t n = 1; n <= 64; n = n * 2 + 1) {
    gauss_legendre(n, x, w);
    double sum = 0;
    for (double v : w) sum += v;
    check(std::abs(sum - 2.0) < 1e-12, "Gauss-Legendre weights sum to 2, n=" + std::to_string(n));
    // Exact for polynomials of degree 2n-1: integral of x^(2n-2) over [-1, 1].
    int64_t d = 2 * n - 2;
    double q = 0;
    for (int64_t i = 0; i < n; ++i) q += w[i] * std::pow(x[i], static_cast<double>(d));
    check(std::abs(q - 2.0 / (d + 1)) < 1e-10, "Gauss-Legendre exact to degree 2n-1, n=" + std::to_string(n));
    for (int64_t i = 1; i < n; ++i) check(x[i] > x[i - 1], "Gauss-Legendre nodes ascend");
  }
  gauss_legendre(3, x, w);
  check(std::abs(x[2] - std::sqrt(0.6)) < 1e-14 && std::abs(w[1] - 8.0 / 9.0) < 1e-14, "Gauss-Legendre n=3 closed form");
  // Above 100 nodes most roots come from an asymptotic expansion: check them
  // against the plain recurrence, in long double, one Newton step from each
  // returned node. The tolerances allow for the reference's own roundings
  // (~n ulps, and ~1/(1 - x^2) ulps near the ends) in long double's ulps:
  // tight where it has 64 bits, as loose as they must be where it has 53.
  const double ulp = std::numeric_limits<long double>::epsilon();
  auto legendre = [](int64_t n, long double t, long double& p, long double& dp) {  // P_n(t), P_n'(t)
    long double p0 = 1;
    p = t;
    for (int64_t k = 2; k <= n; ++k) {
      long double p2 = ((2 * k - 1) * t * p - (k - 1) * p0) / k;
      p0 = p, p = p2;
    }
    dp = n * (p0 - t * p) / ((1 - t) * (1 + t));
  };
  for (int64_t n : {150, 1000, 4097}) {
    gauss_legendre(n, x, w);
    double node_err = 0, weight_err = 0, sum = 0;  // errors in units of their tolerance
    bool ordered = x[0] > -1 && x[n - 1] < 1;
    for (int64_t i = 0; i < n; ++i) {
      long double r = x[i], p, dp;
      legendre(n, r, p, dp);
      r -= p / dp;
      legendre(n, r, p, dp);
      double s2 = static_cast<double>((1 - r) * (1 + r)), reference = static_cast<double>(2 / ((1 - r) * (1 + r) * dp * dp));
      node_err = std::max(node_err, static_cast<double>(std::abs(x[i] - r)) / (2e-15 * std::abs(x[i]) + 4 * ulp));
      weight_err = std::max(weight_err, std::abs(w[i] / reference - 1) / (1e-12 + (16 * n + 8 / s2) * ulp));
      sum += w[i];
      if (i > 0) ordered = ordered && x[i] > x[i - 1] && x[i] == -x[n - 1 - i] && w[i] == w[n - 1 - i];
    }
    std::string at = ", n=" + std::to_string(n);
    check(node_err < 1, "Gauss-Legendre nodes match the recurrence's" + at);
    check(weight_err < 1, "Gauss-Legendre weights match the recurrence's" + at);
    check(std::abs(sum - 2) < 1e-13, "Gauss-Legendre weights sum to 2" + at);
    check(ordered, "Gauss-Legendre nodes ascend in (-1, 1), symmetric" + at);
    check(n % 2 == 0 || x[n / 2] == 0.0, "Gauss-Legendre odd n has the node 0" + at);
  }
  gauss_legendre(500, x, w);
  for (int k : {10, 20}) {
    double q = 0;
    for (int64_t i = 0; i < 500; ++i) q += w[i] * std::pow(x[i], k);
    check(std::abs(q - 2.0 / (k + 1)) < 1e-14, "Gauss-Legendre n=500 integrates x^" + std::to_string(k));
  }
  gauss_legendre(100001, x, w);  // O(n): milliseconds
  double sum = 0, q = 0;
  for (size_t i = 0; i < x.size(); ++i) sum += w[i], q += w[i] * std::cos(x[i]);
  check(std::abs(sum - 2) < 1e-12 && std::abs(q - 2 * std::sin(1.0)) < 1e-12, "Gauss-Legendre n=100001 integrates 1 and cos");
  auto gl = quadrature("gausslegendre", 7), again = quadrature("gausslegendre", 7);
  check(gl.alphas == again.alphas && gl.weights == again.weights && std::abs(gl.alphas[3] - 0.5) < 1e-15,
        "Gauss-Legendre rule on [0, 1], the same from the cache");
  auto left = quadrature("riemann_left", 4);
  check(left.alphas[0] == 0.0 && std::abs(left.alphas[3] - 0.75) < 1e-7, "riemann_left alphas");
  auto trap = quadrature("riemann_trapezoid", 5);
  check(std::abs(trap.weights[0] - 0.1) < 1e-12 && std::abs(trap.weights[2] - 0.2) < 1e-12, "trapezoid weights");
  expect_error([] { quadrature("riemann_left", 1); }, "at least 2 steps", "riemann needs 2 steps");
  expect_error([] { quadrature("simpson", 4); }, "method: expected one of", "unknown method");
}

void test_lru_cache() {
  LruCache<int, std::string> cache(100);
  cache.put(1, "one", 40);
  cache.put(2, "two", 40);
  check(cache.get(1) == std::optional<std::string>("one"), "LRU: get returns what was put");
  cache.put(3, "three", 40);  // over the bound: evicts 2, as 1 was used more recently
  check(!cache.get(2) && cache.get(1) && cache.get(3), "LRU: evicts the least recently used");
  check(cache.bytes() == 80 && cache.size() == 2, "LRU: counts bytes and entries");
  cache.put(4, "huge", 101);
  check(!cache.get(4) && cache.size() == 2, "LRU: an entry over the bound is not kept, and evicts nothing");
  cache.put(1, "uno", 10);
  check(cache.get(1) == std::optional<std::string>("uno") && cache.bytes() == 50, "LRU: put replaces");
  cache.get(3);
  cache.put(5, "five", 60);  // 3 was read last: 1 goes, and the total may reach the bound
  check(!cache.get(1) && cache.get(3) && cache.get(5) && cache.bytes() == 100, "LRU: eviction follows reads");
  cache.clear();
  check(cache.size() == 0 && cache.bytes() == 0 && !cache.get(1), "LRU: clear");
}

void test_integrated_gradients() {
  // The reference library's README example (golden case ig_toy_readme).
  auto x = torch::tensor({0.29611194133758545f, 0.516562283039093f, 0.2516707181930542f, 0.6885567903518677f,
                          0.07397246360778809f, 0.866521954536438f}).view({2, 3});
  Result r = run("IntegratedGradients", request("toy.pt", {x}, {{"target", Value::of(0.0)},
                                                                 {"returnConvergenceDelta", Value::of(true)}}));
  auto expected = torch::tensor({-0.5922, -1.5497, -1.0067, 0.0, -0.2219, -5.1991}).view({2, 3});
  check(close(r.attributions[0], expected, 1e-4), "IG on the toy model matches the reference");
  check(r.delta.abs().max().item<double>() < 1e-4, "IG convergence delta is small");

  // Completeness on the MLP with many steps, and chunking / replicas change nothing.
  torch::manual_seed(0);
  auto m = torch::randn({4, 8});
  // The MLP has ReLU kinks, so the quadrature error falls slowly: check that it does.
  Object base = {{"target", Value::of(2.0)}, {"nSteps", Value::of(400.0)}, {"method", Value::of(std::string("riemann_trapezoid"))},
                 {"returnConvergenceDelta", Value::of(true)}};
  Result full = run("IntegratedGradients", request("mlp.pt", {m}, base));
  Object few = base;
  few["nSteps"] = Value::of(20.0);
  Result coarse = run("IntegratedGradients", request("mlp.pt", {m}, few));
  double fine_err = full.delta.abs().max().item<double>(), coarse_err = coarse.delta.abs().max().item<double>();
  check(fine_err < 1e-2 && fine_err < coarse_err / 10, "IG completeness on the MLP: |delta| " + std::to_string(fine_err) +
                                                           " with 400 steps, " + std::to_string(coarse_err) + " with 20");
  Object chunked = base;
  chunked["internalBatchSize"] = Value::of(7.0);
  Result c = run("IntegratedGradients", request("mlp.pt", {m}, chunked));
  check(close(c.attributions[0], full.attributions[0], 1e-5), "chunked IG equals unchunked IG");
  Object two = chunked;
  two["devices"] = Value::of(List{Value::of(std::string(device)), Value::of(std::string(device))});
  Result d = run("IntegratedGradients", request("mlp.pt", {m}, two));
  check(close(d.attributions[0], full.attributions[0], 1e-5), "IG over two replicas equals one");
}

// Rule-based backprop runs inside autograd on a rewritten graph, on any device.
void test_rules() {
  torch::manual_seed(0);
  auto x = torch::randn({3, 1, 8, 8}), b = torch::randn({3, 1, 8, 8}) * 0.1;
  Object o{{"target", Value::of(List{Value::of(1.0), Value::of(0.0), Value::of(2.0)})},
           {"baselines", Value::of(b)},
           {"returnConvergenceDelta", Value::of(true)},
           {"captumCompatible", Value::of(false)}};
  Result dl = run("DeepLift", request("cnn.pt", {x}, o));
  check(dl.delta.abs().max().item<double>() < 1e-4, "DeepLift (exact chain) sums to F(x) - F(b)");
  o.erase("captumCompatible");
  Result compat = run("DeepLift", request("cnn.pt", {x}, o));
  check(compat.delta.abs().max().item<double>() > 1e-3, "Captum-compatible DeepLift keeps Captum's relu -> max pool behaviour");
  Result lrp = run("LRP", request("mlp.pt", {torch::randn({4, 8})}, {{"target", Value::of(0.0)}, {"returnConvergenceDelta", Value::of(true)}}));
  check(lrp.attributions[0].sizes() == torch::IntArrayRef({4, 8}) && lrp.delta.size(0) == 4, "LRP shapes");
  // The tensor-op forms (what CUDA runs) agree with the fused CPU kernels.
  Object lrp_options{{"target", Value::of(1.0)}, {"returnConvergenceDelta", Value::of(true)}};
  Result fused_lrp = run("LRP", request("cnn.pt", {x}, lrp_options));
  ops::use_fused_kernels(false);
  Result plain = run("DeepLift", request("cnn.pt", {x}, o));
  Result plain_lrp = run("LRP", request("cnn.pt", {x}, lrp_options));
  ops::use_fused_kernels(true);
  check(close(plain.attributions[0], compat.attributions[0], 1e-6), "DeepLift: tensor-op rules = fused CPU kernels");
  check(close(plain_lrp.attributions[0], fused_lrp.attributions[0], 1e-6), "LRP: tensor-op rules = fused CPU kernels");
  expect_error([&] { run("DeepLift", request("../models/cumsum_model.pt", {torch::randn({2, 6})}, {{"target", Value::of(0.0)}})); },
               "DeepLift has no rule for aten::cumsum", "an op without a rule names the op");
  // x * x: the product rule splits it between its factors exactly (multiplier
  // (x + b) / 2 for each), so summation to delta holds; the tensor-op forms agree.
  auto v = torch::randn({4, 6}), vb = torch::randn({4, 6}) * 0.5;
  Object po{{"target", Value::of(1.0)}, {"baselines", Value::of(vb)}, {"returnConvergenceDelta", Value::of(true)}};
  Result product = run("DeepLift", request("../models/product_model.pt", {v}, po));
  check(product.delta.abs().max().item<double>() < 1e-5, "DeepLift through a product of two input-dependent tensors sums to F(x) - F(b)");
  ops::use_fused_kernels(false);
  Result product_plain = run("DeepLift", request("../models/product_model.pt", {v}, po));
  ops::use_fused_kernels(true);
  check(close(product_plain.attributions[0], product.attributions[0], 1e-6), "DeepLift product rule: tensor-op forms = fused CPU kernels");
  expect_error([&] { run("LRP", request("../models/quotient_model.pt", {v}, {{"target", Value::of(0.0)}})); },
               "a quotient of two input-dependent tensors", "a quotient of two input-dependent tensors is refused, named");
}

// Layer taps: values, completeness at a layer, names checked.
void test_layers() {
  torch::manual_seed(1);
  auto x = torch::randn({4, 8});
  Result act = run("LayerActivation", request("mlp.pt", {x}, {{"layer", Value::of(std::string("fc2"))}}));
  check(act.attributions[0].size(0) == 4, "LayerActivation: one row per example");
  // fc1 is linear: the straight path of its values is the image of the input
  // path, so layer and input integrated gradients miss completeness alike.
  Object o{{"target", Value::of(1.0)}, {"nSteps", Value::of(64.0)}, {"returnConvergenceDelta", Value::of(true)}};
  Result ig = run("IntegratedGradients", request("mlp.pt", {x}, o));
  o["layer"] = Value::of(std::string("fc1"));
  Result layer_ig = run("LayerIntegratedGradients", request("mlp.pt", {x}, o));
  check(close(layer_ig.delta, ig.delta, 1e-5), "LayerIntegratedGradients at a linear first layer matches IntegratedGradients");
  expect_error([&] { run("LayerGradCam", request("cnn.pt", {torch::randn({1, 1, 8, 8})}, {{"layer", Value::of(std::string("conv9"))}, {"target", Value::of(0.0)}})); },
               "no submodule 'conv9': did you mean 'conv1' or 'conv2'? (7 layers: conv1, relu1, pool, conv2, relu2, gap, fc)",
               "wrong layer names the closest and lists the layers");
}

void test_errors() {
  auto x = torch::rand({2, 3});
  expect_error([] { Model::load(fixtures + "/missing.pt", "cpu"); }, "no such file", "missing model file");
  expect_error([] { Model::load(fixtures + "/README.md", "cpu"); }, "is not a TorchScript model", "non-TorchScript file");
  expect_error([&] { run("Saliency", request("toy.pt", {x}, {{"target", Value::of(5.0)}})); },
               "target: index 5 is out of range", "target out of range");
  expect_error([&] { run("IntegratedGradients", request("toy.pt", {x}, {{"target", Value::of(0.0)}, {"nSteps", Value::of(0.0)}})); },
               "nSteps: expected an integer >= 1", "nSteps < 1");
  expect_error([&] { run("IntegratedGradients", request("toy.pt", {x}, {{"target", Value::of(0.0)}, {"baselines", Value::of(torch::zeros({2, 4}))}})); },
               "baselines[0]: shape [2, 4] does not match input 0", "baseline shape mismatch");
  expect_error([&] { run("Saliency", request("toy.pt", {torch::ones({2, 3}, torch::kLong)}, {{"target", Value::of(0.0)}})); },
               "floating-point inputs", "integer inputs");
  expect_error([&] { run("Saliency", request("toy.pt", {torch::rand({2, 5})}, {{"target", Value::of(0.0)}})); },
               "model forward failed", "forward throws");
  expect_error([&] { run("Saliency", request("toy.pt", {x}, {{"target", Value::of(0.0)}, {"nstep", Value::of(3.0)}})); },
               "unknown option nstep", "unknown option");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << "usage: core_tests <golden fixtures folder> [device]\n";
    return 2;
  }
  fixtures = argv[1];
  if (argc > 2) device = argv[2];
  for (auto& [name, fn] : std::vector<std::pair<std::string, void (*)()>>{
           {"quadrature", test_quadrature}, {"LRU cache", test_lru_cache}, {"integrated gradients", test_integrated_gradients},
           {"rules", test_rules}, {"layers", test_layers}, {"errors", test_errors}}) {
    try {
      fn();
    } catch (const std::exception& e) {
      check(false, name + " threw: " + e.what());
    }
  }
  std::cout << "core_tests: " << passed << " passed, " << failures << " failed\n";
  return failures ? 1 : 0;
}
