// What every influence method shares: losses, per-example gradients of a
// model's parameters (closed forms for linear and convolution layers),
// sketches and their dot products, checkpoints, and the running top k.
#include "influence/influence.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/inliner.h>

#include "engine/batching.h"
#include "engine/errors.h"
#include "engine/scheduler.h"
#include "graph/rules.h"

namespace tx {

// ---- losses -----------------------------------------------------------------

Loss Loss::parse(const Value& v, const std::string& key) {
  Loss l;
  std::string name, reduction = "sum";
  if (v.kind == Value::Kind::String) {
    name = v.string;
  } else if (v.kind == Value::Kind::Object) {
    Options o(*v.object);
    const Value& n = o.get("name");
    if (n.kind != Value::Kind::String) fail(key, ".name: expected a loss name (crossEntropy, mse, nll, bce)");
    name = n.string;
    reduction = o.choice("reduction", "sum", {"sum", "mean", "none"});
    o.reject_unknown(key);
  } else {
    fail(key, ": expected a loss name (crossEntropy, mse, nll, bce) or { name, reduction }, got ", v.kind_name());
  }
  if (name == "crossEntropy") l.kind = Kind::CrossEntropy;
  else if (name == "mse") l.kind = Kind::Mse;
  else if (name == "nll") l.kind = Kind::Nll;
  else if (name == "bce") l.kind = Kind::Bce;
  else fail(key, ": unknown loss '", name, "' (crossEntropy, mse, nll, bce)");
  l.name = name;
  l.mean = reduction == "mean";
  return l;
}

namespace {

bool classes(Loss::Kind k) { return k == Loss::Kind::CrossEntropy || k == Loss::Kind::Nll; }

// Labels as the loss takes them: class ids as int64, or values shaped like the outputs.
torch::Tensor fitted_labels(const Loss& loss, const torch::Tensor& outputs, const torch::Tensor& labels) {
  if (classes(loss.kind) && !at::isFloatingType(labels.scalar_type())) return labels.to(torch::kLong);
  torch::Tensor y = labels.to(outputs.scalar_type());
  return y.sizes() == outputs.sizes() ? y : y.reshape(outputs.sizes());
}

}  // namespace

void Loss::check(const torch::Tensor& out, const torch::Tensor& labels, const std::string& what) const {
  int64_t n = out.size(0);
  if (labels.dim() == 0 || labels.size(0) != n)
    fail_shape(what, ": ", labels.dim() ? std::to_string(labels.size(0)) : std::string("no"), " labels for ", n, " examples");
  if (!at::isFloatingType(out.scalar_type())) fail("model output: expected floating-point outputs for the loss, got ", dtype_str(out.scalar_type()));
  if (classes(kind)) {
    if (out.dim() < 2) fail_shape("lossFn: ", name, " takes outputs [batch, classes, ...]; the model returns ", shape_str(out.sizes()));
    if (at::isFloatingType(labels.scalar_type())) {
      if (kind == Kind::CrossEntropy && labels.sizes() == out.sizes()) return;  // class probabilities
      fail(what, ": ", name, " takes class ids (int64, shape [", n, "]) ", kind == Kind::CrossEntropy ? "or class probabilities shaped like the outputs " : "",
           "; got ", dtype_str(labels.scalar_type()), " ", shape_str(labels.sizes()));
    }
    if (labels.scalar_type() == torch::kBool) fail(what, ": expected class ids (int64), got bool");
    std::vector<int64_t> want = {n};
    want.insert(want.end(), out.sizes().begin() + 2, out.sizes().end());
    if (labels.sizes() != at::IntArrayRef(want))
      fail_shape(what, ": shape ", shape_str(labels.sizes()), " does not fit the outputs ", shape_str(out.sizes()), " (expected ", shape_str(want), ")");
    torch::Tensor l = labels.to(torch::kLong);
    int64_t lo = l.numel() ? l.min().item<int64_t>() : 0, hi = l.numel() ? l.max().item<int64_t>() : 0;
    if (lo < 0 || hi >= out.size(1)) fail(what, ": class ids must lie in [0, ", out.size(1) - 1, "], got ", lo < 0 ? lo : hi);
    return;
  }
  if (labels.numel() != out.numel())
    fail_shape(what, ": shape ", shape_str(labels.sizes()), " does not fit the outputs ", shape_str(out.sizes()), " (", name, " compares them elementwise)");
  if (kind == Kind::Bce) {
    torch::NoGradGuard g;
    double lo = out.min().item<double>(), hi = out.max().item<double>();
    if (lo < 0 || hi > 1)
      fail("lossFn: bce takes probabilities (outputs in [0, 1]), and the model's outputs range over [", lo, ", ", hi,
           "]: end the model in a sigmoid");
    torch::Tensor y = labels.to(torch::kDouble);
    if (y.numel() && (y.min().item<double>() < 0 || y.max().item<double>() > 1)) fail(what, ": bce takes labels in [0, 1]");
  }
}

torch::Tensor Loss::per_example(const torch::Tensor& out, const torch::Tensor& labels) const {
  torch::Tensor y = fitted_labels(*this, out, labels);
  torch::Tensor e;
  switch (kind) {
    case Kind::CrossEntropy: e = at::cross_entropy_loss(out, y, {}, at::Reduction::None, -100, 0.0); break;
    case Kind::Nll: e = at::nll_loss_nd(out, y, {}, at::Reduction::None, -100); break;
    case Kind::Mse: e = at::mse_loss(out, y, at::Reduction::None); break;
    case Kind::Bce: e = at::binary_cross_entropy(out, y, {}, at::Reduction::None); break;
  }
  if (e.dim() == 1) return e;
  e = e.reshape({e.size(0), -1});
  return mean ? e.mean(1) : e.sum(1);
}

torch::Tensor labels_option(const Options& o, const std::string& key, int64_t n, c10::Device device) {
  const Value& v = o.get(key);
  if (!v.is_tensor()) fail(key, ": expected a Tensor of ", n, " labels, got ", v.kind_name());
  if (v.tensor.dim() == 0 || v.tensor.size(0) != n)
    fail_shape(key, ": ", v.tensor.dim() ? std::to_string(v.tensor.size(0)) : std::string("no"), " labels for ", n, " examples");
  return v.tensor.to(device);
}

// ---- sketches ----------------------------------------------------------------

torch::Tensor LayerGrads::flat() const {
  if (!factored()) return g;
  int64_t n = d.size(0), o = d.size(1);
  // a's last column is the bias's (ones) when it has one column more than the weight's inputs: see `bias`.
  torch::Tensor w = (d.unsqueeze(2) * a.narrow(1, 0, inputs).unsqueeze(1)).reshape({n, o * inputs});
  return bias ? torch::cat({w, d}, 1) : w;
}

LayerGrads LayerGrads::summed() const {
  LayerGrads s;
  if (!factored()) {
    s.g = g.sum(0, true);
    return s;
  }
  torch::Tensor m = d.t().mm(a);  // [O, I'] = sum_n d_n a_n^T
  torch::Tensor w = m.narrow(1, 0, inputs).reshape({1, -1});
  s.g = bias ? torch::cat({w, m.select(1, inputs).reshape({1, -1})}, 1) : w;
  return s;
}

namespace {

// Explicit rows x [nx, P] against a factored layer y: sum_{o,i} x[o,i] d_o a_i (+ bias).
torch::Tensor explicit_dot_factored(const LayerGrads& x, const LayerGrads& y) {
  int64_t o = y.d.size(1), in = y.inputs;
  if (x.g.size(0) > 4) return x.g.mm(y.flat().t());
  std::vector<torch::Tensor> rows;
  for (int64_t i = 0; i < x.g.size(0); ++i) {
    torch::Tensor w = x.g[i].narrow(0, 0, o * in).view({o, in});
    torch::Tensor m = y.bias ? torch::cat({w, x.g[i].narrow(0, o * in, o).view({o, 1})}, 1) : w;  // [O, I']
    rows.push_back((y.d.mm(m) * y.a).sum(1));
  }
  return torch::stack(rows);
}

}  // namespace

torch::Tensor sketch_dot(const Sketch& x, const Sketch& y) {
  if (x.size() != y.size()) fail("sketch: ", x.size(), " layers against ", y.size());
  torch::Tensor total;
  for (size_t l = 0; l < x.size(); ++l) {
    const LayerGrads &a = x[l], &b = y[l];
    torch::Tensor s;
    if (a.factored() && b.factored()) s = a.d.mm(b.d.t()) * a.a.mm(b.a.t());
    else if (!a.factored() && !b.factored()) s = a.g.mm(b.g.t());
    else if (!a.factored()) s = explicit_dot_factored(a, b);
    else s = explicit_dot_factored(b, a).t();
    total = total.defined() ? total + s : s;
  }
  return total;
}

torch::Tensor sketch_norms(const Sketch& x) {
  torch::Tensor total;
  for (const auto& l : x) {
    torch::Tensor s = l.factored() ? l.d.pow(2).sum(1) * l.a.pow(2).sum(1) : l.g.pow(2).sum(1);
    total = total.defined() ? total + s : s;
  }
  return total;
}

torch::Tensor sketch_flat(const Sketch& x) {
  std::vector<torch::Tensor> parts;
  for (const auto& l : x) parts.push_back(l.flat());
  return torch::cat(parts, 1);
}

std::vector<torch::Tensor> encode_sketches(const std::vector<Sketch>& sketches) {
  std::vector<torch::Tensor> out;
  for (const auto& s : sketches) {
    std::vector<int64_t> header = {static_cast<int64_t>(s.size())};
    for (const auto& l : s) header.push_back(l.factored() ? (l.bias ? 2 : 1) : 0);
    out.push_back(torch::tensor(header, torch::kLong));
    for (const auto& l : s) {
      if (l.factored()) {
        out.push_back(l.d);
        out.push_back(l.a);
      } else {
        out.push_back(l.g);
      }
    }
  }
  return out;
}

std::vector<Sketch> decode_sketches(const Value& v, const std::string& key) {
  if (!v.is_list()) fail(key, ": expected the sketch tensors made by an earlier call");
  std::vector<Sketch> out;
  const List& l = *v.list;
  auto tensor_at = [&](size_t i) -> torch::Tensor {
    if (i >= l.size() || !l[i].is_tensor()) fail(key, ": not a sketch made by an earlier call");
    return l[i].tensor;
  };
  for (size_t i = 0; i < l.size();) {
    torch::Tensor header = tensor_at(i++).to(torch::kCPU);
    if (header.scalar_type() != torch::kLong || header.dim() != 1 || header.numel() < 1) fail(key, ": not a sketch made by an earlier call");
    int64_t layers = header[0].item<int64_t>();
    if (header.numel() != layers + 1) fail(key, ": not a sketch made by an earlier call");
    Sketch s;
    for (int64_t k = 0; k < layers; ++k) {
      LayerGrads g;
      int64_t kind = header[k + 1].item<int64_t>();
      if (kind == 0) {
        g.g = tensor_at(i++);
      } else {
        g.d = tensor_at(i++);
        g.a = tensor_at(i++);
        g.bias = kind == 2;
        g.inputs = g.a.size(1) - (g.bias ? 1 : 0);
      }
      s.push_back(std::move(g));
    }
    out.push_back(std::move(s));
  }
  return out;
}

// ---- which parameters, and how their per-example gradients are taken ----------

namespace {

enum class Form { Linear, Conv, Replay };

struct ConvShape {
  int64_t dims = 2, groups = 1;
  std::vector<int64_t> stride, padding, dilation;
};

struct LayerInfo {
  std::string name;
  std::vector<torch::Tensor> params;  // the module's own, in order
  Form form = Form::Replay;
  bool bias = false;
  ConvShape conv;
};

// The module's class, its TorchScript name mangling dropped:
// "__torch__.torch.nn.modules.conv.___torch_mangle_0.Conv2d" -> "torch.nn.modules.conv.Conv2d".
std::string type_name(const torch::jit::Module& m) {
  auto t = m.type()->name();
  if (!t) return "";
  std::string out;
  for (const auto& part : t->atoms())
    if (part != "__torch__" && part.rfind("___torch_mangle_", 0) != 0) out += (out.empty() ? "" : ".") + part;
  return out;
}

std::optional<std::vector<int64_t>> int_list(torch::jit::Value* v) {
  if (auto iv = torch::jit::toIValue(v)) {
    if (iv->isIntList()) return iv->toIntVector();
    if (iv->isInt()) return std::vector<int64_t>{iv->toInt()};
    return std::nullopt;
  }
  if (v->node()->kind() == c10::prim::ListConstruct) {
    std::vector<int64_t> out;
    for (auto* in : v->node()->inputs()) {
      auto iv = torch::jit::toIValue(in);
      if (!iv || !iv->isInt()) return std::nullopt;
      out.push_back(iv->toInt());
    }
    return out;
  }
  return std::nullopt;
}

// The hyperparameters of a convolution module's one convolution (its forward
// graph inlined, constants propagated); none when it pads by another mode,
// is transposed, or is not a plain convolution.
std::optional<ConvShape> conv_shape(const torch::jit::Module& m, int64_t dims) {
  if (!m.find_method("forward")) return std::nullopt;
  auto g = m.get_method("forward").graph()->copy();
  torch::jit::Inline(*g);
  torch::jit::ConstantPropagation(g);
  torch::jit::Node* conv = nullptr;
  int convs = 0;
  for (auto* n : g->nodes()) {
    std::string k = n->kind().toQualString();
    if (k == "aten::conv1d" || k == "aten::conv2d" || k == "aten::_convolution" || k == "aten::convolution") conv = n, ++convs;
    if (k.find("pad") != std::string::npos || n->kind() == c10::prim::If || n->kind() == c10::prim::Loop) return std::nullopt;
  }
  if (convs != 1) return std::nullopt;
  std::string k = conv->kind().toQualString();
  bool full = k == "aten::_convolution" || k == "aten::convolution";
  auto stride = int_list(conv->input(3)), padding = int_list(conv->input(4)), dilation = int_list(conv->input(5));
  auto groups = torch::jit::toIValue(conv->input(full ? 8 : 6));
  if (!stride || !padding || !dilation || !groups || !groups->isInt()) return std::nullopt;
  if (full) {
    auto transposed = torch::jit::toIValue(conv->input(6));
    if (!transposed || !transposed->isBool() || transposed->toBool()) return std::nullopt;
  }
  ConvShape s;
  s.dims = dims;
  auto expand = [&](std::vector<int64_t> v) {
    if (v.size() == 1 && dims == 2) v.push_back(v[0]);
    return static_cast<int64_t>(v.size()) == dims ? std::optional<std::vector<int64_t>>(v) : std::nullopt;
  };
  auto st = expand(*stride), pa = expand(*padding), di = expand(*dilation);
  if (!st || !pa || !di) return std::nullopt;
  s.stride = *st, s.padding = *pa, s.dilation = *di, s.groups = groups->toInt();
  return s;
}

LayerInfo layer_info(const std::string& name, const torch::jit::Module& m) {
  LayerInfo info;
  info.name = name;
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters(/*recurse=*/false)) {
    names.push_back(p.name);
    info.params.push_back(p.value);
  }
  std::string type = type_name(m);
  bool weight_bias = !names.empty() && names[0] == "weight" && (names.size() == 1 || (names.size() == 2 && names[1] == "bias"));
  info.bias = names.size() == 2;
  if (weight_bias && type == "torch.nn.modules.linear.Linear" && info.params[0].dim() == 2) {
    info.form = Form::Linear;
  } else if (weight_bias && (type == "torch.nn.modules.conv.Conv2d" || type == "torch.nn.modules.conv.Conv1d")) {
    int64_t dims = type.back() == 'd' && type[type.size() - 2] == '2' ? 2 : 1;
    if (auto s = conv_shape(m, dims)) {
      info.form = Form::Conv;
      info.conv = *s;
    }
  }
  return info;
}

// The modules whose own parameters make up `names` (each a module and its
// descendants, as the reference's layers), or every module with parameters.
std::vector<LayerInfo> resolve_layers(const torch::jit::Module& root, const std::vector<std::string>& names) {
  std::vector<LayerInfo> out;
  auto own = [](const torch::jit::Module& m) { return m.named_parameters(false).size() > 0; };
  if (names.empty()) {
    for (const auto& m : root.named_modules())
      if (own(m.value)) out.push_back(layer_info(m.name, m.value));
    return out;
  }
  std::vector<std::string> all;
  for (const auto& m : root.named_modules())
    if (!m.name.empty()) all.push_back(m.name);
  for (size_t i = 0; i < names.size(); ++i) {
    bool found = false;
    size_t before = out.size();
    for (const auto& m : root.named_modules()) {
      if (m.name != names[i]) continue;
      found = true;
      for (const auto& sub : m.value.named_modules())
        if (own(sub.value)) out.push_back(layer_info(sub.name.empty() ? m.name : m.name + "." + sub.name, sub.value));
      break;
    }
    if (!found) fail("layers[", i, "]: the model has no layer '", names[i], "': ", known_names(names[i], all));
    if (out.size() == before) fail("layers[", i, "]: '", names[i], "' has no parameters (influence is measured on parameters)");
  }
  return out;
}

// Per-example gradients of a linear layer from its input a [n, ..., I] and
// output gradient d [n, ..., O].
LayerGrads linear_grads(const torch::Tensor& a, const torch::Tensor& d, bool bias, bool weight_only) {
  LayerGrads g;
  int64_t n = a.size(0), in = a.size(-1), o = d.size(-1);
  if (a.dim() == 2) {
    g.d = d;
    g.a = bias && !weight_only ? torch::cat({a, torch::ones({n, 1}, a.options())}, 1) : a;
    g.bias = bias && !weight_only;
    g.inputs = in;
    return g;
  }
  if (weight_only) fail_shape("fcLayer: the layer's inputs are ", shape_str(a.sizes()), "; TracInCPFast needs [batch, features]");
  torch::Tensor a3 = a.reshape({n, -1, in}), d3 = d.reshape({n, -1, o});
  torch::Tensor w = d3.transpose(1, 2).bmm(a3).reshape({n, o * in});
  g.g = bias ? torch::cat({w, d3.sum(1)}, 1) : w;
  return g;
}

// Per-example gradients of a convolution from its input and output gradient:
// the weight's as one grouped convolution's weight gradient, the examples
// stacked along the channels (group n*g + i is example n's group i), which
// runs the library's convolution kernels (9x faster than unfolding the input
// and multiplying on a 500 x 3 x 16 x 16 batch).
LayerGrads conv_grads(const LayerInfo& l, torch::Tensor a, torch::Tensor d) {
  const ConvShape& c = l.conv;
  const torch::Tensor& w = l.params[0];
  int64_t n = a.size(0), o = w.size(0);
  std::vector<int64_t> stride = c.stride, padding = c.padding, dilation = c.dilation;
  std::vector<int64_t> kernel(w.sizes().begin() + 2, w.sizes().end());
  if (c.dims == 1) {  // as a 2-d convolution of height 1
    a = a.unsqueeze(2), d = d.unsqueeze(2);
    kernel.insert(kernel.begin(), 1);
    stride.insert(stride.begin(), 1), padding.insert(padding.begin(), 0), dilation.insert(dilation.begin(), 1);
  }
  torch::Tensor stacked_in = a.contiguous().reshape({1, n * a.size(1), a.size(2), a.size(3)});
  torch::Tensor stacked_grad = d.contiguous().reshape({1, n * o, d.size(2), d.size(3)});
  torch::Tensor shape = torch::empty({n * o, w.size(1), kernel[0], kernel[1]}, a.options());
  auto grads = at::convolution_backward(stacked_grad, stacked_in, shape, c10::nullopt, stride, padding, dilation, false, {0, 0},
                                        n * c.groups, {false, true, false});
  LayerGrads out;
  torch::Tensor gw = std::get<1>(grads).reshape({n, -1});
  out.g = l.bias ? torch::cat({gw, d.sum({2, 3})}, 1) : gw;
  return out;
}

}  // namespace

