// Quadrature rules for path integrals: where along the straight path from
// baseline to input the integrand is evaluated (alphas) and with what weight.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace tx {

struct Quadrature {
  std::vector<double> alphas;   // points in [0, 1]
  std::vector<double> weights;  // step sizes, summing to (at most) 1
};

const std::vector<std::string>& quadrature_methods();

constexpr int64_t kMaxSteps = 10'000'000;

// `method`: gausslegendre, riemann_left, riemann_right, riemann_middle, riemann_trapezoid.
Quadrature quadrature(const std::string& method, int64_t steps);

// Gauss-Legendre nodes and weights on [-1, 1], ascending, for any n >= 1.
void gauss_legendre(int64_t n, std::vector<double>& nodes, std::vector<double>& weights);

}  // namespace tx
