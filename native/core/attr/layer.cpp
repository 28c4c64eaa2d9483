// Layer and neuron attribution. A named submodule's value is reached by
// surgery on a copy of the forward graph (graph_rewrite.h, Taps): returned
// (the layer's value is the output: neuron methods are the input methods
// with the neuron as target), appended to the output (gradients at the
// layer), or made an argument (the layer's value is the input: layer
// integrated gradients and ablation are the input methods run on it).
#include "algorithms.h"
#include "engine/errors.h"
#include "attr/path.h"
#include "attr/perturbation.h"
#include "graph/rule_ops.h"
#include "graph/rules.h"

namespace tx {

namespace {

using torch::Tensor;

// The layer option(s): `layer` (a dotted name, or several for the methods
// that take several) and whether to attribute to the layer's input.
Taps layer_option(const Options& o, const char* input_key, bool several = false) {
  Taps t;
  const Value& v = o.get("layer");
  if (v.kind == Value::Kind::String) {
    t.layers = {v.string};
  } else if (several && v.is_list() && !v.list->empty()) {
    for (const auto& e : *v.list) {
      if (e.kind != Value::Kind::String) fail("layer: expected layer names, got ", e.kind_name());
      t.layers.push_back(e.string);
    }
  } else {
    fail("layer: expected the dotted name of a submodule (model.layers() lists them)", several ? ", or an array of them" : "",
         v.is_none() ? "" : std::string(", got ") + v.kind_name());
  }
  t.input = o.boolean(input_key, false);
  return t;
}

Context tapped(const Context& ctx, Taps taps, TapMode mode) {
  taps.mode = mode;
  return with_rules(ctx, "taps", [](GraphRewrite&) {}, true, taps);
}

// The layers' values for `inputs` (rows explaining ctx's examples one to one).
std::vector<Tensor> layer_values(const Context& ctx, const Taps& taps, const std::vector<Tensor>& inputs) {
  Context c = tapped(ctx, taps, TapMode::Return);
  return map_rows(c, identity_rows(ctx.batch), slice_of(inputs), [](const ChunkCall& call) {
    torch::NoGradGuard no_grad;
    return call.model.forward_values(call.leaves, call.extra);
  });
}

// The model with the layers' values as its attributed inputs (the original
// inputs follow as forward arguments, for paths that bypass the layers).
Context substituted(const Context& ctx, const Taps& taps, std::vector<Tensor> layer_inputs) {
  Context s = tapped(ctx, taps, TapMode::Substitute);
  s.extra.assign(ctx.inputs.begin(), ctx.inputs.end());
  s.extra.insert(s.extra.end(), ctx.extra.begin(), ctx.extra.end());
  s.inputs = std::move(layer_inputs);
  return s;
}

Value tensors_value(const std::vector<Tensor>& ts) {
  List l;
  for (const auto& t : ts) l.push_back(Value::of(t));
  return Value::of(std::move(l));
}

// Options handed to an input method, with some renamed (layerBaselines ->
// baselines) and the layer's own keys left out.
Options handed_on(const Options& o, const std::vector<std::pair<std::string, std::string>>& renames,
                  const std::vector<std::string>& drop) {
  std::vector<std::string> skip = context_keys();
  skip.insert(skip.end(), drop.begin(), drop.end());
  for (const auto& r : renames) skip.push_back(r.first);
  Options out(o.without(skip));
  for (const auto& [from, to] : renames)
    if (o.has(from)) out.set(to, o.get(from));
  return out;
}

// Runs `fn`, rephrasing messages that start with one of `prefixes` (an input
// method's name, "target") as the caller's (the layer method, "neuronSelector").
template <typename Fn>
auto relabel(const std::vector<std::pair<std::string, std::string>>& prefixes, Fn fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (const ArgumentError& e) {
    std::string m = e.what();
    for (const auto& [from, to] : prefixes)
      if (m.rfind(from, 0) == 0) throw ArgumentError(to + m.substr(from.size()), e.code());
    throw;
  }
}

Result with_delta(Result r, const Context& ctx, bool want, const std::vector<Tensor>& baselines) {
  if (want) r.delta = convergence_delta(ctx, r.attributions, baselines, ctx.inputs);
  return r;
}

// Per-row tensors [steps * n, ...] (step-major) weighted by `w` and summed per example.
Tensor weighted_step_sum(const Tensor& rows, const Tensor& w, int64_t n) {
  int64_t steps = rows.size(0) / n;
  std::vector<int64_t> shape = {steps, n};
  shape.insert(shape.end(), rows.sizes().begin() + 1, rows.sizes().end());
  return (rows.view(shape) * per_row(w.to(rows.scalar_type()), rows.view(shape))).sum(0);
}

// GradCAM: channel weights from the layer gradient averaged over space,
// times the activations, summed over channels.
Tensor grad_cam(const Context& ctx, const Taps& taps, bool relu, bool sum_channels) {
  LayerRows r = layer_gradients(tapped(ctx, taps, TapMode::Append), identity_rows(ctx.batch), slice_of(ctx.inputs));
  Tensor g = r.grads[0], a = r.values[0];
  if (g.dim() > 2) {
    std::vector<int64_t> space;
    for (int64_t d = 2; d < g.dim(); ++d) space.push_back(d);
    g = g.mean(space, true);
  }
  Tensor cam = sum_channels ? (g * a).sum(1, true) : g * a;
  return relu ? torch::relu(cam) : cam;
}

}  // namespace

Tensor interpolate(const Tensor& t, const std::vector<int64_t>& size, const std::string& mode) {
  int64_t dims = t.dim() - 2;
  if (dims < 1 || dims > 3 || static_cast<int64_t>(size.size()) != dims)
    fail("size: expected ", std::max<int64_t>(dims, 1), " output sizes for a tensor of shape ", shape_str(t.sizes()),
         " ([batch, channels, ...spatial])");
  if (mode == "nearest") {
    if (dims == 1) return at::upsample_nearest1d(t, size);
    if (dims == 2) return at::upsample_nearest2d(t, size);
    return at::upsample_nearest3d(t, size);
  }
  if (mode == "area") {
    if (dims == 1) return at::adaptive_avg_pool1d(t, size);
    if (dims == 2) return at::adaptive_avg_pool2d(t, size);
    return at::adaptive_avg_pool3d(t, size);
  }
  if (mode == "linear" && dims == 1) return at::upsample_linear1d(t, size, false);
  if (mode == "bilinear" && dims == 2) return at::upsample_bilinear2d(t, size, false);
  if (mode == "bicubic" && dims == 2) return at::upsample_bicubic2d(t, size, false);
  if (mode == "trilinear" && dims == 3) return at::upsample_trilinear3d(t, size, false);
  fail("mode: expected 'nearest', 'area', 'linear' (1-d), 'bilinear' or 'bicubic' (2-d) or 'trilinear' (3-d) for ", dims,
       "-d data, got '", mode, "'");
}

// ---- layer methods -----------------------------------------------------------------

Result layer_activation(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput", true);
  o.reject_unknown("LayerActivation");
  return {layer_values(ctx, taps, ctx.inputs), {}};
}

Result layer_gradient_x_activation(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  bool multiply = o.boolean("multiplyByInputs", true);
  o.reject_unknown("LayerGradientXActivation");
  LayerRows r = layer_gradients(tapped(ctx, taps, TapMode::Append), identity_rows(ctx.batch), slice_of(ctx.inputs));
  return {{multiply ? r.grads[0] * r.values[0] : r.grads[0]}, {}};
}

Result layer_grad_cam(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  bool relu = o.boolean("reluAttributions", false), sum = o.boolean("attrDimSummation", true);
  o.reject_unknown("LayerGradCam");
  return {{grad_cam(ctx, taps, relu, sum)}, {}};
}

Result guided_grad_cam(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  std::string mode = o.choice("interpolateMode", "nearest", {"nearest", "area", "linear", "bilinear", "bicubic", "trilinear"});
  o.reject_unknown("GuidedGradCam");
  Tensor cam = grad_cam(ctx, taps, true, true);
  auto guided = row_gradients(guided_context(ctx, ops::kGuided), identity_rows(ctx.batch), slice_of(ctx.inputs));
  for (size_t i = 0; i < guided.size(); ++i) {
    auto spatial = guided[i].sizes().slice(2).vec();
    guided[i] = guided[i] * interpolate(cam, spatial, mode);
  }
  return {guided, {}};
}

Result internal_influence(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  Quadrature q = quadrature_option(o);
  auto baselines = format_baselines(ctx, o.get("baselines"));
  o.reject_unknown("InternalInfluence");
  std::vector<Tensor> diffs;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) diffs.push_back(ctx.inputs[i] - baselines[i]);
  int64_t n = ctx.batch, steps = static_cast<int64_t>(q.alphas.size());
  Tensor alphas = quadrature_tensor(q.alphas, ctx.inputs[0]);
  LayerRows r = layer_gradients(tapped(ctx, taps, TapMode::Append), Rows::step_major(n, steps), [&](int64_t b, int64_t e) {
    return Chunk{path_points(baselines, diffs, alphas, n, b, e), nullptr, false};
  });
  return {{weighted_step_sum(r.grads[0], quadrature_tensor(q.weights, ctx.inputs[0]), n)}, {}};
}

