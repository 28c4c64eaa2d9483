// Rule-based backprop: DeepLift, DeepLiftShap, GuidedBackprop, Deconvolution
// and LRP. Each runs LibTorch's autograd on a copy of the model whose forward
// graph has the ops a rule touches wrapped in torchexplain ops (rule_ops.h),
// so rules apply to every call of every op, however the model calls it.
#include <functional>
#include <unordered_map>
#include <unordered_set>

#include "graph/rules.h"

#include <cmath>

#include "algorithms.h"
#include "engine/errors.h"
#include "graph/rule_ops.h"

namespace tx {

namespace {

using torch::Tensor;
using torch::jit::Node;
using JitValue = torch::jit::Value;

[[noreturn]] void unsupported(const std::string& method, const OpSite& s, const std::string& why) {
  fail("model: ", method, " has no rule for ", s.where(), " (", why,
       "); rules cover linear and convolution layers, batch and layer norm, pooling, sums and differences, products "
       "of two input-dependent tensors (mul, matmul, bmm; attention), reshaping, and the activations relu, leaky_relu, "
       "elu, sigmoid, tanh, softplus, gelu, silu, hardtanh, hardswish, exp, rsqrt, pow and softmax");
}

// A product of two input-dependent tensors (elementwise or matrix).
bool is_product(const GraphRewrite& g, const OpSite& s) {
  static const std::unordered_set<std::string> ops = {"mul", "matmul", "bmm", "mm"};
  return ops.count(s.op) && g.dependent_inputs(s.node) == std::vector<size_t>{0, 1};
}

// Why a weighted op that is not linear in the inputs has no rule.
std::string not_split(const OpSite& s) {
  return s.op == "div" ? "a quotient of two input-dependent tensors"
                       : "several input-dependent operands; only mul, matmul, mm and bmm of two are split";
}

// Products and quotients of two input-dependent tensors are not linear.
bool linear_in_inputs(const GraphRewrite& g, const OpSite& s) {
  if (s.op == "div") return !g.depends(s.node->input(1));
  return g.dependent_inputs(s.node).size() <= 1 || s.op == "add" || s.op == "sub" || s.op == "rsub";
}

// y = f(x) becomes op(x, y, extra...) for every later reader of y; returns the op node.
Node* wrap(GraphRewrite& g, Node* n, const char* op, std::vector<JitValue*> extra, size_t outputs = 1) {
  JitValue* y = n->outputs()[0];
  std::vector<JitValue*> inputs = {n->input(0), y};
  inputs.insert(inputs.end(), extra.begin(), extra.end());
  JitValue* out = g.insert_after(n, op, inputs, y, outputs);
  g.reroute_after(y, out->node(), out);
  return out->node();
}

void wrap_activation(GraphRewrite& g, Node* n, int64_t mode) {
  wrap(g, n, "torchexplain::act", {g.constant(mode, n), g.constant(std::string(), n)});
}

// ---- DeepLift (rescale rule) ---------------------------------------------------

// z = f(a, b) becomes product(z, f(a, mean(b)), f(mean(a), b)), or for
// layer norm's normalisation product(z, f(a, b_input), f(a_reference, b)): see rule_ops.cpp.
void product_rule(GraphRewrite& g, Node* n) {
  JitValue* z = n->output();
  bool ordered = g.normalising(n);
  JitValue* bbar = g.insert_after(n, "torchexplain::pair_pick", {n->input(1), g.constant(int64_t(ordered ? 1 : 0), n)}, n->input(1));
  JitValue* abar = g.insert_after(bbar->node(), "torchexplain::pair_pick", {n->input(0), g.constant(int64_t(ordered ? 2 : 0), n)}, n->input(0));
  Node* s1 = g.copy_after(n, abar->node());
  s1->replaceInput(1, bbar);
  Node* s2 = g.copy_after(n, s1);
  s2->replaceInput(0, abar);
  JitValue* out = g.insert_after(s2, "torchexplain::product", {z, s1->output(), s2->output()}, z);
  g.reroute_after(z, out->node(), out);
}

// The branch of an If that `n` sits in, below `ancestor_if` (nullptr if none).
torch::jit::Block* branch_under(Node* n, Node* ancestor_if) {
  for (torch::jit::Block* b = n->owningBlock(); b && b->owningNode(); b = b->owningNode()->owningBlock())
    if (b->owningNode() == ancestor_if) return b;
  return nullptr;
}

// Whether `n` is the only reader of `v` that can run: readers in other
// branches of an If that holds `n` do not count.
bool sole_reader(JitValue* v, Node* n) {
  for (const auto& use : v->uses()) {
    if (use.user == n) continue;
    bool exclusive = false;
    for (torch::jit::Block* b = n->owningBlock(); b && b->owningNode() && !exclusive; b = b->owningNode()->owningBlock()) {
      Node* branch_node = b->owningNode();
      torch::jit::Block* other = branch_under(use.user, branch_node);
      exclusive = branch_node->kind() == c10::prim::If && other && other != b;
    }
    if (!exclusive) return false;
  }
  return true;
}

// DeepLift rule ops output (modified, plain) pairs (see rule_ops.cpp). A rule
// op whose input comes straight from another one's first output (and nothing
// else reads it) sends its plain gradient back through the other's second output.
// With `captum_compatible` false, multipliers chain through adjacent
// nonlinearities as the DeepLift paper has them (summation to delta holds).
// `untouched`: a submodule whose own ops keep plain gradients (the layer a
// layer or neuron variant attributes to, as the reference leaves it unhooked).
void rewrite_deeplift(GraphRewrite& g, bool captum_compatible, const std::string& untouched) {
  g.decompose();
  // The reference's softmax rule (multipliers normalised over the whole
  // tensor) is for nn.Softmax layers; elsewhere (attention, whose softmax
  // decompose() made in the attention's module, functional softmax, or with
  // captumCompatible false) softmax is taken apart into exp, sum, reciprocal
  // and a product, whose rules keep summation to delta.
  bool split = false;
  for (const OpSite& s : g.path())
    if (s.family == OpFamily::Softmax && (untouched.empty() || s.module != untouched) &&
        (!captum_compatible || s.module_type != "Softmax") &&
        g.dependent_inputs(s.node) == std::vector<size_t>{0}) {
      g.decompose_softmax(s.node);
      split = true;
    }
  if (split) g.reanalyse();
  std::unordered_map<JitValue*, JitValue*> plain_of;  // first output -> second output of rule ops
  for (const OpSite& s : g.path()) {
    Node* n = s.node;
    if (!untouched.empty() && s.module == untouched) continue;
    bool rule = s.family == OpFamily::Activation || s.family == OpFamily::MaxPool || s.family == OpFamily::Softmax;
    if (s.family == OpFamily::Linear && !linear_in_inputs(g, s)) {
      if (!is_product(g, s)) unsupported("DeepLift", s, not_split(s));
      product_rule(g, n);
      continue;
    }
    if (s.family == OpFamily::Other) unsupported("DeepLift", s, "no rescale rule is defined for it");
    if (!rule) continue;
    if (g.dependent_inputs(n) != std::vector<size_t>{0}) unsupported("DeepLift", s, "a nonlinearity of a non-input");
    JitValue* x = n->input(0);
    auto it = plain_of.find(x);
    JitValue* plain = captum_compatible && it != plain_of.end() && sole_reader(x, n) ? it->second : nullptr;
    JitValue* none = g.constant(c10::IValue(), n);
    Node* op = nullptr;
    if (s.family == OpFamily::Activation) {
      // The op's own gradient on the plain side: a copy of it reading the plain value.
      JitValue* yt = none;
      if (plain) {
        Node* copy = g.copy_after(n, n);
        copy->replaceInput(0, plain);
        yt = copy->output();
      }
      op = wrap(g, n, "torchexplain::rescale", {yt}, 2);
    } else if (s.family == OpFamily::MaxPool) {
      if (n->inputs().size() != 6) unsupported("DeepLift", s, "unexpected max pooling signature");
      // The pooling itself, with the winners' indices the rule needs.
      Node* pool = g.with_indices(n);
      op = wrap(g, pool, "torchexplain::rescale_maxpool",
                {pool->output(1), plain ? plain : none, n->input(1), n->input(2), n->input(3), n->input(4), n->input(5)}, 2);
      n->destroy();
    } else {
      op = wrap(g, n, "torchexplain::rescale_softmax", {plain ? plain : none, n->input(1)}, 2);
    }
    plain_of[op->output(0)] = op->output(1);
  }
}

// ---- guided backprop and deconvolution ------------------------------------------

void rewrite_relus(GraphRewrite& g, int64_t mode) {
  for (const OpSite& s : g.path())
    if (s.op == "relu" && g.dependent_inputs(s.node) == std::vector<size_t>{0}) wrap_activation(g, s.node, mode);
}

Result modified_relu(const Context& ctx, const Options& o, const char* name, int64_t mode) {
  o.reject_unknown(name);
  Context rctx = with_rules(ctx, name, [mode](GraphRewrite& g) { rewrite_relus(g, mode); });
  return {row_gradients(rctx, identity_rows(ctx.batch), slice_of(ctx.inputs)), {}};
}

// ---- LRP ---------------------------------------------------------------------------

// The epsilon rule divides by z + epsilon·sign(z): with epsilon 0 every unit
// whose output is 0 (a dead ReLU) gives 0/0, so only positive values are taken.
double positive_epsilon(double eps, const std::string& where) {
  if (!(eps > 0) || !std::isfinite(eps)) fail(where, ": expected a number > 0 (0 divides by zero wherever a layer's output is 0), got ", eps);
  return eps;
}

struct LrpRule {
  enum Kind { Epsilon, Gamma, Alpha1Beta0, ZPlus, ZBox, Identity } kind = Epsilon;
  double epsilon = 1e-9;
  double gamma = 0.25;
  bool zero_bias = false;
  Value low, high;  // z-box bounds: numbers or tensors broadcastable to the layer input
};

const std::vector<std::string>& rule_names() {
  static const std::vector<std::string> names = {"epsilon", "gamma", "alpha1beta0", "zplus", "zbox", "identity"};
  return names;
}

struct LrpConfig {
  std::string preset;
  LrpRule base;  // defaults shared by every rule (epsilon, gamma, bounds)
  std::vector<std::pair<std::string, LrpRule>> rules;  // by layer name, layer type or op
  bool fold_batch_norm = false;
  std::string key;  // cache key; empty when rules hold tensors
};

bool is_conv(const std::string& op) {
  return op.compare(0, 4, "conv") == 0 || op == "_convolution" || op == "convolution";
}

// The weight and bias operands of a weighted layer (-1 where none).
std::pair<int, int> weight_and_bias(const GraphRewrite& g, const OpSite& s) {
  if (s.op == "linear" || is_conv(s.op) || s.op == "batch_norm") return {1, 2};
  if (s.op == "addmm") return {g.depends(s.node->input(1)) ? 2 : 1, 0};
  if (s.op == "mm" || s.op == "matmul" || s.op == "bmm") return {g.depends(s.node->input(0)) ? 1 : 0, -1};
  return {-1, -1};
}

void check_bound(const Value& v, const char* name) {
  if (!v.is_number() && !v.is_tensor())
    fail("rules: the zbox rule needs '", name, "', the lowest (low) and highest (high) input values, as numbers or tensors");
}

LrpRule parse_rule(const Value& v, const std::string& where, const LrpRule& base) {
  LrpRule r = base;
  std::string name;
  if (v.kind == Value::Kind::String) {
    name = v.string;
  } else if (v.kind == Value::Kind::Object) {
    Options o(*v.object);
    if (!o.has("rule")) fail(where, ": expected a 'rule' (one of ", join(rule_names()), ")");
    name = o.get("rule").kind == Value::Kind::String ? o.get("rule").string : "";
    r.epsilon = positive_epsilon(o.number("epsilon", r.epsilon), where + ".epsilon");
    r.gamma = o.number("gamma", r.gamma);
    r.zero_bias = o.boolean("setBiasToZero", false);
    if (o.has("low")) r.low = o.get("low");
    if (o.has("high")) r.high = o.get("high");
    o.reject_unknown(where);
  } else {
    fail(where, ": expected a rule name (", join(rule_names()), ") or an object such as { rule: 'gamma', gamma: 0.25 }, got ",
         v.kind_name());
  }
  auto it = std::find(rule_names().begin(), rule_names().end(), name);
  if (it == rule_names().end()) fail(where, ": unknown rule '", name, "' (known: ", join(rule_names()), ")");
  r.kind = static_cast<LrpRule::Kind>(it - rule_names().begin());
  if (r.kind == LrpRule::ZBox) {
    check_bound(r.low, "low");
    check_bound(r.high, "high");
  }
  return r;
}

// A cache key for option values; empty when they hold tensors.
bool describe(const Value& v, std::ostream& os) {
  switch (v.kind) {
    case Value::Kind::Tensor:
    case Value::Kind::Function:
      return false;
    case Value::Kind::List:
      for (const auto& e : *v.list)
        if (!describe(e, os << ',')) return false;
      return true;
    case Value::Kind::Object:
      for (const auto& [k, e] : *v.object)
        if (!describe(e, os << k << ':')) return false;
      return true;
    default:
      os << v.kind_name() << '=' << v.boolean << v.number << v.string << ';';
      return true;
  }
}

LrpConfig parse_lrp(const Options& o) {
  LrpConfig c;
  c.preset = o.choice("preset", "epsilon", {"epsilon", "epsilonPlus", "epsilonGammaBox"});
  c.base.epsilon = positive_epsilon(o.number("epsilon", 1e-9), "epsilon");
  c.base.gamma = o.number("gamma", 0.25);
  c.base.low = o.get("low");
  c.base.high = o.get("high");
  c.fold_batch_norm = o.boolean("foldBatchNorm", false);
  if (c.preset == "epsilonGammaBox") {
    check_bound(c.base.low, "low");
    check_bound(c.base.high, "high");
  }
  const Value& rules = o.get("rules");
  if (!rules.is_none() && rules.kind != Value::Kind::Object)
    fail("rules: expected an object mapping layer names, layer types or ops to rules, got ", rules.kind_name());
  if (!rules.is_none())
    for (const auto& [key, v] : *rules.object) c.rules.emplace_back(key, parse_rule(v, "rules['" + key + "']", c.base));
  std::ostringstream key;
  key << "LRP|";
  bool plain = true;
  for (const char* k : {"preset", "epsilon", "gamma", "low", "high", "foldBatchNorm", "rules"})
    plain = plain && describe(o.get(k), key << k << '=');
  c.key = plain ? key.str() : "";
  return c;
}

// Which rule a layer gets: the user's rule for its module (the longest
// matching dotted name), its module type or its op; otherwise the preset's.
LrpRule rule_for(const LrpConfig& c, const OpSite& s, bool first_weighted) {
  const LrpRule *by_name = nullptr, *by_type = nullptr, *by_op = nullptr;
  size_t longest = 0;
  for (const auto& [key, rule] : c.rules) {
    bool inside = !s.module.empty() && (s.module == key || s.module.compare(0, key.size() + 1, key + ".") == 0);
    if (inside && key.size() >= longest) by_name = &rule, longest = key.size();
    if (key == s.module_type) by_type = &rule;
    if (key == s.op) by_op = &rule;
  }
  const LrpRule* best = by_name ? by_name : by_type ? by_type : by_op;
  if (best) return *best;
  LrpRule r = c.base;
  if (c.preset == "epsilonPlus" && is_conv(s.op)) r.kind = LrpRule::ZPlus;
  if (c.preset == "epsilonGammaBox") {
    if (first_weighted) r.kind = LrpRule::ZBox;
    else if (is_conv(s.op)) r.kind = LrpRule::Gamma;
  }
  return r;
}

// One LRP layer: z = f(a, W) becomes lrp_out(z', z) where z' is f evaluated
// by the rule (modified weights, parts of a, bounds) on lrp_in-marked
// inputs: backward gives a * J'^T (R / z'), the relevance of the inputs.
void apply_rule(GraphRewrite& g, const OpSite& s, const LrpRule& r) {
  Node* n = s.node;
  JitValue* z = n->output();
  auto dep = g.dependent_inputs(n);
  if (r.kind == LrpRule::Identity) {
    if (dep.size() != 1) unsupported("LRP's identity rule", s, "it needs exactly one input-dependent input");
    wrap(g, n, "torchexplain::act", {g.constant(int64_t(ops::kPass), n), g.constant(s.where(), n)});
    return;
  }
  auto [wi, bi] = weight_and_bias(g, s);
  if (r.kind == LrpRule::ZBox && wi < 0) unsupported("LRP's zbox rule", s, "it applies to weighted layers only");
  bool modifies = (r.kind != LrpRule::Epsilon) && (wi >= 0 || r.kind == LrpRule::ZPlus);
  Node* cursor = n;
  auto after = [&](const char* op, std::vector<JitValue*> in, JitValue* like) {
    JitValue* v = g.insert_after(cursor, op, std::move(in), like);
    cursor = v->node();
    return v;
  };
  auto part = [&](JitValue* t, int64_t mode, double value) {
    return after("torchexplain::part", {t, g.constant(mode, n), g.constant(value, n)}, t);
  };
  JitValue* zp = z;
  if (!modifies) {
    // Epsilon: the layer itself, its inputs marked.
    for (size_t i : dep) n->replaceInput(i, g.insert_before(n, "torchexplain::lrp_in", {n->input(i), n->input(i)}, n->input(i)));
  } else {
    // A copy of the layer after the cursor whose input-dependent operands are
    // `input(a)`, weight modified by `weight_mode` (-1: as is), bias kept or dropped.
    auto term = [&](const std::function<JitValue*(JitValue*)>& input, int64_t weight_mode, bool drop_bias) {
      std::vector<std::pair<size_t, JitValue*>> repl;
      for (size_t i : dep) repl.emplace_back(i, after("torchexplain::lrp_in", {n->input(i), input(n->input(i))}, n->input(i)));
      if (wi >= 0 && weight_mode >= 0) repl.emplace_back(wi, part(n->input(wi), weight_mode, r.gamma));
      if (drop_bias && bi >= 0)
        repl.emplace_back(s.op == "addmm" ? 3 : bi, s.op == "addmm" ? g.constant(int64_t(0), n) : g.constant(c10::IValue(), n));
      Node* c = g.copy_after(n, cursor);
      cursor = c;
      for (auto& [i, v] : repl) c->replaceInput(i, v);
      return c->output();
    };
    auto same = [](JitValue* a) { return a; };
    auto positive = [&](JitValue* a) { return part(a, ops::kPositivePart, 0); };
    auto negative = [&](JitValue* a) { return part(a, ops::kNegativePart, 0); };
    auto bound = [&](const Value& b, const char* stem) {
      return [&, stem](JitValue* a) -> JitValue* {
        (void)a;
        if (b.is_number()) return part(a, ops::kFill, b.number);
        JitValue* v = g.buffer(stem, b.tensor, cursor->next());
        cursor = v->node();
        return v;
      };
    };
    auto combine = [&](const char* op, JitValue* x, JitValue* y) { return after(op, {x, y, g.constant(int64_t(1), n)}, z); };
    switch (r.kind) {
      case LrpRule::Gamma:
        zp = term(same, ops::kGammaPart, r.zero_bias);
        break;
      case LrpRule::Alpha1Beta0:
        zp = term(same, ops::kPositivePart, r.zero_bias);
        break;
      case LrpRule::ZPlus:
        zp = wi < 0 ? term(positive, -1, false)
                    : combine("aten::add", term(positive, ops::kPositivePart, true), term(negative, ops::kNegativePart, true));
        break;
      default: {  // z-box: x W - low W+ - high W-
        JitValue* t = term(same, -1, true);
        t = combine("aten::sub", t, term(bound(r.low, "zbox_low"), ops::kPositivePart, true));
        zp = combine("aten::sub", t, term(bound(r.high, "zbox_high"), ops::kNegativePart, true));
      }
    }
  }
  JitValue* out = after("torchexplain::lrp_out", {zp, z, g.constant(r.epsilon, n)}, z);
  g.reroute_after(z, out->node(), out);
}

// The operand of a product that gates the other (a sigmoid, hardsigmoid,
// softmax or rsqrt output, through reshaping): -1 if neither does.
int gate_operand(const GraphRewrite& g, const OpSite& s) {
  static const std::unordered_set<std::string> gates = {"sigmoid", "hardsigmoid", "softmax", "rsqrt"};
  for (int i = 0; i < 2; ++i) {
    Node* p = s.node->input(i)->node();
    while (p->kind().is_aten() && op_family(p->kind().toUnqualString()) == OpFamily::Structural && p->inputs().size() > 0)
      p = p->input(0)->node();
    if (p->kind().is_aten() && gates.count(p->kind().toUnqualString())) return i;
  }
  return -1;
}

// Products: a gate (attention weights, squeeze-excitation scales, layer
// norm's 1/sigma) is held constant, so relevance flows through the gated
// value only (conservative, as CP-LRP); other products split relevance
// equally between the factors (AttnLRP's uniform rule).
void hold_gates(GraphRewrite& g) {
  bool changed = false;
  for (const OpSite& s : g.path()) {
    if (!is_product(g, s)) continue;
    int i = gate_operand(g, s);
    if (i < 0) continue;
    JitValue* held = g.insert_before(s.node, "aten::detach", {s.node->input(i)}, s.node->input(i));
    s.node->replaceInput(i, held);
    changed = true;
  }
  if (changed) g.reanalyse();
}

void uniform_product(GraphRewrite& g, const OpSite& s, double eps) {
  Node* n = s.node;
  JitValue* z = n->output();
  for (size_t i : {0, 1}) n->replaceInput(i, g.insert_before(n, "torchexplain::lrp_in", {n->input(i), n->input(i)}, n->input(i)));
  // Relevance divided by 2z (z + a detached z: the gradient crosses f once),
  // so each factor's share sums to half of it (f is bilinear).
  JitValue* held = g.insert_after(n, "aten::detach", {z}, z);
  JitValue* twice = g.insert_after(held->node(), "aten::add", {z, held, g.constant(int64_t(1), n)}, z);
  JitValue* out = g.insert_after(twice->node(), "torchexplain::lrp_out", {twice, z, g.constant(eps, n)}, z);
  g.reroute_after(z, out->node(), out);
}

void rewrite_lrp(GraphRewrite& g, const LrpConfig& c, const std::string& untouched) {
  g.decompose();
  hold_gates(g);
  auto sites = g.path();
  // User rules must name something in the model.
  for (const auto& [key, rule] : c.rules) {
    bool found = false;
    for (const auto& s : sites)
      found = found || s.module == key || s.module.compare(0, key.size() + 1, key + ".") == 0 || s.module_type == key ||
              s.op == key;
    if (!found)
      fail("rules: '", key, "' names no layer, layer type or op on the model's path from inputs to output (layers: ",
           join(g.layer_names()), ")");
  }
  bool first = true;
  for (const OpSite& s : sites) {
    if (!untouched.empty() && s.module == untouched) continue;
    switch (s.family) {
      case OpFamily::Structural:
        break;
      case OpFamily::Activation:
        if (g.dependent_inputs(s.node) != std::vector<size_t>{0}) unsupported("LRP", s, "an activation of a non-input");
        wrap_activation(g, s.node, ops::kPass);
        break;
      case OpFamily::Linear:
      case OpFamily::MaxPool: {
        if (!linear_in_inputs(g, s)) {
          if (!is_product(g, s)) unsupported("LRP", s, not_split(s));
          uniform_product(g, s, c.base.epsilon);
          break;
        }
        bool weighted = weight_and_bias(g, s).first >= 0;
        apply_rule(g, s, rule_for(c, s, weighted && first));
        first = first && !weighted;
        break;
      }
      default:
        unsupported("LRP", s, "no relevance rule is defined for it");
    }
  }
}

}  // namespace

Context with_rules(const Context& ctx, const std::string& key, const std::function<void(GraphRewrite&)>& rewrite,
                   bool fold_batch_norm, const Taps& taps) {
  size_t n = ctx.inputs.size();
  std::string full = key;
  if (!full.empty()) {
    full += "#" + std::to_string(n) + "#" + std::to_string(static_cast<int>(taps.mode)) + (taps.both ? "both" : taps.input ? "in" : "out");
    for (const auto& l : taps.layers) full += "#" + l;
  }
  Context out = ctx;
  out.model = ctx.source->derived(full, [&](torch::jit::Module& m) {
    GraphRewrite g(m, n, fold_batch_norm, taps);
    rewrite(g);
  });
  out.source = out.model;  // further rewrites (rules on a tapped copy) build on this one
  return out;
}

DeepLiftOptions::DeepLiftOptions(const Options& o)
    : multiply(o.boolean("multiplyByInputs", true)),
      want_delta(o.boolean("returnConvergenceDelta", false)),
      captum_compatible(o.boolean("captumCompatible", true)) {}

Context deeplift_context(const Context& ctx, bool captum_compatible, const Taps& taps, const std::string& untouched) {
  std::string key = std::string(captum_compatible ? "DeepLift" : "DeepLift/exact") + "|" + untouched;
  return with_rules(ctx, key, [&](GraphRewrite& g) { rewrite_deeplift(g, captum_compatible, untouched); }, true, taps);
}

Context guided_context(const Context& ctx, int64_t mode, const Taps& taps) {
  return with_rules(ctx, mode == ops::kGuided ? "GuidedBackprop" : "Deconvolution",
                    [mode](GraphRewrite& g) { rewrite_relus(g, mode); }, false, taps);
}

Context lrp_context(const Context& ctx, const Options& o, const Taps& taps, const std::string& untouched) {
  LrpConfig c = parse_lrp(o);
  std::string key = c.key.empty() ? "" : c.key + "|" + untouched;
  return with_rules(ctx, key, [&](GraphRewrite& g) { rewrite_lrp(g, c, untouched); }, c.fold_batch_norm, taps);
}

PairLayout pair_layout(int64_t batch, const std::vector<Tensor>& ends, const std::vector<Tensor>& starts,
                       int64_t per_example) {
  PairLayout p;
  p.rows = Rows::per_example(batch, 2 * per_example);
  p.rows.granule = 2;
  p.build = [ends, starts](int64_t b, int64_t e) {
    Chunk c;
    for (size_t i = 0; i < ends.size(); ++i)
      c.inputs.push_back(torch::stack({ends[i].slice(0, b / 2, e / 2), starts[i].slice(0, b / 2, e / 2)}, 1).flatten(0, 1));
    return c;
  };
  return p;
}

Tensor input_rows(const Tensor& pair_rows) { return pair_rows.slice(0, 0, pair_rows.size(0), 2); }
Tensor reference_rows(const Tensor& pair_rows) { return pair_rows.slice(0, 1, pair_rows.size(0), 2); }

DeepLiftPairs deeplift_pairs(const Context& ctx, const Options& o, const std::string& name, bool distribution) {
  DeepLiftPairs p;
  const Value& b = o.get("baselines");
  if (!distribution) {
    p.ends = ctx.inputs;
    p.starts = format_baselines(ctx, b);
    return p;
  }
  if (b.is_none()) fail("baselines: ", name, " needs a baseline distribution (a tensor of reference samples per input)");
  auto dist = baseline_distribution(ctx, b);
  p.per_example = dist[0].size(0);
  require_budget(ctx, double(ctx.batch) * p.per_example * 2 * example_bytes(ctx),
                 concat(name, "'s ", ctx.batch * p.per_example, " input/reference pairs"));
  for (size_t i = 0; i < ctx.inputs.size(); ++i) {
    if (dist[i].size(0) != p.per_example)
      fail("baselines[", i, "]: ", dist[i].size(0), " reference samples, but baselines[0] has ", p.per_example);
    p.ends.push_back(ctx.inputs[i].repeat_interleave(p.per_example, 0));
    std::vector<int64_t> reps(dist[i].dim(), 1);
    reps[0] = ctx.batch;
    p.starts.push_back(dist[i].repeat(reps));
  }
  return p;
}

Tensor mean_per_example(const Tensor& rows, int64_t batch, int64_t per_example) {
  if (per_example == 1) return rows;
  std::vector<int64_t> shape = {batch, per_example};
  shape.insert(shape.end(), rows.sizes().begin() + 1, rows.sizes().end());
  return rows.view(shape).mean(1);
}

Result deep_lift_pairs(const Context& ctx, const Context& rctx, const DeepLiftPairs& p, const DeepLiftOptions& opt) {
  const auto &ends = p.ends, &starts = p.starts;
  int64_t per_example = p.per_example;
  PairLayout pairs = pair_layout(ctx.batch, ends, starts, per_example);
  auto attr = row_gradients(rctx, pairs.rows, pairs.build);
  for (size_t i = 0; i < attr.size(); ++i) {
    attr[i] = input_rows(attr[i]);
    if (opt.multiply) attr[i] = attr[i] * (ends[i] - starts[i]);
  }
  Result r;
  if (opt.want_delta) {
    Rows rows = Rows::per_example(ctx.batch, per_example);
    r.delta = convergence_delta(per_example == 1 ? ctx : ctx.with_rows(ends, rows.examples()), attr, starts, ends);
  }
  for (auto& a : attr) a = mean_per_example(a, ctx.batch, per_example);
  r.attributions = std::move(attr);
  return r;
}

namespace {

Result deep_lift_family(const Context& ctx, const Options& o, const char* name, bool distribution) {
  DeepLiftPairs pairs = deeplift_pairs(ctx, o, name, distribution);
  DeepLiftOptions opt(o);
  o.reject_unknown(name);
  return deep_lift_pairs(ctx, deeplift_context(ctx, opt.captum_compatible), pairs, opt);
}

}  // namespace

Result deep_lift(const Context& ctx, const Options& o) { return deep_lift_family(ctx, o, "DeepLift", false); }

Result deep_lift_shap(const Context& ctx, const Options& o) { return deep_lift_family(ctx, o, "DeepLiftShap", true); }

Result guided_backprop(const Context& ctx, const Options& o) {
  return modified_relu(ctx, o, "GuidedBackprop", ops::kGuided);
}

Result deconvolution(const Context& ctx, const Options& o) {
  return modified_relu(ctx, o, "Deconvolution", ops::kDeconv);
}

Result lrp(const Context& ctx, const Options& o) {
  bool want_delta = o.boolean("returnConvergenceDelta", false);
  Context rctx = lrp_context(ctx, o);
  o.reject_unknown("LRP");
  Tensor out;
  auto relevance = row_gradients(rctx, identity_rows(ctx.batch), slice_of(ctx.inputs), &out);
  if (out.dim() != 1)
    fail("target: LRP needs one output value per example to distribute; the target selects shape ", shape_str(out.sizes()));
  // Backward ran from a unit seed: scale by the output being explained.
  for (auto& r : relevance) r = r * per_row(out.to(r.scalar_type()), r);
  Result res{relevance, {}};
  if (want_delta) res.delta = out - sum_rows(relevance);
  return res;
}

std::shared_ptr<const Model> with_folded_batch_norms(const std::shared_ptr<const Model>& model) {
  return model->plain([](torch::jit::Module& m) {
    GraphRewrite g(m, 0, /*fold=*/true);
    return g.folded() > 0;
  });
}

}  // namespace tx
