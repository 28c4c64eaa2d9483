#include "graph/rule_ops.h"

#include <torch/library.h>
#include <torch/csrc/autograd/custom_function.h>

#include "engine/torch_headers.h"

#include <atomic>
#include <cmath>
#include <limits>

namespace tx::ops {

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// DeepLift treats input and reference as equal below this difference and
// falls back to the op's own gradient there (as the reference implementation).
constexpr double kRescaleEps = 1e-10;

// Where input and reference count as equal: |Δx| below kRescaleEps, or not a
// number (a score masked to -inf in both rows of attention has no difference).
template <typename T>
bool no_difference(T dx) {
  return !(std::abs(dx) >= kRescaleEps);
}
Tensor no_difference(const Tensor& dx) { return (dx.abs() >= kRescaleEps).logical_not(); }

// Pairs view: [pairs, 2, ...] of a tensor whose rows alternate input, reference.
Tensor pairs(const Tensor& t) {
  TORCH_CHECK(t.dim() >= 1 && t.size(0) % 2 == 0,
              "torchexplain rule: expected input/reference row pairs along dimension 0, got shape ", t.sizes(),
              " (a rule sits on an op whose tensors lost the batch dimension)");
  std::vector<int64_t> shape = {t.size(0) / 2, 2};
  shape.insert(shape.end(), t.sizes().begin() + 1, t.sizes().end());
  return t.reshape(shape);
}

// Pairs back to rows.
Tensor rows(const Tensor& p) {
  std::vector<int64_t> shape = {p.size(0) * 2};
  shape.insert(shape.end(), p.sizes().begin() + 2, p.sizes().end());
  return p.reshape(shape);
}

// Input minus reference per pair: [pairs, 1, ...], broadcasting over a pairs view.
Tensor pair_delta(const Tensor& t) {
  Tensor p = pairs(t);
  return (p.select(1, 0) - p.select(1, 1)).unsqueeze(1);
}

// DeepLift's multiplier Δy/Δx per pair, and where Δx is too small for it.
std::pair<Tensor, Tensor> rescale_multiplier(const Tensor& x, const Tensor& y) {
  Tensor dx = pair_delta(x);
  Tensor small = no_difference(dx);
  return {torch::where(small, torch::zeros_like(dx), pair_delta(y) / dx), small};
}

// ---- fused CPU kernels -------------------------------------------------------------
//
// The rules are elementwise over pairs of rows. On CPU one pass over memory
// beats a chain of tensor ops on strided pair views several times over (and
// torch::where is slow there); other devices and dtypes use the tensor ops.

std::atomic<bool> fused_enabled{true};

// The kernels index every tensor alike, row after row: they need one dense
// layout with rows outermost (contiguous or channels-last), shared by all.
bool fusable(const std::vector<Tensor>& ts) {
  if (!fused_enabled) return false;
  for (const auto& t : ts)
    if (!t.defined() || !t.device().is_cpu() || !t.is_non_overlapping_and_dense() || t.dim() == 0 ||
        !t.strides().equals(ts[0].strides()) || t.stride(0) * t.size(0) != t.numel() ||
        t.scalar_type() != ts[0].scalar_type() || (t.scalar_type() != at::kFloat && t.scalar_type() != at::kDouble))
      return false;
  return true;
}

// A tensor dense in the layout it suggests (channels-last activations stay
// channels-last), and another tensor in that same layout.
Tensor dense(const Tensor& t) { return t.contiguous(t.suggest_memory_format()); }
Tensor like(const Tensor& t, const Tensor& ref) {
  return t.strides().equals(ref.strides()) ? t : t.contiguous(ref.suggest_memory_format());
}

// DeepLift rescale: gx = recorded * m on both rows of a pair, m = Δy/Δx (0
// where |Δx| < eps); gy = flowing where |Δx| < eps, else 0. Returns whether
// any |Δx| was that small.
bool rescale_cpu(const Tensor& x, const Tensor& y, const Tensor& gr, const Tensor& gf, Tensor& gx, Tensor& gy) {
  int64_t npairs = x.size(0) / 2, inner = x.numel() / std::max<int64_t>(x.size(0), 1);
  gx = at::empty_like(x);
  gy = at::empty_like(x);
  std::atomic<bool> any{false};
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchexplain_rescale", [&] {
    const scalar_t *px = x.data_ptr<scalar_t>(), *py = y.data_ptr<scalar_t>(), *pr = gr.data_ptr<scalar_t>(),
                   *pf = gf.data_ptr<scalar_t>();
    scalar_t *ox = gx.data_ptr<scalar_t>(), *oy = gy.data_ptr<scalar_t>();
    at::parallel_for(0, npairs, 1, [&](int64_t b, int64_t e) {
      scalar_t small_seen = 0;  // a count in the loop's own width keeps it one vector loop
      for (int64_t p = b; p < e; ++p) {
        int64_t i0 = 2 * p * inner, i1 = i0 + inner;
        // Restrict-qualified and branch-free, so that the compiler vectorizes
        // it: the loop as first written (a division behind a branch, six
        // pointers that might alias) took a tenth of DeepLift's time on the
        // bench residual net, more than its convolutions (perf).
        const scalar_t *__restrict x0 = px + i0, *__restrict x1 = px + i1, *__restrict y0 = py + i0,
                                   *__restrict y1 = py + i1, *__restrict r0 = pr + i0, *__restrict r1 = pr + i1,
                                   *__restrict f0 = pf + i0, *__restrict f1 = pf + i1;
        scalar_t *__restrict gx0 = ox + i0, *__restrict gx1 = ox + i1, *__restrict gy0 = oy + i0, *__restrict gy1 = oy + i1;
        for (int64_t j = 0; j < inner; ++j) {
          scalar_t dx = x0[j] - x1[j];
          bool small = !(std::abs(dx) >= scalar_t(kRescaleEps));  // no_difference(dx), NaN included
          scalar_t m = (y0[j] - y1[j]) / (small ? scalar_t(1) : dx);
          m = small ? scalar_t(0) : m;
          gx0[j] = r0[j] * m;
          gx1[j] = r1[j] * m;
          gy0[j] = small ? f0[j] : scalar_t(0);
          gy1[j] = small ? f1[j] : scalar_t(0);
          small_seen += small ? scalar_t(1) : scalar_t(0);
        }
      }
      if (small_seen > 0) any = true;
    });
  });
  return any;
}