Result layer_conductance(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  int64_t steps = o.integer("nSteps", 50, 1);
  // Differences between consecutive points: one point more than steps.
  Quadrature q = quadrature(o.choice("method", "gausslegendre", quadrature_methods()), steps + 1);
  auto baselines = format_baselines(ctx, o.get("baselines"));
  bool want_delta = o.boolean("returnConvergenceDelta", false);
  o.reject_unknown("LayerConductance");
  int64_t n = ctx.batch;
  // Integer inputs (token ids) have no path between them: it runs between
  // the layer's values instead (as LayerIntegratedGradients'), and the
  // layer's values along it are the path's points.
  bool ids = !integer_inputs(ctx).empty();
  Context c = ids ? substituted(ctx, taps, layer_values(ctx, taps, ctx.inputs)) : tapped(ctx, taps, TapMode::Append);
  std::vector<Tensor> starts = ids ? layer_values(ctx, taps, baselines) : baselines;
  std::vector<Tensor> diffs;
  for (size_t i = 0; i < c.inputs.size(); ++i) diffs.push_back(c.inputs[i] - starts[i]);
  Tensor alphas = quadrature_tensor(q.alphas, c.inputs[0]);
  auto points = [&](int64_t b, int64_t e) { return Chunk{path_points(starts, diffs, alphas, n, b, e), nullptr, false}; };
  Rows rows = Rows::step_major(n, steps + 1);
  LayerRows r;
  if (ids) {
    r.grads = row_gradients(c, rows, points);
    r.values = points(0, rows.count).inputs;
  } else {
    r = layer_gradients(c, rows, points);
  }
  const Tensor &g = r.grads[0], &v = r.values[0];
  Tensor per_step = g.slice(0, 0, steps * n) * (v.slice(0, n) - v.slice(0, 0, steps * n));
  Tensor ones = torch::ones({steps}, per_step.options());
  return with_delta({{weighted_step_sum(per_step, ones, n)}, {}}, ctx, want_delta, baselines);
}

