#include "approximation.h"

#include <cmath>
#include <map>
#include <mutex>

#include "errors.h"

namespace tx {

const std::vector<std::string>& quadrature_methods() {
  static const std::vector<std::string> methods = {"gausslegendre", "riemann_left", "riemann_right",
                                                   "riemann_middle", "riemann_trapezoid"};
  return methods;
}

namespace {

// P_n(x) and its derivative, by the three-term recurrence.
void legendre(int64_t n, double x, double& pn, double& dpn) {
  double p0 = 1.0, p1 = x;
  for (int64_t k = 2; k <= n; ++k) {
    double p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
    p0 = p1;
    p1 = p2;
  }
  pn = n == 0 ? 1.0 : p1;
  double pn1 = n <= 1 ? 1.0 : p0;  // P_{n-1}
  dpn = n * (x * pn - pn1) / (x * x - 1.0);
}

}  // namespace

void gauss_legendre(int64_t n, std::vector<double>& nodes, std::vector<double>& weights) {
  nodes.assign(n, 0.0);
  weights.assign(n, 0.0);
  const double pi = std::acos(-1.0);
  // Roots are symmetric: find the upper half by Newton's method on P_n from
  // the classical cosine initial guess, then mirror.
  for (int64_t i = 0; i < (n + 1) / 2; ++i) {
    double x = std::cos(pi * (i + 0.75) / (n + 0.5)), pn, dpn;
    for (int iter = 0; iter < 100; ++iter) {
      legendre(n, x, pn, dpn);
      double dx = pn / dpn;
      x -= dx;
      if (std::abs(dx) < 1e-16) break;
    }
    legendre(n, x, pn, dpn);  // the derivative at the converged root gives the weight
    double w = 2.0 / ((1.0 - x * x) * dpn * dpn);
    nodes[n - 1 - i] = x;
    nodes[i] = -x;
    weights[i] = weights[n - 1 - i] = w;
  }
  if (n % 2 == 1) nodes[n / 2] = 0.0;
}

namespace {

Quadrature compute(const std::string& method, int64_t n) {
  Quadrature q;
  if (method == "gausslegendre") {
    std::vector<double> x, w;
    gauss_legendre(n, x, w);
    for (int64_t i = 0; i < n; ++i) {
      q.alphas.push_back(0.5 * (1.0 + x[i]));
      q.weights.push_back(0.5 * w[i]);
    }
    return q;
  }
  if (method.rfind("riemann_", 0) != 0) fail("method: expected one of ", join(quadrature_methods()), "; got '", method, "'");
  if (n < 2) fail("nSteps: the ", method, " method needs at least 2 steps, got ", n);
  std::string side = method.substr(8);
  double first, last;  // evenly spaced alphas, as torch.linspace gives them
  if (side == "left") first = 0.0, last = 1.0 - 1.0 / n;
  else if (side == "right") first = 1.0 / n, last = 1.0;
  else if (side == "middle") first = 0.5 / n, last = 1.0 - 0.5 / n;
  else if (side == "trapezoid") first = 0.0, last = 1.0;
  else fail("method: expected one of ", join(quadrature_methods()), "; got '", method, "'");
  for (int64_t i = 0; i < n; ++i) {
    // Computed in float32 like the reference's linspace, so that paths agree bit for bit.
    float step = (static_cast<float>(last) - static_cast<float>(first)) / static_cast<float>(n - 1);
    float a = i < n / 2 ? static_cast<float>(first) + step * i : static_cast<float>(last) - step * (n - 1 - i);
    q.alphas.push_back(a);
    q.weights.push_back(1.0 / n);
  }
  if (side == "trapezoid") {
    q.weights.front() /= 2;
    q.weights.back() /= 2;
  }
  return q;
}

}  // namespace

Quadrature quadrature(const std::string& method, int64_t n) {
  if (n < 1) fail("nSteps: expected an integer >= 1, got ", n);
  // Rules are reused across calls (Gauss-Legendre's Newton iterations are not free).
  static std::mutex mutex;
  static std::map<std::pair<std::string, int64_t>, Quadrature> cache;
  std::lock_guard<std::mutex> lock(mutex);
  auto key = std::make_pair(method, n);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  Quadrature q = compute(method, n);
  if (cache.size() < 256) cache.emplace(key, q);
  return q;
}

}  // namespace tx