GradientSpec gradient_spec(const Options& o, const Model& model, bool fast) {
  GradientSpec s;
  s.loss = Loss::parse(o.get("lossFn"), "lossFn");
  if (fast) {
    const Value& v = o.get("fcLayer");
    if (v.kind != Value::Kind::String) fail("fcLayer: expected the dotted name of the final linear layer, got ", v.kind_name());
    s.layers = {v.string};
    s.weight_only = true;
    auto infos = resolve_layers(model.module(), s.layers);
    if (infos.size() != 1 || infos[0].form != Form::Linear)
      fail("fcLayer: '", v.string, "' is not a linear layer (TracInCPFast takes the final nn.Linear)");
    return s;
  }
  const Value& v = o.get("layers");
  if (!v.is_none()) {
    if (!v.is_list() || v.list->empty()) fail("layers: expected an array of layer names");
    for (size_t i = 0; i < v.list->size(); ++i) {
      const Value& e = (*v.list)[i];
      if (e.kind != Value::Kind::String) fail("layers[", i, "]: expected a layer name, got ", e.kind_name());
      s.layers.push_back(e.string);
    }
    resolve_layers(model.module(), s.layers);  // names checked now
  }
  return s;
}

namespace {

// The measured layers, their parameters made to require gradients (a saved
// model may have frozen them): gradients then reach every measured layer.
std::vector<LayerInfo> measured_layers(const Model& model, const GradientSpec& spec) {
  std::vector<LayerInfo> layers = resolve_layers(model.module(), spec.layers);
  if (layers.empty()) fail("model: has no parameters to measure influence on");
  for (auto& l : layers)
    for (auto& p : l.params)
      if (at::isFloatingType(p.scalar_type()) && !p.requires_grad()) p.requires_grad_(true);
  if (spec.weight_only) layers[0].params.resize(1);
  return layers;
}

// Whether a model tapped for one layer (forward returns (output, layer input,
// layer output)) returns the layer's output as its own.
bool returns_tapped_output(const Model& tapped) {
  const auto& g = *tapped.module().get_method("forward").graph();
  if (g.outputs().size() != 1) return false;
  const torch::jit::Node* tuple = g.outputs()[0]->node();
  return tuple->kind() == c10::prim::TupleConstruct && tuple->inputs().size() == 3 && tuple->input(0) == tuple->input(2);
}

}  // namespace