Result layer_integrated_gradients(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput", true);
  auto baselines = format_baselines(ctx, o.get("baselines"));
  bool want_delta = o.boolean("returnConvergenceDelta", false);
  Options ig = handed_on(o, {}, {"layer", "attributeToLayerInput", "baselines", "returnConvergenceDelta"});
  ig.set("baselines", tensors_value(layer_values(ctx, taps, baselines)));
  Context s = substituted(ctx, taps, layer_values(ctx, taps, ctx.inputs));
  Result r = relabel({{"IntegratedGradients", "LayerIntegratedGradients"}}, [&] { return invoke("IntegratedGradients", s, ig); });
  return with_delta(r, ctx, want_delta, baselines);
}

Result layer_feature_ablation(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  Options ablation = handed_on(o, {{"layerBaselines", "baselines"}, {"layerMask", "featureMask"}},
                               {"layer", "attributeToLayerInput"});
  Context s = substituted(ctx, taps, layer_values(ctx, taps, ctx.inputs));
  return relabel({{"FeatureAblation", "LayerFeatureAblation"}, {"baselines", "layerBaselines"}, {"featureMask", "layerMask"}},
                 [&] { return invoke("FeatureAblation", s, ablation); });
}

// DeepLift at a layer: multipliers at the layer's value times its change
// from the reference; pairs crossed with references for the Shap variant.
Result layer_deep_lift_pairs(const Context& ctx, const Options& o, const char* name, bool distribution) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  taps.mode = TapMode::Append;
  DeepLiftOptions opt(o);
  DeepLiftPairs p = deeplift_pairs(ctx, o, name, distribution);
  const auto &ends = p.ends, &starts = p.starts;
  int64_t per_example = p.per_example;
  o.reject_unknown(name);
  Context rctx = deeplift_context(ctx, opt.captum_compatible, taps, taps.input ? "" : taps.layers[0]);
  PairLayout pairs = pair_layout(ctx.batch, ends, starts, per_example);
  LayerRows r = layer_gradients(rctx, pairs.rows, pairs.build);
  Tensor attr = input_rows(r.grads[0]);
  if (opt.multiply) attr = attr * (input_rows(r.values[0]) - reference_rows(r.values[0]));
  Result res;
  if (opt.want_delta) {
    Rows rows = Rows::per_example(ctx.batch, per_example);
    res.delta = convergence_delta(per_example == 1 ? ctx : ctx.with_rows(ends, rows.examples()), {attr}, starts, ends);
  }
  res.attributions = {mean_per_example(attr, ctx.batch, per_example)};
  return res;
}