// DeepLift through max pooling (see RescaleMaxPool), in one pass over the
// winners: `spatial` dims are the pooled ones; `own` gets the plain gradient.
void maxpool_cpu(const Tensor& x, const Tensor& y, const Tensor& idx, const Tensor& gr, const Tensor& gf, int64_t spatial,
                 Tensor& gx, Tensor& own) {
  int64_t rows_n = x.size(0), npairs = rows_n / 2;
  int64_t in_inner = x.numel() / rows_n, out_inner = y.numel() / rows_n;
  int64_t in_plane = 1, out_plane = 1;
  for (int64_t d = 0; d < spatial; ++d) {
    in_plane *= x.size(x.dim() - 1 - d);
    out_plane *= y.size(y.dim() - 1 - d);
  }
  own = at::zeros_like(x);
  gx = at::empty_like(x);
  Tensor both = at::zeros({npairs, in_inner}, x.options());
  Tensor index = idx.contiguous();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "torchexplain_maxpool", [&] {
    const scalar_t *px = x.data_ptr<scalar_t>(), *py = y.data_ptr<scalar_t>(), *pr = gr.data_ptr<scalar_t>(),
                   *pf = gf.data_ptr<scalar_t>();
    const int64_t* pi = index.data_ptr<int64_t>();
    scalar_t *ox = gx.data_ptr<scalar_t>(), *oo = own.data_ptr<scalar_t>(), *ob = both.data_ptr<scalar_t>();
    at::parallel_for(0, npairs, 1, [&](int64_t b, int64_t e) {
      for (int64_t p = b; p < e; ++p) {
        int64_t o0 = 2 * p * out_inner, o1 = o0 + out_inner, n0 = 2 * p * in_inner, n1 = n0 + in_inner;
        scalar_t* u = ob + p * in_inner;
        for (int64_t o = 0; o < out_inner; ++o) {
          int64_t plane = (o / out_plane) * in_plane;
          scalar_t yi = py[o0 + o], yr = py[o1 + o], top = std::max(yi, yr);
          int64_t wi = plane + pi[o0 + o], wr = plane + pi[o1 + o];
          u[wi] += pr[o0 + o] * (top - yr);
          u[wr] += pr[o1 + o] * (yi - top);
          oo[n0 + wi] += pf[o0 + o];
          oo[n1 + wr] += pf[o1 + o];
        }
        for (int64_t j = 0; j < in_inner; ++j) {
          scalar_t dx = px[n0 + j] - px[n1 + j];
          if (no_difference(dx)) {
            ox[n0 + j] = oo[n0 + j];
            ox[n1 + j] = oo[n1 + j];
          } else {
            ox[n0 + j] = ox[n1 + j] = u[j] / dx;
          }
        }
      }
    });
  });
}