std::vector<torch::Tensor> measured_parameters(const Model& model, const GradientSpec& spec) {
  std::vector<torch::Tensor> out;
  for (const auto& l : measured_layers(model, spec)) out.insert(out.end(), l.params.begin(), l.params.end());
  return out;
}

Sketch example_gradients(const Context& ctx, const Model& model, const GradientSpec& spec, const torch::Tensor& labels) {
  std::vector<LayerInfo> layers = measured_layers(model, spec);
  std::vector<size_t> closed, replay;
  for (size_t i = 0; i < layers.size(); ++i) (layers[i].form == Form::Replay ? replay : closed).push_back(i);
  Context tctx = ctx;
  if (!closed.empty()) {
    Taps taps;
    taps.both = true;
    taps.mode = TapMode::Append;
    for (size_t i : closed) taps.layers.push_back(layers[i].name);
    try {
      tctx = with_rules(ctx, "influence", [](GraphRewrite&) {}, false, taps);
    } catch (const ArgumentError&) {
      // A layer called twice, or through an indirection: taken like the others.
      replay.insert(replay.end(), closed.begin(), closed.end());
      std::sort(replay.begin(), replay.end());
      closed.clear();
    }
  }
  if (spec.weight_only && closed.empty()) fail("fcLayer: '", layers[0].name, "' must be called once, as self.", layers[0].name, "(x), in forward()");
  std::vector<torch::Tensor> replay_params;
  for (size_t i : replay)
    for (const auto& p : layers[i].params) replay_params.push_back(p);

  // One measured layer whose output is the model's (TracInCPFast's final
  // layer, usually): its output gradient is the loss's gradient at the output,
  // so the forward pass records no graph.
  bool last_only = replay.empty() && closed.size() == 1 && returns_tapped_output(*tctx.model);
  auto out = map_rows(tctx, identity_rows(ctx.batch), slice_of(ctx.inputs), [&](const ChunkCall& c) {
    std::vector<torch::Tensor> values;
    if (last_only) {
      torch::NoGradGuard no_grad;
      values = c.model.forward_values(c.leaves, c.extra);
      values[0] = values[2] = values[0].detach().requires_grad_(true);
    } else {
      values = closed.empty() ? std::vector<torch::Tensor>{c.model.forward(c.leaves, c.extra)} : c.model.forward_values(c.leaves, c.extra);
    }
    torch::Tensor y = labels.index_select(0, c.examples.to(labels.device()));
    spec.loss.check(values[0], y, "labels");
    torch::Tensor losses = spec.loss.per_example(values[0], y);
    if (!losses.requires_grad()) fail("model output: does not depend on the parameters (is the output detached, or computed under no_grad?)");
    std::vector<torch::Tensor> result;
    if (!closed.empty()) {
      std::vector<torch::Tensor> outs;
      for (size_t k = 0; k < closed.size(); ++k) outs.push_back(values[2 + 2 * k]);
      auto deltas = torch::autograd::grad({losses.sum()}, outs, {}, /*retain_graph=*/!replay.empty(), false, /*allow_unused=*/true);
      for (size_t k = 0; k < closed.size(); ++k) {
        const LayerInfo& l = layers[closed[k]];
        torch::Tensor a = values[1 + 2 * k].detach(), d = deltas[k].defined() ? deltas[k] : torch::zeros_like(outs[k]);
        LayerGrads g = l.form == Form::Linear ? linear_grads(a, d, l.bias, spec.weight_only) : conv_grads(l, a, d);
        if (g.factored()) {
          result.push_back(g.d);
          result.push_back(g.a);
        } else {
          result.push_back(g.g);
          result.push_back(torch::zeros({g.g.size(0), 0}, g.g.options()));
        }
      }
    }
    if (!replay.empty()) {
      // One backward pass per example through the batch's graph, for
      // parameters with no closed form.
      int64_t rows = losses.size(0);
      std::vector<torch::Tensor> per_row;
      for (int64_t r = 0; r < rows; ++r) {
        check_cancelled();
        auto grads = torch::autograd::grad({losses[r]}, replay_params, {}, /*retain_graph=*/r + 1 < rows, false, /*allow_unused=*/true);
        std::vector<torch::Tensor> flat;
        for (size_t p = 0; p < grads.size(); ++p)
          flat.push_back(grads[p].defined() ? grads[p].reshape(-1) : torch::zeros({replay_params[p].numel()}, replay_params[p].options()));
        per_row.push_back(torch::cat(flat));
      }
      // Split back per layer.
      torch::Tensor all = torch::stack(per_row);
      int64_t at = 0;
      for (size_t i : replay) {
        int64_t size = 0;
        for (const auto& p : layers[i].params) size += p.numel();
        result.push_back(all.narrow(1, at, size));
        at += size;
      }
    }
    return result;
  });

  // Back into layer order: two tensors a closed-form layer (d and a when
  // factored, the rows and an empty [n, 0] otherwise), one a replayed one.
  Sketch sketch(layers.size());
  size_t t = 0;
  for (size_t k = 0; k < closed.size(); ++k, t += 2) {
    const LayerInfo& l = layers[closed[k]];
    LayerGrads& g = sketch[closed[k]];
    if (out[t + 1].size(1) == 0) {
      g.g = out[t];
    } else {
      g.d = out[t];
      g.a = out[t + 1];
      g.bias = l.bias && !spec.weight_only;
      g.inputs = l.params[0].size(1);
    }
  }
  for (size_t i : replay) sketch[i].g = out[t++];
  return sketch;
}