Result layer_deep_lift(const Context& ctx, const Options& o) {
  return layer_deep_lift_pairs(ctx, o, "LayerDeepLift", false);
}

Result layer_deep_lift_shap(const Context& ctx, const Options& o) {
  return layer_deep_lift_pairs(ctx, o, "LayerDeepLiftShap", true);
}

Result layer_gradient_shap(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  // As GradientShap, with gradients taken at the layer.
  ShapDraws d = shap_draws(ctx, o, "LayerGradientShap");
  o.reject_unknown("LayerGradientShap");
  Context per_row_ctx = ctx.with_rows(d.ends, d.rows.examples());
  Tensor attr;
  if (!integer_inputs(ctx).empty()) {
    // Token ids: the random points lie between the layer's values.
    Tensor le = layer_values(per_row_ctx, taps, d.ends)[0], ls = layer_values(per_row_ctx, taps, d.starts)[0];
    Tensor diff = le - ls;
    Context s = substituted(per_row_ctx, taps, {ls + per_row(d.alpha.to(le.scalar_type()), diff) * diff});
    attr = row_gradients(s, identity_rows(d.rows.count), slice_of(s.inputs))[0];
    if (d.multiply) attr = attr * diff;
  } else {
    std::vector<Tensor> points;
    for (size_t i = 0; i < d.ends.size(); ++i)
      points.push_back(d.starts[i] + per_row(d.alpha, d.ends[i]) * (d.ends[i] - d.starts[i]));
    attr = layer_gradients(tapped(per_row_ctx, taps, TapMode::Append), identity_rows(d.rows.count), slice_of(points)).grads[0];
    if (d.multiply)
      attr = attr * (layer_values(per_row_ctx, taps, d.ends)[0] - layer_values(per_row_ctx, taps, d.starts)[0]);
  }
  Result res;
  if (d.want_delta) res.delta = convergence_delta(per_row_ctx, {attr}, d.starts, d.ends);
  res.attributions = {mean_per_example(attr, ctx.batch, d.samples)};
  return res;
}