// LRP's output side: g / (z' + eps * sign(z')), sign(0) = +1.
Tensor lrp_divide_cpu(const Tensor& g, const Tensor& zp, double eps) {
  Tensor out = at::empty_like(zp);
  AT_DISPATCH_FLOATING_TYPES(zp.scalar_type(), "torchexplain_lrp_out", [&] {
    const scalar_t *pg = g.data_ptr<scalar_t>(), *pz = zp.data_ptr<scalar_t>();
    scalar_t* po = out.data_ptr<scalar_t>();
    scalar_t e = static_cast<scalar_t>(eps);
    at::parallel_for(0, zp.numel(), 4096, [&](int64_t b, int64_t end) {
      for (int64_t i = b; i < end; ++i) po[i] = pg[i] / (pz[i] + (pz[i] >= 0 ? e : -e));
    });
  });
  return out;
}

// ---- DeepLift -------------------------------------------------------------------
//
// DeepLift ops have two outputs, both the op's value: the first carries the
// rule's (modified) gradient, the second the op's plain gradient. The
// reference records the gradient arriving at a nonlinearity's output before
// a following nonlinearity's rule replaced it, and uses that in the rescale
// multiplier; a following rule op hands its plain gradient back through the
// second output so that the results agree with the reference exactly.

struct Grads {
  Tensor flowing;   // gradient that flowed in through the first output
  Tensor recorded;  // what the reference calls grad_output
};

Grads incoming(const variable_list& grads, const Tensor& like) {
  Grads g;
  g.flowing = grads[0].defined() ? grads[0] : torch::zeros_like(like);
  g.recorded = grads[1].defined() ? grads[1] : g.flowing;
  return g;
}

// Elementwise activations: grad * Δy/Δx, the op's own gradient where Δx ~ 0
// (routed through the original op node, which reads x). `yt` is a copy of the
// op reading the previous rule op's second output, when there is one.
struct RescaleAct : torch::autograd::Function<RescaleAct> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor y, c10::optional<Tensor> yt) {
    ctx->set_materialize_grads(false);
    ctx->saved_data["adjacent"] = yt.has_value();
    ctx->save_for_backward({x, y});
    return {y, y};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    Grads g = incoming(grads, saved[1]);
    Tensor gyt = ctx->saved_data["adjacent"].toBool() ? g.flowing : Tensor();
    // Where Δx ~ 0, the op's own gradient: gy goes through the original node.
    Tensor x = dense(saved[0]), y = like(saved[1], x), gr = like(g.recorded, x), gf = like(g.flowing, x);
    if (fusable({x, y, gr, gf})) {
      pairs(x);  // checks the pair layout
      Tensor gx, gy;
      bool small = rescale_cpu(x, y, gr, gf, gx, gy);
      return {gx, small ? gy : Tensor(), gyt};
    }
    auto [multiplier, small] = rescale_multiplier(x, y);
    Tensor gx = rows(pairs(gr) * multiplier);
    Tensor gy = small.any().item<bool>() ? rows(pairs(gf) * small) : Tensor();
    return {gx, gy, gyt};
  }
};