// ---- checkpoints, contexts, ranking -----------------------------------------------

std::vector<Checkpoint> checkpoints_option(const Options& o, const Model& model) {
  const Value& v = o.get("checkpoints");
  if (!v.is_list() || v.list->empty()) fail("checkpoints: expected an array of checkpoints (TorchScript files of the model)");
  const Value& rates = o.get("learningRates");
  if (!rates.is_none() && (!rates.is_list() || rates.list->size() != v.list->size()))
    fail("learningRates: expected one number per checkpoint (", v.list->size(), ")");
  std::vector<std::pair<std::string, std::vector<int64_t>>> want;
  for (const auto& p : model.module().named_parameters(true)) want.emplace_back(p.name, p.value.sizes().vec());
  std::vector<Checkpoint> out;
  for (size_t i = 0; i < v.list->size(); ++i) {
    const Value& c = (*v.list)[i];
    if (c.kind != Value::Kind::Model) fail("checkpoints[", i, "]: expected a loaded checkpoint, got ", c.kind_name());
    Checkpoint ck{c.model, 1.0};
    if (!rates.is_none()) {
      const Value& r = (*rates.list)[i];
      if (!r.is_number() || !std::isfinite(r.number) || r.number < 0)
        fail("learningRates[", i, "]: expected a finite number >= 0, got ", r.is_number() ? std::to_string(r.number) : r.kind_name());
      ck.learning_rate = r.number;
    }
    std::vector<std::pair<std::string, std::vector<int64_t>>> got;
    for (const auto& p : c.model->module().named_parameters(true)) got.emplace_back(p.name, p.value.sizes().vec());
    if (got != want) {
      std::string why;
      for (size_t k = 0; k < std::max(got.size(), want.size()) && why.empty(); ++k) {
        if (k >= got.size()) why = concat("it lacks the model's parameter ", want[k].first);
        else if (k >= want.size()) why = concat("it has a parameter the model lacks, ", got[k].first);
        else if (got[k].first != want[k].first) why = concat("its parameter ", k, " is ", got[k].first, " where the model's is ", want[k].first);
        else if (got[k].second != want[k].second)
          why = concat(got[k].first, " is ", shape_str(got[k].second), " where the model's is ", shape_str(want[k].second));
      }
      fail("checkpoints[", i, "]: '", c.model->path(), "' does not hold the model's parameters: ", why);
    }
    out.push_back(ck);
  }
  return out;
}