Result layer_lrp(const Context& ctx, const Options& o) {
  Taps taps = layer_option(o, "attributeToLayerInput");
  taps.mode = TapMode::Append;
  bool want_delta = o.boolean("returnConvergenceDelta", false);
  Context rctx = lrp_context(ctx, o, taps, taps.input ? "" : taps.layers[0]);
  o.reject_unknown("LayerLRP");
  LayerRows r = layer_gradients(rctx, identity_rows(ctx.batch), slice_of(ctx.inputs));
  if (r.outputs.dim() != 1)
    fail("target: LayerLRP needs one output value per example; the target selects shape ", shape_str(r.outputs.sizes()));
  Tensor relevance = r.grads[0] * per_row(r.outputs.to(r.grads[0].scalar_type()), r.grads[0]);
  Result res{{relevance}, {}};
  if (want_delta) res.delta = r.outputs - sum_rows({relevance});
  return res;
}

// ---- neuron methods ----------------------------------------------------------------

namespace {

// The neuronSelector as a target on the layer's value: a number, an index
// array into the value without the batch dimension, or a function of the
// value (a Tensor) returning either, or one index array per example.
Target neuron_target(const Context& layer_ctx, const Value& selector) {
  Value v = selector;
  if (v.kind == Value::Kind::Function) {
    torch::Tensor value;
    {
      torch::NoGradGuard no_grad;
      value = layer_ctx.model->forward(layer_ctx.inputs, layer_ctx.extra);
    }
    v = (*v.function)({Value::of(value)});
  }
  if (v.is_none()) fail("neuronSelector: expected a number, an index array or a function, got none");
  // A flat index array is one neuron for every example.
  if (v.is_list() && !v.list->empty() && (*v.list)[0].is_number()) v = Value::of(List{v});
  return Target::parse(v, layer_ctx.batch);
}

struct Neuron {
  Context ctx;  // the model returns the layer's value; the target is the neuron
  Taps taps;
  Options rest;  // options for the input method
};

Neuron neuron(const Context& ctx, const Options& o, const char* name, bool own_target = false) {
  Neuron n;
  n.taps = layer_option(o, "attributeToNeuronInput");
  if (!own_target && ctx.options && ctx.options->has("target"))
    fail(name, ": takes no target; it explains one neuron of the layer, chosen by neuronSelector");
  if (!o.has("neuronSelector")) fail("neuronSelector: ", name, " needs the neuron to explain (a number, an index array or a function)");
  n.ctx = tapped(ctx, n.taps, TapMode::Return);
  // The selector is parsed as a target: its errors name it (NeuronConductance has a target of its own).
  n.ctx.target = relabel({{"target", "neuronSelector"}}, [&] { return neuron_target(n.ctx, o.get("neuronSelector")); });
  n.rest = handed_on(o, {}, {"layer", "attributeToNeuronInput", "neuronSelector"});
  return n;
}

Result neuron_via(const char* base, const char* name, const Context& ctx, const Options& o,
                  const std::vector<std::pair<std::string, Value>>& set = {}) {
  return relabel({{"target", "neuronSelector"}, {base, name}}, [&] {
    Neuron n = neuron(ctx, o, name);
    for (const auto& [k, v] : set) n.rest.set(k, v);
    return invoke(base, n.ctx, n.rest);
  });
}

}  // namespace