// Softmax: rescale, then normalised so that the multipliers of the whole
// tensor sum to zero, as the reference does.
struct RescaleSoftmax : torch::autograd::Function<RescaleSoftmax> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor y, c10::optional<Tensor> xt, int64_t dim) {
    ctx->set_materialize_grads(false);
    ctx->saved_data["dim"] = dim;
    ctx->saved_data["adjacent"] = xt.has_value();
    ctx->save_for_backward({x, y});
    return {y, y};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &y = saved[1];
    Grads g = incoming(grads, y);
    int64_t dim = ctx->saved_data["dim"].toInt();
    Tensor own = y * (g.flowing - (g.flowing * y).sum(dim, true));
    auto [multiplier, small] = rescale_multiplier(x, y);
    Tensor unnorm = rows(torch::where(small, pairs(own), pairs(g.recorded) * multiplier));
    Tensor gx = unnorm - unnorm.sum() / static_cast<double>(unnorm.numel());
    return {gx, Tensor(), ctx->saved_data["adjacent"].toBool() ? own : Tensor(), Tensor()};
  }
};

// ---- guided backprop, deconvolution, LRP through activations ---------------------

struct Act : torch::autograd::Function<Act> {
  static Tensor forward(AutogradContext* ctx, Tensor x, Tensor y, int64_t mode, std::string where) {
    // Relevance passes unchanged only between tensors of one shape (LRP's identity rule).
    TORCH_CHECK(mode != kPass || x.sizes() == y.sizes(), "LRP's identity rule needs a layer whose output has its input's shape; ",
                where, " maps ", x.sizes(), " to ", y.sizes());
    ctx->saved_data["mode"] = mode;
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const Tensor& g = grads[0];
    switch (ctx->saved_data["mode"].toInt()) {
      case kGuided:  // relu(g), then ReLU's own gradient (the original node)
        return {Tensor(), torch::relu(g), Tensor(), Tensor()};
      case kDeconv:
        return {torch::relu(g), Tensor(), Tensor(), Tensor()};
      default:
        return {g, Tensor(), Tensor(), Tensor()};
    }
  }
};

// ---- max pooling ------------------------------------------------------------

struct Pool {
  std::vector<int64_t> kernel, stride, padding, dilation;
  bool ceil = false;
  bool one_d = false;  // 1-d pooling, run as 2-d pooling over a unit height
};

// Pooling arguments as the schema allows them: one value for all dimensions,
// or none (stride: the kernel; padding 0; dilation 1).
std::vector<int64_t> per_dim(std::vector<int64_t> v, size_t dims, const std::vector<int64_t>& if_empty) {
  if (v.empty()) return if_empty;
  if (v.size() == 1 && dims > 1) v.assign(dims, v[0]);
  return v;
}

Pool make_pool(std::vector<int64_t> k, std::vector<int64_t> s, std::vector<int64_t> p, std::vector<int64_t> d, bool ceil) {
  TORCH_CHECK(!k.empty() && k.size() <= 3, "torchexplain rule: max pooling with ", k.size(), " kernel dimensions");
  size_t n = k.size();
  Pool pool;
  pool.kernel = k;
  pool.stride = per_dim(s, n, k);
  pool.padding = per_dim(p, n, std::vector<int64_t>(n, 0));
  pool.dilation = per_dim(d, n, std::vector<int64_t>(n, 1));
  pool.ceil = ceil;
  if (n == 1) {
    pool.one_d = true;
    pool.kernel.insert(pool.kernel.begin(), 1);
    pool.stride.insert(pool.stride.begin(), 1);
    pool.padding.insert(pool.padding.begin(), 0);
    pool.dilation.insert(pool.dilation.begin(), 1);
  }
  return pool;
}