Context with_model(const Context& ctx, const std::shared_ptr<const Model>& model) {
  Context c = ctx;
  c.model = c.source = model;
  return c;
}

Context rows_of(const Context& ctx, int64_t b, int64_t e) {
  std::vector<torch::Tensor> inputs;
  for (const auto& x : ctx.inputs) inputs.push_back(x.narrow(0, b, e - b));
  return ctx.with_rows(std::move(inputs), torch::arange(b, e, torch::kLong));
}

torch::Tensor by_slices(const Context& ctx, int64_t dim, const torch::Tensor& labels,
                        const std::function<torch::Tensor(const Context&, const torch::Tensor& labels)>& fn) {
  int64_t step = ctx.chunk_rows > 0 ? ctx.chunk_rows : ctx.batch;
  std::vector<torch::Tensor> parts;
  for (int64_t b = 0; b < ctx.batch; b += step) {
    int64_t e = std::min(ctx.batch, b + step);
    check_cancelled();
    parts.push_back(fn(rows_of(ctx, b, e), labels.narrow(0, b, e - b)));
  }
  return torch::cat(parts, dim);
}

void merge_top_k(const torch::Tensor& scores, int64_t offset, int64_t k, bool largest, torch::Tensor& indices, torch::Tensor& values) {
  auto [v, i] = torch::topk(scores, std::min<int64_t>(k, scores.size(1)), 1, largest, true);
  i = i + offset;
  if (indices.defined() && indices.size(1) > 0) {
    torch::Tensor all_v = torch::cat({values.to(v.device(), v.scalar_type()), v}, 1), all_i = torch::cat({indices.to(i.device()), i}, 1);
    auto [best_v, at] = torch::topk(all_v, std::min<int64_t>(k, all_v.size(1)), 1, largest, true);
    v = best_v;
    i = all_i.gather(1, at);
  }
  indices = i;
  values = v;
}

Result ranked(const torch::Tensor& scores, const Options& o) {
  if (!o.has("k")) return {{scores}, {}};
  int64_t k = o.integer("k", 1, 1);
  bool largest = o.boolean("proponents", true);
  int64_t offset = o.integer("offset", 0, 0);
  torch::Tensor indices, values;
  const Value& best = o.get("best");
  if (!best.is_none()) {
    if (!best.is_list() || best.list->size() != 2 || !(*best.list)[0].is_tensor() || !(*best.list)[1].is_tensor())
      fail("best: expected [indices, values] from an earlier chunk");
    indices = (*best.list)[0].tensor;
    values = (*best.list)[1].tensor;
  }
  merge_top_k(scores, offset, k, largest, indices, values);
  return {{indices, values}, {}};
}

}  // namespace tx