Result neuron_gradient(const Context& ctx, const Options& o) {
  return neuron_via("Saliency", "NeuronGradient", ctx, o, {{"abs", Value::of(false)}});
}
Result neuron_integrated_gradients(const Context& ctx, const Options& o) {
  return neuron_via("IntegratedGradients", "NeuronIntegratedGradients", ctx, o);
}
Result neuron_gradient_shap(const Context& ctx, const Options& o) {
  return neuron_via("GradientShap", "NeuronGradientShap", ctx, o);
}
Result neuron_guided_backprop(const Context& ctx, const Options& o) {
  return neuron_via("GuidedBackprop", "NeuronGuidedBackprop", ctx, o);
}
Result neuron_deconvolution(const Context& ctx, const Options& o) {
  return neuron_via("Deconvolution", "NeuronDeconvolution", ctx, o);
}
Result neuron_feature_ablation(const Context& ctx, const Options& o) {
  return neuron_via("FeatureAblation", "NeuronFeatureAblation", ctx, o);
}

// DeepLift of the neuron, the layer's own ops left with plain gradients.
Result neuron_deep_lift_pairs(const Context& ctx, const Options& o, const char* name, bool distribution) {
  return relabel({{"target", "neuronSelector"}}, [&] {
    Neuron n = neuron(ctx, o, name);
    DeepLiftOptions opt(n.rest);
    DeepLiftPairs pairs = deeplift_pairs(ctx, n.rest, name, distribution);
    n.rest.reject_unknown(name);
    Context rctx = deeplift_context(n.ctx, opt.captum_compatible, {}, n.taps.input ? "" : n.taps.layers[0]);
    return deep_lift_pairs(n.ctx, rctx, pairs, opt);
  });
}

Result neuron_deep_lift(const Context& ctx, const Options& o) {
  return neuron_deep_lift_pairs(ctx, o, "NeuronDeepLift", false);
}
Result neuron_deep_lift_shap(const Context& ctx, const Options& o) {
  return neuron_deep_lift_pairs(ctx, o, "NeuronDeepLiftShap", true);
}

// Conductance through one neuron: along the path, the target's gradient at
// the neuron times the neuron's gradient at the inputs.
Result neuron_conductance(const Context& ctx, const Options& o) {
  Neuron n = neuron(ctx, o, "NeuronConductance", true);
  Quadrature q = quadrature_option(n.rest, 50, "riemann_trapezoid");
  auto baselines = format_baselines(ctx, n.rest.get("baselines"));
  bool multiply = n.rest.boolean("multiplyByInputs", true);
  n.rest.reject_unknown("NeuronConductance");
  std::vector<Tensor> diffs;
  for (size_t i = 0; i < ctx.inputs.size(); ++i) diffs.push_back(ctx.inputs[i] - baselines[i]);
  int64_t rows_per_step = ctx.batch, steps = static_cast<int64_t>(q.alphas.size());
  Tensor alphas = quadrature_tensor(q.alphas, ctx.inputs[0]);
  Context both = tapped(ctx, n.taps, TapMode::Append);
  const Target& neuron_at = n.ctx.target;
  auto grads = map_rows(
      both, Rows::step_major(rows_per_step, steps),
      [&](int64_t b, int64_t e) { return Chunk{path_points(baselines, diffs, alphas, rows_per_step, b, e), nullptr, false}; },
      [&](const ChunkCall& c) {
        auto values = c.model.forward_values(c.leaves, c.extra);
        Tensor through = gradients(ctx.target.select_scalars(values[0], c.examples), {values[1]}, true)[0];
        // The neuron is selected like a target: its errors name the selector.
        auto at_neuron = [&](const Tensor& t) {
          return relabel({{"target", "neuronSelector"}}, [&] { return neuron_at.select_scalars(t, c.examples); });
        };
        Tensor weight = at_neuron(through);
        auto g = gradients(at_neuron(values[1]), c.leaves);
        for (auto& gi : g) gi = gi * per_row(weight, gi);
        return g;
      });
  Tensor w = quadrature_tensor(q.weights, ctx.inputs[0]);
  for (size_t i = 0; i < grads.size(); ++i) {
    grads[i] = weighted_step_sum(grads[i], w, rows_per_step);
    if (multiply) grads[i] = grads[i] * diffs[i];
  }
  return Result{grads, {}};
}

}  // namespace tx