// The gradient of max pooling: g scattered (and summed) onto the winners
// recorded in `idx` (from the graph's max_pool*_with_indices).
Tensor pool_backward(const Tensor& g, const Tensor& x, const Pool& p, const Tensor& idx) {
  if (p.kernel.size() == 3)
    return at::max_pool3d_with_indices_backward(g, x, p.kernel, p.stride, p.padding, p.dilation, p.ceil, idx);
  if (p.one_d)
    return at::max_pool2d_with_indices_backward(g.unsqueeze(-2), x.unsqueeze(-2), p.kernel, p.stride, p.padding,
                                                p.dilation, p.ceil, idx.unsqueeze(-2))
        .squeeze(-2);
  return at::max_pool2d_with_indices_backward(g, x, p.kernel, p.stride, p.padding, p.dilation, p.ceil, idx);
}

// DeepLift through max pooling: the output difference is split at the
// elementwise max of input and reference outputs and sent to the winners of
// each side; multipliers are that over the input difference.
// DeepLift through max pooling: the output difference is split at the
// elementwise max of input and reference outputs and sent to the winners of
// each side; multipliers are that over the input difference.
struct RescaleMaxPool : torch::autograd::Function<RescaleMaxPool> {
  static variable_list forward(AutogradContext* ctx, Tensor x, Tensor y, Tensor indices, c10::optional<Tensor> xt,
                               std::vector<int64_t> k, std::vector<int64_t> s, std::vector<int64_t> p,
                               std::vector<int64_t> d, bool ceil) {
    ctx->set_materialize_grads(false);
    ctx->saved_data["k"] = k;
    ctx->saved_data["s"] = s;
    ctx->saved_data["p"] = p;
    ctx->saved_data["d"] = d;
    ctx->saved_data["ceil"] = ceil;
    ctx->saved_data["adjacent"] = xt.has_value();
    ctx->save_for_backward({x, y, indices});
    return {y, y};
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto& sd = ctx->saved_data;
    Pool pool = make_pool(sd["k"].toIntVector(), sd["s"].toIntVector(), sd["p"].toIntVector(), sd["d"].toIntVector(),
                          sd["ceil"].toBool());
    auto saved = ctx->get_saved_variables();
    const Tensor &x = saved[0], &y = saved[1], &idx = saved[2];
    Grads g = incoming(grads, y);
    bool adjacent = sd["adjacent"].toBool();
    // The kernel reads pooling indices as offsets in each contiguous plane.
    Tensor xc = x.contiguous(), yc = y.contiguous(), gr = g.recorded.contiguous(), gf = g.flowing.contiguous();
    if (fusable({xc, yc, gr, gf})) {
      pairs(xc);  // checks the pair layout
      Tensor gx, own;
      maxpool_cpu(xc, yc, idx, gr, gf, static_cast<int64_t>(sd["k"].toIntVector().size()), gx, own);
      return {gx, Tensor(), Tensor(), adjacent ? own : Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    }
    Tensor yp = pairs(y);
    Tensor out = yp.select(1, 0), ref = yp.select(1, 1);
    Tensor top = torch::max(out, ref);
    Tensor delta_out = rows(torch::stack({top - ref, out - top}, 1));
    Tensor spread = pairs(pool_backward(pairs(g.recorded).mul(pairs(delta_out)).view_as(y), x, pool, idx));
    Tensor both = spread.sum(1, true);
    Tensor dx = pair_delta(x);
    Tensor small = no_difference(dx);
    Tensor own = adjacent || small.any().item<bool>() ? pool_backward(g.flowing, x, pool, idx) : Tensor();
    Tensor gx = own.defined() ? rows(torch::where(small, pairs(own), both / dx)) : rows((both / dx).expand_as(spread));
    return {gx, Tensor(), Tensor(), adjacent ? own : Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// ---- LRP --------------------------------------------------------------------

// LRP's input side: forward passes `c` (the activation, or a part or bound of
// it); backward multiplies the incoming gradient by `c` and hands it to x.
struct LrpIn : torch::autograd::Function<LrpIn> {
  static Tensor forward(AutogradContext* ctx, Tensor x, Tensor c) {
    if (!c.sizes().equals(x.sizes())) c = c.expand_as(x).contiguous();  // a bound given per feature
    ctx->save_for_backward({c});
    return c;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    return {grads[0] * ctx->get_saved_variables()[0], Tensor()};
  }
};

// LRP's output side: forward passes the layer's true output z; backward
// divides relevance by the (rule-modified) output z', stabilised by eps.
struct LrpOut : torch::autograd::Function<LrpOut> {
  static Tensor forward(AutogradContext* ctx, Tensor zp, Tensor z, double eps) {
    ctx->saved_data["eps"] = eps;
    ctx->save_for_backward({zp});
    return z;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    Tensor zp = dense(ctx->get_saved_variables()[0]), g = like(grads[0], zp);
    double eps = ctx->saved_data["eps"].toDouble();
    if (fusable({g, zp})) return {lrp_divide_cpu(g, zp, eps), Tensor(), Tensor()};
    Tensor sign = torch::where(zp >= 0, 1.0, -1.0).to(zp.scalar_type());  // sign, with sign(0) = +1
    return {grads[0] / torch::add(zp, sign, eps), Tensor(), Tensor()};
  }
};

// The weights and activation parts LRP rules use (see PartMode).
Tensor part(const Tensor& t, int64_t mode, double value) {
  switch (mode) {
    case kGammaPart: return t + value * t.clamp_min(0);
    case kPositivePart: return t.clamp_min(0);
    case kNegativePart: return t.clamp_max(0);
    default: return torch::full_like(t, value);
  }
}

std::tuple<Tensor, Tensor> two(const variable_list& v) { return {v[0], v[1]}; }

// ---- products of two input-dependent tensors (DeepLift) --------------------------
//
// For a bilinear z = f(a, b), f(a, b) - f(a0, b0) = f(Δa, b̄) + f(ā, Δb) with
// ā, b̄ the means of input and reference: the graph computes s1 = f(a, b̄) and
// s2 = f(ā, b) beside z, and product(z, s1, s2) passes z on while its
// gradient goes to s1 and s2, so each factor's multiplier is f's derivative
// at the other's mean (the Shapley split of the two factors; exact). Layer
// norm's u * rsqrt(var) takes the ordered split f(Δa, b) + f(a0, Δb)
// instead (b at the input, a at the reference), also exact: from a zero
// baseline rsqrt(var0 + eps) is ~1000, and the symmetric split's two
// ~500-times-larger terms cancel to float32's noise.

// Each row of a pair replaced by the pair's mean (mode 0), its input row (1),
// its reference row (2) or the larger of the two (3); no gradient.
Tensor pair_pick(const Tensor& t, int64_t mode) {
  Tensor p = pairs(t.detach());
  Tensor one = mode == 0 ? p.mean(1, true) : mode == 3 ? std::get<0>(p.max(1, true)) : p.narrow(1, mode - 1, 1);
  return rows(one.expand_as(p));
}

struct Product : torch::autograd::Function<Product> {
  static Tensor forward(AutogradContext*, Tensor z, Tensor, Tensor) { return z; }
  static variable_list backward(AutogradContext*, variable_list grads) { return {Tensor(), grads[0], grads[0]}; }
};

// ---- attention (decomposed scaled_dot_product_attention) --------------------------

double attention_scale(const Tensor& q, c10::optional<double> scale) {
  return scale ? *scale : 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
}

// The additive bias of attention scores [..., L, S]: -inf where the causal
// mask or a boolean mask forbids, a float mask as it is.
Tensor attention_bias(const Tensor& q, const Tensor& k, const c10::optional<Tensor>& mask, bool causal) {
  int64_t L = q.size(-2), S = k.size(-2);
  Tensor bias = torch::zeros({L, S}, q.options());
  double inf = std::numeric_limits<double>::infinity();
  if (causal) bias = bias.masked_fill(torch::ones({L, S}, q.options().dtype(torch::kBool)).triu(1), -inf);
  if (mask && mask->defined()) {
    if (mask->scalar_type() == torch::kBool) bias = bias.masked_fill(mask->logical_not(), -inf);
    else bias = bias + mask->to(q.scalar_type());
  }
  return bias;
}

}  // namespace

void ensure_registered() {}

void use_fused_kernels(bool on) { fused_enabled = on; }

TORCH_LIBRARY(torchexplain, m) {
  m.def("act(Tensor x, Tensor y, int mode, str where=\"\") -> Tensor");
  m.def("rescale(Tensor x, Tensor y, Tensor? yt) -> (Tensor, Tensor)");
  m.def("rescale_softmax(Tensor x, Tensor y, Tensor? xt, int dim) -> (Tensor, Tensor)");
  m.def("rescale_maxpool(Tensor x, Tensor y, Tensor indices, Tensor? xt, int[] kernel, int[] stride, int[] padding, int[] dilation, bool ceil_mode) -> (Tensor, Tensor)");
  m.def("lrp_in(Tensor x, Tensor c) -> Tensor");
  m.def("lrp_out(Tensor zp, Tensor z, float eps) -> Tensor");
  m.def("part(Tensor t, int mode, float value) -> Tensor");
  m.def("pair_pick(Tensor t, int mode) -> Tensor");
  m.def("product(Tensor z, Tensor s1, Tensor s2) -> Tensor");
  m.def("attention_scale(Tensor q, float? scale) -> float");
  m.def("attention_bias(Tensor q, Tensor k, Tensor? mask, bool causal) -> Tensor");
}

TORCH_LIBRARY_IMPL(torchexplain, Autograd, m) {
  m.impl("act", [](const Tensor& x, const Tensor& y, int64_t mode, c10::string_view where) {
    return Act::apply(x, y, mode, std::string(where.data(), where.size()));
  });
  m.impl("rescale", [](const Tensor& x, const Tensor& y, const c10::optional<Tensor>& yt) {
    return two(RescaleAct::apply(x, y, yt));
  });
  m.impl("rescale_softmax", [](const Tensor& x, const Tensor& y, const c10::optional<Tensor>& xt, int64_t dim) {
    return two(RescaleSoftmax::apply(x, y, xt, dim));
  });
  m.impl("rescale_maxpool", [](const Tensor& x, const Tensor& y, const Tensor& indices, const c10::optional<Tensor>& xt,
                               c10::IntArrayRef k, c10::IntArrayRef s, c10::IntArrayRef p, c10::IntArrayRef d, bool ceil) {
    return two(RescaleMaxPool::apply(x, y, indices, xt, k.vec(), s.vec(), p.vec(), d.vec(), ceil));
  });
  m.impl("lrp_in", [](const Tensor& x, const Tensor& c) { return LrpIn::apply(x, c); });
  m.impl("lrp_out", [](const Tensor& zp, const Tensor& z, double eps) { return LrpOut::apply(zp, z, eps); });
  m.impl("product", [](const Tensor& z, const Tensor& s1, const Tensor& s2) { return Product::apply(z, s1, s2); });
}

// Without gradients (or on tensors that need none) the ops pass their value on.
TORCH_LIBRARY_IMPL(torchexplain, CompositeExplicitAutograd, m) {
  m.impl("act", [](const Tensor&, const Tensor& y, int64_t, c10::string_view) { return y; });
  m.impl("rescale", [](const Tensor&, const Tensor& y, const c10::optional<Tensor>&) { return std::make_tuple(y, y); });
  m.impl("rescale_softmax", [](const Tensor&, const Tensor& y, const c10::optional<Tensor>&, int64_t) {
    return std::make_tuple(y, y);
  });
  m.impl("rescale_maxpool", [](const Tensor&, const Tensor& y, const Tensor&, const c10::optional<Tensor>&, c10::IntArrayRef,
                               c10::IntArrayRef, c10::IntArrayRef, c10::IntArrayRef, bool) { return std::make_tuple(y, y); });
  m.impl("lrp_in", [](const Tensor&, const Tensor& c) { return c; });
  m.impl("lrp_out", [](const Tensor&, const Tensor& z, double) { return z; });
  m.impl("product", [](const Tensor& z, const Tensor&, const Tensor&) { return z; });
}

TORCH_LIBRARY_IMPL(torchexplain, CompositeImplicitAutograd, m) {
  m.impl("part", part);
  m.impl("pair_pick", pair_pick);
  m.impl("attention_scale", attention_scale);
  m.impl("attention_bias", attention_bias);
}

}  // namespace tx::ops
