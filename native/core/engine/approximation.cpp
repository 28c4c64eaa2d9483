#include "engine/approximation.h"

#include <cmath>
#include <memory>

#include "engine/errors.h"
#include "engine/lru_cache.h"

namespace tx {

const std::vector<std::string>& quadrature_methods() {
  static const std::vector<std::string> methods = {"gausslegendre", "riemann_left", "riemann_right",
                                                   "riemann_middle", "riemann_trapezoid"};
  return methods;
}

namespace {

constexpr double kPi = 3.14159265358979323846;

// A batch of roots of P_n, all in the same parametrization: the angle theta
// (x = cos theta) for roots with theta < pi/4, else phi = pi/2 - theta
// (x = sin phi). Either way the angle that is stored is small, so that x,
// 1 - x and sin theta all keep their relative accuracy.
struct Roots {
  bool top;                  // t is theta; else t is phi
  std::vector<double> t;     // the angles
  std::vector<int64_t> k;    // which root: 1 is the largest
};

// sin theta and x = cos theta, from the stored angle.
void trig(bool top, double t, double& s, double& x) {
  s = top ? std::sin(t) : std::cos(t);
  x = top ? std::cos(t) : std::sin(t);
}

// P_n(cos theta) and dP_n/dtheta at every root of the batch by the three-term
// recurrence, O(n) each. One pass over the degree serves the whole batch, so
// the roots' independent chains overlap. Near x = 1 the recurrence runs on
// the differences P_k - P_{k-1} in y = 1 - x, where x has no digits left for
// 1 - x; elsewhere on P_k in x, where 1 - x would lose the digits of a small x.
void recurrence(int64_t n, const Roots& r, std::vector<double>& f, std::vector<double>& df) {
  size_t m = r.t.size();
  std::vector<double> s(m), x(m), y(m), p(m), q(m);  // p = P_k; q = P_k - P_{k-1} (top) or P_{k-1}
  for (size_t j = 0; j < m; ++j) {
    trig(r.top, r.t[j], s[j], x[j]);
    y[j] = r.top ? 2 * std::pow(std::sin(r.t[j] / 2), 2) : 1 - x[j];
    p[j] = x[j];
    q[j] = r.top ? -y[j] : 1.0;
  }
  for (int64_t k = 2; k <= n; ++k) {
    const double a = 2.0 * k - 1.0, b = k - 1.0, inv = 1.0 / k;
    if (r.top) {
      for (size_t j = 0; j < m; ++j) {
        q[j] = (b * q[j] - a * y[j] * p[j]) * inv;
        p[j] += q[j];
      }
    } else {
      for (size_t j = 0; j < m; ++j) {
        double next = (a * x[j] * p[j] - b * q[j]) * inv;
        q[j] = p[j];
        p[j] = next;
      }
    }
  }
  for (size_t j = 0; j < m; ++j) {
    double xp_minus_prev = r.top ? q[j] - y[j] * p[j] : x[j] * p[j] - q[j];  // x P_n - P_{n-1}
    f[j] = p[j];
    df[j] = n * xp_minus_prev / s[j];  // (1 - x^2) P_n' = n (P_{n-1} - x P_n), dx/dtheta = -sin theta
  }
}

// Stieltjes' expansion, O(1) per point:
//   P_n(cos t) = C_n sum_m h_m cos(a_m) / (2 sin t)^(m + 1/2),
//   a_m = (n + m + 1/2) t - (m + 1/2) pi/2,  h_m = prod_{j<=m} (j - 1/2)^2 / (j (n + j + 1/2)).
// The terms shrink roughly like m! / (2 n sin t)^m, so where n sin t >= 50
// (away from the ends) a dozen or so terms give full double precision.
struct Stieltjes {
  int64_t n;
  std::vector<double> h;

  explicit Stieltjes(int64_t degree) : n(degree), h{1.0} {
    for (int j = 1; j < 40; ++j) h.push_back(h.back() * (j - 0.5) * (j - 0.5) / (j * (n + j + 0.5)));
  }

  // C_n = (4/pi) prod_{j<=n} j/(j + 1/2) = (2/sqrt(pi)) Gamma(n+1)/Gamma(n+3/2), from Stirling's
  // series for the log of the ratio, arranged so that nothing large cancels (a product of n factors
  // would gather ~sqrt(n) roundings). Used for n > 100 only, where the series' tail is negligible.
  double constant() const {
    const double z = n + 1.0;
    auto stirling = [](double v) { double r = 1 / (v * v); return (1 / 12.0 - r * (1 / 360.0 - r / 1260.0)) / v; };
    return 2 / std::sqrt(kPi * z) * std::exp(0.5 - z * std::log1p(0.5 / z) + stirling(z) - stirling(z + 0.5));
  }

  // P_n(cos theta) / C_n and its theta-derivative at every root of the batch.
  void operator()(const Roots& r, std::vector<double>& f, std::vector<double>& df) const {
    for (size_t j = 0; j < r.t.size(); ++j) {
      double s, c, ca, sa;  // ca, sa: cos and sin of a_0
      trig(r.top, r.t[j], s, c);
      if (r.top) {
        double a = (n + 0.5) * r.t[j] - kPi / 4;
        ca = std::cos(a), sa = std::sin(a);
      } else {  // a_0 = (n mod 4) pi/2 - (n + 1/2) phi: reduced exactly, so a small phi keeps its digits
        double b = (n + 0.5) * r.t[j], cb = std::cos(b), sb = std::sin(b);
        switch (n % 4) {
          case 0: ca = cb, sa = -sb; break;
          case 1: ca = sb, sa = cb; break;
          case 2: ca = -cb, sa = sb; break;
          default: ca = -sb, sa = -cb;
        }
      }
      const double inv = 1 / (2 * s), cot = c / s;
      double g = std::sqrt(inv), sum = 0, dsum = 0;  // g = (2 sin theta)^-(m + 1/2)
      for (size_t m = 0; m < h.size(); ++m) {
        double term = h[m] * g;
        if (m > 0 && term < 1e-17 * std::sqrt(inv)) break;
        sum += term * ca;
        dsum -= term * ((n + m + 0.5) * sa + (m + 0.5) * cot * ca);
        double next = ca * s + sa * c;  // a_{m+1} = a_m + theta - pi/2
        sa = sa * s - ca * c;
        ca = next;
        g *= inv;
      }
      f[j] = sum;
      df[j] = dsum;
    }
  }
};

// Newton's method in the angle on every root of the batch; returns
// dP_n/dtheta at the roots, for the weights. Once a step is below 1e-9 of
// the angle, the error left after it is ~1e-18 of it (quadratic convergence).
template <class Eval>
std::vector<double> newton(Roots& r, const Eval& eval) {
  std::vector<double> f(r.t.size()), df(r.t.size());
  for (int iter = 0; iter < 30; ++iter) {
    eval(r, f, df);
    bool done = true;
    for (size_t j = 0; j < r.t.size(); ++j) {
      double step = f[j] / df[j];  // in theta; phi = pi/2 - theta moves the other way
      r.t[j] += r.top ? -step : step;
      if (std::abs(step) > 1e-9 * std::abs(r.t[j])) done = false;
    }
    if (done) break;
  }
  eval(r, f, df);
  return df;
}

}  // namespace

// O(n) in all: roots with n sin(theta) < 50 (a constant number at each end)
// by the recurrence, the rest by the O(1) expansion; for n <= 100 all by the
// recurrence. The weight is 2 / ((1 - x^2) P_n'(x)^2) = 2 / (dP_n/dtheta)^2.
void gauss_legendre(int64_t n, std::vector<double>& nodes, std::vector<double>& weights) {
  nodes.assign(n, 0.0);
  weights.assign(n, 0.0);
  // Roots are symmetric: find the upper half, mirror. Batches: {recurrence,
  // expansion} x {theta, phi}.
  Roots batches[4] = {{true, {}, {}}, {false, {}, {}}, {true, {}, {}}, {false, {}, {}}};
  const double nd = static_cast<double>(n), one_minus_a = (nd - 1) / (8 * nd * nd * nd);
  for (int64_t k = 1; k <= (n + 1) / 2; ++k) {
    // Tricomi's initial guess x = a cos(theta0), a = 1 - 1/(8n^2) + 1/(8n^3),
    // solved for the small angle without cancellation.
    double theta0 = kPi * (4 * k - 1) / (4 * nd + 2), phi0 = kPi * (2 * nd + 2 - 4 * k) / (4 * nd + 2);
    bool top = theta0 < kPi / 4, by_recurrence = n <= 100 || nd * std::sin(theta0) < 50;
    double t = top ? 2 * std::asin(std::sqrt(one_minus_a / 2 + (1 - one_minus_a) * std::pow(std::sin(theta0 / 2), 2)))
                   : std::asin((1 - one_minus_a) * std::sin(phi0));
    Roots& b = batches[(by_recurrence ? 0 : 2) + (top ? 0 : 1)];
    b.t.push_back(t);
    b.k.push_back(k);
  }
  std::unique_ptr<Stieltjes> expansion;
  if (n > 100) expansion = std::make_unique<Stieltjes>(n);
  for (int i = 0; i < 4; ++i) {
    Roots& b = batches[i];
    if (b.t.empty()) continue;
    std::vector<double> df = i < 2 ? newton(b, [n](const Roots& r, std::vector<double>& f, std::vector<double>& d) { recurrence(n, r, f, d); })
                                   : newton(b, *expansion);
    const double c = i < 2 ? 1.0 : expansion->constant();
    for (size_t j = 0; j < b.t.size(); ++j) {
      int64_t k = b.k[j];
      double x = b.top ? std::cos(b.t[j]) : std::sin(b.t[j]), d = c * df[j];
      nodes[n - k] = x;
      nodes[k - 1] = -x;
      weights[n - k] = weights[k - 1] = 2 / (d * d);
    }
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
  // Far past any useful accuracy, and the rule alone would take 16 bytes a step.
  if (n > kMaxSteps) fail("nSteps: at most ", kMaxSteps, " steps, got ", n);
  // Rules are reused across calls (a million Gauss-Legendre nodes take tens of
  // milliseconds), within a memory bound. Computed outside the cache's lock:
  // threads asking for the same new rule may both compute it, none waits.
  using Key = std::pair<std::string, int64_t>;
  static LruCache<Key, std::shared_ptr<const Quadrature>> cache(64 << 20);
  Key key(method, n);
  if (auto hit = cache.get(key)) return **hit;
  auto q = std::make_shared<const Quadrature>(compute(method, n));
  cache.put(key, q, 16 * q->alphas.size() + sizeof(Quadrature) + method.size() + 64);
  return *q;
}

}  // namespace tx
