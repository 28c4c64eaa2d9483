#include "graph/graph_rewrite.h"

#include <functional>
#include <map>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/constant_propagation.h>
#include <torch/csrc/jit/passes/dead_code_elimination.h>
#include <torch/csrc/jit/passes/inliner.h>

#include "engine/errors.h"
#include "graph/rule_ops.h"

namespace tx {

using torch::jit::Block;
using torch::jit::Graph;
using torch::jit::Node;
using torch::jit::Value;

OpFamily op_family(const std::string& op) {
  if (op.compare(0, 14, "torchexplain::") == 0) return OpFamily::Structural;  // the rewriter's own ops
  static const std::map<std::string, OpFamily> table = [] {
    std::map<std::string, OpFamily> t;
    for (const char* s : {"reshape", "view", "flatten", "unflatten", "transpose", "t", "permute", "contiguous", "squeeze",
                          "unsqueeze", "select", "slice", "narrow", "cat", "concat", "stack", "chunk", "split",
                          "split_with_sizes", "unbind", "clone", "dropout", "feature_dropout", "alpha_dropout",
                          "feature_alpha_dropout", "to", "type_as", "expand", "expand_as", "repeat", "tile",
                          "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d", "upsample_linear1d",
                          "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d", "pad", "constant_pad_nd",
                          "flip", "roll", "index_select", "pixel_shuffle", "pixel_unshuffle", "__getitem__", "append",
                          "list", "view_as", "reshape_as", "movedim", "swapaxes", "broadcast_to", "detach", "identity"})
      t[s] = OpFamily::Structural;
    for (const char* s : {"linear", "addmm", "matmul", "mm", "bmm", "conv1d", "conv2d", "conv3d", "_convolution",
                          "convolution", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "batch_norm",
                          "avg_pool1d", "avg_pool2d", "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d",
                          "adaptive_avg_pool3d", "add", "sub", "rsub", "mul", "div", "neg", "mean", "sum"})
      t[s] = OpFamily::Linear;
    for (const char* s : {"max_pool1d", "max_pool2d", "max_pool3d"}) t[s] = OpFamily::MaxPool;
    t["softmax"] = OpFamily::Softmax;
    for (const char* s : {"relu", "relu6", "leaky_relu", "elu", "selu", "celu", "sigmoid", "tanh", "softplus", "gelu",
                          "silu", "hardtanh", "hardsigmoid", "hardswish", "mish", "abs", "rsqrt", "sqrt", "exp", "pow", "reciprocal"})
      t[s] = OpFamily::Activation;
    return t;
  }();
  auto it = table.find(op);
  return it == table.end() ? OpFamily::Other : it->second;
}

namespace {

// Ops whose outputs carry no gradient from their tensor inputs.
bool non_differentiable(const std::string& op) {
  static const std::unordered_set<std::string> ops = {
      "size", "dim", "numel", "zeros_like", "ones_like", "empty_like", "full_like", "rand_like", "randn_like",
      "randint_like", "argmax", "argmin", "eq", "ne", "lt", "le", "gt", "ge", "sign", "detach", "isnan", "isinf",
      "isfinite", "logical_and", "logical_or", "logical_not", "__and__", "__or__", "len", "item", "Int", "Float",
      "Bool", "is_floating_point", "__is__", "__isnot__", "format"};
  return ops.count(op) > 0;
}

bool has_tensor(const c10::TypePtr& t) {
  if (t->kind() == c10::TypeKind::TensorType) return true;
  for (const auto& c : t->containedTypes())
    if (has_tensor(c)) return true;
  return false;
}

std::string op_name(const Node* n) {
  return n->kind().is_aten() ? n->kind().toUnqualString() : n->kind().toQualString();
}

// `n` takes `like`'s source range and call stack: messages and per-layer
// rules then see it as part of the op (and module) it stands for.
void take_origin(Node* n, Node* like) {
  n->setSourceRange(like->sourceRange());
  if (like->callstack()) n->setCallStack(*like->callstack());
}

}  // namespace

std::string OpSite::where() const {
  std::ostringstream os;
  os << (node->kind().is_aten() ? "aten::" : "") << op;
  if (module.empty()) os << " in forward() itself";
  else os << " in '" << module << "' (" << module_type << ")";
  const auto& range = node->sourceRange();
  if (range.source()) {
    std::string code = range.text().str();
    if (code.size() > 80) code = code.substr(0, 77) + "...";
    for (auto& c : code)
      if (c == '\n') c = ' ';
    if (!code.empty()) os << ", model code: " << code;
  }
  return os.str();
}

GraphRewrite::GraphRewrite(torch::jit::Module& module, size_t num_inputs, bool fold, const Taps& taps)
    : module_(module) {
  ops::ensure_registered();
  for (const auto& m : module.named_modules())
    if (!m.name.empty()) layer_names_.push_back(m.name);
  graph_ = module.get_method("forward").graph();
  if (taps.mode != TapMode::None) {
    tap(taps);
    if (taps.mode == TapMode::Substitute) num_inputs = taps.layers.size();
  }
  inline_all();
  functionalise(graph_->block());
  if (fold) fold_batch_norm(graph_->block());
  // graph inputs: self, then the forward arguments; the first num_inputs are attributed.
  for (size_t i = 1; i <= num_inputs && i < graph_->inputs().size(); ++i) roots_.push_back(graph_->inputs()[i]);
  reanalyse();
}

void GraphRewrite::reanalyse() {
  dependent_.clear();
  dependent_.insert(roots_.begin(), roots_.end());
  analyse(graph_->block());
}

namespace {

// A call's callee, when it has a TorchScript graph.
torch::jit::GraphFunction* callee_of(Node* n) {
  if (n->kind() == c10::prim::CallMethod) {
    auto cls = n->input(0)->type()->cast<c10::ClassType>();
    if (!cls) return nullptr;
    return torch::jit::tryToGraphFunction(cls->getMethod(n->s(c10::attr::name)));
  }
  if (n->kind() == c10::prim::CallFunction) {
    auto fn = n->input(0)->type()->cast<c10::FunctionType>();
    return fn ? torch::jit::tryToGraphFunction(*fn->function()) : nullptr;
  }
  return nullptr;
}

// outer's frames, then inner's: the call stack of a node inlined into a call
// that was itself inlined (LibTorch's inliner keeps only the callee's frames).
torch::jit::InlinedCallStackPtr stacked(const torch::jit::InlinedCallStackPtr& outer,
                                        const torch::jit::InlinedCallStackPtr& inner) {
  auto frames = outer->vec();
  auto more = inner->vec();
  frames.insert(frames.end(), more.begin(), more.end());
  torch::jit::InlinedCallStackPtr cs;
  for (auto it = frames.rbegin(); it != frames.rend(); ++it) {
    auto& [fn, range, info] = *it;
    cs = cs ? c10::make_intrusive<torch::jit::InlinedCallStack>(cs, fn, range, info)
            : c10::make_intrusive<torch::jit::InlinedCallStack>(fn, range, info);
  }
  return cs;
}

void restack(Block* b, Node* from, Node* to, const torch::jit::InlinedCallStackPtr& outer) {
  for (Node* n = from; n != to; n = n->next()) {
    auto cs = n->callstack();
    n->setCallStack(cs ? stacked(outer, *cs) : outer);
    for (Block* sub : n->blocks()) restack(sub, sub->nodes().front(), sub->return_node(), outer);
  }
  (void)b;
}

}  // namespace

// Replaces call `n` by `body` (the callee's graph), keeping call stacks whole.
void GraphRewrite::inline_call(Node* n, torch::jit::GraphFunction& fn, torch::jit::Graph& body) {
  c10::optional<torch::jit::InlinedCallStackPtr> outer = n->callstack();
  Node* before = n->prev();
  Node* after = n->next();
  if (n->kind() == c10::prim::CallFunction) n->removeInput(0);  // the function value itself
  torch::jit::inlineCallTo(n, &fn, &body);
  if (outer) restack(before->owningBlock(), before->next(), after, *outer);
}

// Inlines every call, innermost first: each callee's graph is inlined (once,
// cached) before it goes into its caller, so every op keeps its whole call
// stack (module names) whatever the executor's settings.
void GraphRewrite::inline_all() {
  std::map<torch::jit::GraphFunction*, std::shared_ptr<torch::jit::Graph>> done;
  std::function<void(Block*)> inline_block = [&](Block* b) {
    for (auto it = b->nodes().begin(); it != b->nodes().end();) {
      Node* n = *it;
      ++it;
      for (Block* sub : n->blocks()) inline_block(sub);
      torch::jit::GraphFunction* fn = callee_of(n);
      if (!fn) continue;
      auto& body = done[fn];
      if (!body) {
        body = fn->graph()->copy();
        inline_block(body->block());
      }
      inline_call(n, *fn, *body);
    }
  };
  inline_block(graph_->block());
  // Models are attributed in inference mode: `training` flags become the
  // constants they are, and branches on constant flags (F.relu's `inplace`,
  // batch norm's training paths) go, as TorchScript's optimiser would do.
  std::function<void(Block*)> fix_training = [&](Block* b) {
    for (Node* n : b->nodes()) {
      for (Block* sub : n->blocks()) fix_training(sub);
      if (n->kind() != c10::prim::GetAttr || n->s(c10::attr::name) != "training") continue;
      auto v = resolve(n->output());
      if (v && v->isBool()) n->output()->replaceAllUsesWith(constant(*v, n));
    }
  };
  fix_training(graph_->block());
  torch::jit::ConstantPropagationImmutableTypes(graph_);
  torch::jit::EliminateDeadCode(graph_);
}

namespace {

// The dotted name of a module value: its chain of attribute reads from self.
c10::optional<std::string> module_path(Value* v, Value* self) {
  std::vector<std::string> names;
  while (v != self) {
    Node* n = v->node();
    if (n->kind() != c10::prim::GetAttr) return c10::nullopt;
    names.push_back(n->s(c10::attr::name));
    v = n->input();
  }
  std::string path;
  for (auto it = names.rbegin(); it != names.rend(); ++it) path += (path.empty() ? "" : ".") + *it;
  return path;
}

// Calls of `path`'s forward (exact), and calls of methods of modules that
// contain it (outer: inlined to look inside).
void find_calls(Block* b, Value* self, const std::string& path, std::vector<Node*>& exact, std::vector<Node*>& outer) {
  for (Node* n : b->nodes()) {
    for (Block* sub : n->blocks()) find_calls(sub, self, path, exact, outer);
    if (n->kind() != c10::prim::CallMethod) continue;
    auto p = module_path(n->input(0), self);
    if (!p) continue;
    if (*p == path && n->s(c10::attr::name) == "forward") exact.push_back(n);
    else if (p->empty() || path.compare(0, p->size() + 1, *p + ".") == 0) outer.push_back(n);
  }
}

}  // namespace

// Finds the one call of each layer (inlining the calls of the modules that
// hold it, and only those, so that other instances of a shared class are not
// touched) and reroutes the graph through the layer's value.
void GraphRewrite::tap(const Taps& taps) {
  Value* self = graph_->inputs()[0];
  std::vector<Value*> values;
  std::vector<Node*> calls;
  for (const auto& layer : taps.layers) {
    std::vector<Node*> exact, outer;
    for (;;) {
      exact.clear();
      outer.clear();
      find_calls(graph_->block(), self, layer, exact, outer);
      if (outer.empty()) break;
      for (Node* n : outer) {
        // The method's own graph, its calls not yet inlined: the layer's call stays visible.
        torch::jit::GraphFunction* fn = callee_of(n);
        if (!fn) fail("layer: cannot look inside the call ", n->kind().toQualString(), " on the way to '", layer, "'");
        inline_call(n, *fn, *fn->graph());
      }
    }
    if (std::find(layer_names_.begin(), layer_names_.end(), layer) == layer_names_.end())
      fail("layer: the model has no submodule '", layer, "': ", known_names(layer, layer_names_));
    if (exact.empty())
      fail("layer: forward() never calls '", layer, "' directly (as self.", layer, "(x)), so it has no value to attribute to");
    if (exact.size() > 1)
      fail("layer: '", layer, "' is called ", exact.size(), " times in forward(); layer attribution needs a layer called once");
    Node* call = exact[0];
    if (taps.both) {
      if (taps.mode == TapMode::Substitute) fail("layer: a layer's input and output cannot both be substituted");
      if (call->inputs().size() != 2 || call->input(1)->type()->kind() != c10::TypeKind::TensorType ||
          call->outputs().size() != 1 || call->output()->type()->kind() != c10::TypeKind::TensorType)
        fail("layer: '", layer, "' is not called with one tensor returning one tensor");
      values.push_back(call->input(1));
      values.push_back(call->output());
    } else if (taps.input) {
      if (call->inputs().size() != 2 || call->input(1)->type()->kind() != c10::TypeKind::TensorType)
        fail("layer: attributeToLayerInput needs a layer called with one tensor; '", layer, "' takes ",
             call->inputs().size() - 1, " argument(s)");
      values.push_back(call->input(1));
    } else {
      if (call->outputs().size() != 1 || call->output()->type()->kind() != c10::TypeKind::TensorType)
        fail("layer: '", layer, "' returns ", call->output()->type()->str(), "; layer attribution needs a layer returning a Tensor");
      values.push_back(call->output());
    }
    calls.push_back(call);
  }
  auto& fn = torch::jit::toGraphFunction(module_.get_method("forward").function());
  const c10::FunctionSchema& schema = fn.getSchema();
  if (taps.mode == TapMode::Substitute) {
    std::vector<c10::Argument> args = {schema.arguments()[0]};
    for (size_t k = 0; k < values.size(); ++k) {
      std::string name = "layer" + std::to_string(k);
      Value* l = graph_->insertInput(1 + k, name)->setType(c10::TensorType::get());
      if (taps.input) calls[k]->replaceInput(1, l);
      else values[k]->replaceAllUsesWith(l);
      args.emplace_back(name, c10::TensorType::get());
    }
    args.insert(args.end(), schema.arguments().begin() + 1, schema.arguments().end());
    fn.setSchema(schema.cloneWithArguments(args));
    torch::jit::EliminateDeadCode(graph_);  // what only fed the layer no longer runs
    return;
  }
  torch::jit::WithInsertPoint guard(graph_->return_node());
  std::vector<Value*> outs;
  if (taps.mode == TapMode::Append) outs.push_back(graph_->outputs()[0]);
  outs.insert(outs.end(), values.begin(), values.end());
  Value* out = outs.size() == 1 ? outs[0] : graph_->insertNode(graph_->createTuple(outs))->output();
  graph_->eraseOutput(0);
  graph_->registerOutput(out);
  // The layers' values as they left the layers: an in-place op after them
  // (DenseNet's F.relu(features, inplace=True)) must not change what the tap reads.
  size_t first = taps.mode == TapMode::Append ? 1 : 0;
  for (size_t k = first; k < outs.size(); ++k)
    tap_reads_.emplace(outs.size() == 1 ? graph_->return_node() : out->node(), outs.size() == 1 ? 0 : k);
  fn.setSchema(schema.cloneWithReturns({c10::Argument("", out->type())}));
  if (taps.mode == TapMode::Return) torch::jit::EliminateDeadCode(graph_);
}

// In-place ops the rules know become their functional forms, so that rules
// can read an op's input after it ran. Later readers of the mutated tensor
// read the functional result instead.
void GraphRewrite::functionalise(Block* b) {
  for (auto it = b->nodes().begin(); it != b->nodes().end();) {
    Node* n = *it;
    ++it;
    for (Block* sub : n->blocks()) functionalise(sub);
    std::string op = op_name(n);
    if (!n->kind().is_aten() || op.size() < 2 || op.back() != '_' || op.compare(0, 2, "__") == 0) continue;
    std::string base = op.substr(0, op.size() - 1);
    if (op_family(base) == OpFamily::Other || n->outputs().size() != 1) continue;
    // Later readers of the mutated tensor must be in this block (or below):
    // a reader after an enclosing If or loop cannot be pointed at a value
    // made inside it, so such an op stays (and rules name it).
    Value* mutated = n->input(0);
    bool local = true;
    for (const auto& use : mutated->uses()) {
      Node* u = use.user;
      if (u == n) continue;
      while (u && u->owningBlock() != b) u = u->owningBlock()->owningNode();
      local = local && (u == nullptr ? false : (u->isBefore(n) || u == n || u->owningBlock() == b));
      if (u == nullptr) local = false;
    }
    if (!local) continue;
    Node* f = graph_->create(c10::Symbol::aten(base), n->inputs(), 1);
    f->output()->setType(n->output()->type());
    take_origin(f, n);
    f->insertBefore(n);
    n->output()->replaceAllUsesWith(f->output());
    // Readers after the op (in this block, or in blocks of later nodes of it) read the result.
    std::vector<std::pair<Node*, size_t>> later;
    for (const auto& use : mutated->uses()) {
      Node* u = use.user;
      while (u->owningBlock() != b) u = u->owningBlock()->owningNode();
      if (u != n && u->isAfter(n) && !tap_reads_.count({use.user, use.offset})) later.emplace_back(use.user, use.offset);
    }
    for (auto& [user, offset] : later) user->replaceInput(offset, f->output());
    n->destroy();
  }
}

void GraphRewrite::analyse(Block* b) {
  for (Node* n : b->nodes()) {
    bool any = false;
    for (Value* v : n->inputs()) any = any || depends(v);
    if (n->kind() == c10::prim::Loop) {
      // Loop-carried values: inputs 2.. map to block inputs 1.. and outputs 0..
      Block* body = n->blocks()[0];
      for (int pass = 0; pass < 2; ++pass) {
        for (size_t i = 2; i < n->inputs().size(); ++i)
          if (depends(n->input(i)) || depends(body->outputs()[i - 1])) dependent_.insert(body->inputs()[i - 1]);
        analyse(body);
      }
      for (size_t i = 0; i < n->outputs().size(); ++i)
        if (depends(n->input(i + 2)) || depends(body->outputs()[i + 1])) dependent_.insert(n->output(i));
      continue;
    }
    if (n->kind() == c10::prim::If) {
      for (Block* sub : n->blocks()) analyse(sub);
      for (size_t i = 0; i < n->outputs().size(); ++i)
        for (Block* sub : n->blocks())
          if (depends(sub->outputs()[i])) dependent_.insert(n->output(i));
      continue;
    }
    for (Block* sub : n->blocks()) analyse(sub);
    if (!any || non_differentiable(op_name(n))) continue;
    for (Value* v : n->outputs())
      if (has_tensor(v->type())) dependent_.insert(v);
  }
}

OpSite GraphRewrite::site(Node* n) const {
  OpSite s;
  s.node = n;
  s.op = op_name(n);
  s.family = n->kind().is_prim() ? OpFamily::Structural : op_family(s.op);
  if (auto cs = n->callstack()) {
    for (const auto& entry : (*cs)->vec()) {
      const auto& info = std::get<2>(entry);
      // Calls of a module's own methods (self._conv_forward) are named SELF.
      if (!info || info->instance_name() == "SELF") continue;
      s.module += (s.module.empty() ? "" : ".") + info->instance_name();
      auto name = info->class_type() ? info->class_type()->name() : c10::nullopt;
      s.module_type = name ? name->name() : "";
    }
  }
  return s;
}

std::vector<size_t> GraphRewrite::dependent_inputs(Node* n) const {
  std::vector<size_t> out;
  for (size_t i = 0; i < n->inputs().size(); ++i)
    if (depends(n->input(i)) && n->input(i)->type()->kind() == c10::TypeKind::TensorType) out.push_back(i);
  return out;
}

// Values the graph's outputs are computed from through differentiable ops
// (what a detach or a shape query reads does not count): ops outside that set
// receive no gradient, and no rule needs to cross them.
void GraphRewrite::mark_live(Block* b, std::unordered_set<const Value*>& live) const {
  for (int pass = 0; pass < 2; ++pass) {  // twice: loop-carried values reach back to the loop's start
    for (Value* v : b->outputs()) live.insert(v);
    for (auto it = b->nodes().rbegin(); it != b->nodes().rend(); ++it) {
      Node* n = *it;
      bool any = false;
      for (Value* v : n->outputs()) any = any || live.count(v);
      if (!any || non_differentiable(op_name(n))) continue;
      for (Block* sub : n->blocks()) mark_live(sub, live);
      for (Value* v : n->inputs()) live.insert(v);
    }
  }
}

void GraphRewrite::collect(Block* b, const std::unordered_set<const Value*>& live, std::vector<OpSite>& out) const {
  for (Node* n : b->nodes()) {
    for (Block* sub : n->blocks()) collect(sub, live, out);
    if (!n->blocks().empty() || n->kind().is_prim()) continue;
    bool output = false;
    for (Value* v : n->outputs()) output = output || (depends(v) && live.count(v));
    if (output && !dependent_inputs(n).empty()) out.push_back(site(n));
  }
}

std::vector<OpSite> GraphRewrite::path() const {
  std::unordered_set<const Value*> live;
  mark_live(graph_->block(), live);
  std::vector<OpSite> out;
  collect(graph_->block(), live, out);
  return out;
}

namespace {

// The nodes from `first` up to (not including) `end` take `like`'s origin.
void adopt(Node* first, Node* end, Node* like) {
  for (Node* n = first; n != end; n = n->next()) take_origin(n, like);
}

}  // namespace

void GraphRewrite::decompose() {
  std::vector<Node*> todo;
  std::function<void(Block*)> find = [&](Block* b) {
    for (Node* n : b->nodes()) {
      for (Block* sub : n->blocks()) find(sub);
      bool dependent = false;  // decided before any is replaced (new values are not analysed yet)
      for (Value* v : n->inputs()) dependent = dependent || depends(v);
      if (dependent && (n->kind() == c10::Symbol::aten("layer_norm") ||
                        n->kind() == c10::Symbol::aten("scaled_dot_product_attention")))
        todo.push_back(n);
    }
  };
  find(graph_->block());
  for (Node* n : todo) {
    if (n->kind() == c10::Symbol::aten("layer_norm")) decompose_layer_norm(n);
    else decompose_attention(n);
  }
  if (!todo.empty()) reanalyse();
}

// layer_norm(x) = u * rsqrt(mean(u * u) + eps) * weight + bias, u = x - mean(x),
// means over the normalised dimensions.
void GraphRewrite::decompose_layer_norm(Node* n) {
  // Only the number of normalised dimensions matters (a constant, or a list built in the graph).
  auto shape = resolve(n->input(1));
  Node* list = n->input(1)->node();
  size_t count = shape && shape->isIntList() ? shape->toIntList().size()
                 : shape && shape->isTuple()             ? shape->toTupleRef().elements().size()
                 : list->kind() == c10::prim::ListConstruct ? list->inputs().size() : 0;
  auto eps = resolve(n->input(4));
  if (count == 0 || !eps || !eps->isDouble()) return;  // left whole: the rules name it
  std::vector<int64_t> dims;
  for (size_t i = 0; i < count; ++i) dims.push_back(-1 - static_cast<int64_t>(i));
  Node* first = n->prev();
  torch::jit::WithInsertPoint guard(n);
  Graph& g = *graph_;
  Value* d = g.insertConstant(dims);
  Value* keep = g.insertConstant(true);
  Value* x = n->input(0);
  Value* u = g.insert(c10::aten::sub, {x, g.insert(c10::aten::mean, {x, d, keep})});
  Value* var = g.insert(c10::aten::mean, {g.insert(c10::aten::mul, {u, u}), d, keep});
  Value* y = g.insert(c10::aten::mul, {u, g.insert(c10::aten::rsqrt, {g.insert(c10::aten::add, {var, g.insertConstant(eps->toDouble())})})});
  normalising_.insert(y->node());
  if (n->input(2)->type()->kind() != c10::TypeKind::NoneType) y = g.insert(c10::aten::mul, {y, n->input(2)});
  if (n->input(3)->type()->kind() != c10::TypeKind::NoneType) y = g.insert(c10::aten::add, {y, n->input(3)});
  adopt(first->next(), n, n);
  n->output()->replaceAllUsesWith(y);
  n->destroy();
}

void GraphRewrite::decompose_softmax(Node* n) {
  Node* first = n->prev();
  torch::jit::WithInsertPoint guard(n);
  Graph& g = *graph_;
  Value* x = n->input(0);
  if (n->inputs().size() > 2 && n->input(2)->type()->kind() != c10::TypeKind::NoneType)
    x = g.insert(c10::aten::to, {x, n->input(2)});
  Value* dims = g.insertNode(g.createList(c10::IntType::get(), {n->input(1)}))->output();
  Value* keep = g.insertConstant(true);
  Value* top = g.insert(c10::aten::amax, {g.insert(c10::aten::detach, {x}), dims, keep});
  top = g.insertNode(g.create(c10::Symbol::fromQualString("torchexplain::pair_pick"), {top, g.insertConstant(int64_t(3))}, 1))->output();
  top->setType(c10::TensorType::get());
  Value* e = g.insert(c10::aten::exp, {g.insert(c10::aten::sub, {x, top})});
  Value* r = g.insert(c10::aten::reciprocal, {g.insert(c10::aten::sum, {e, dims, keep})});
  Value* y = g.insert(c10::aten::mul, {e, r});
  adopt(first->next(), n, n);
  n->output()->replaceAllUsesWith(y);
  n->destroy();
}

// scaled_dot_product_attention(q, k, v, mask, dropout, causal, scale[, gqa]) =
// softmax(q k^T * scale + bias) v, the bias (from the mask and causality)
// computed from shapes only.
void GraphRewrite::decompose_attention(Node* n) {
  auto dropout = resolve(n->input(4));
  auto causal = resolve(n->input(5));
  c10::optional<c10::IValue> gqa = n->inputs().size() > 7 ? resolve(n->input(7)) : c10::optional<c10::IValue>(false);
  OpSite s = site(n);
  if (!dropout || !dropout->isDouble() || dropout->toDouble() != 0.0)
    fail("model: ", s.where(), " applies attention dropout (dropout_p not a constant 0); attribute a model in eval mode");
  if (!causal || !causal->isBool() || !gqa || !gqa->isBool())
    fail("model: ", s.where(), " has is_causal or enable_gqa computed at run time; rules need them constant");
  if (gqa->toBool()) fail("model: ", s.where(), " uses grouped-query attention (enable_gqa), which the rules do not cover yet");
  Node* first = n->prev();
  torch::jit::WithInsertPoint guard(n);
  Graph& g = *graph_;
  Value *q = n->input(0), *k = n->input(1), *v = n->input(2);
  Value* qd = g.insert(c10::aten::detach, {q});
  Value* kd = g.insert(c10::aten::detach, {k});
  Value* scale = g.insertNode(g.create(c10::Symbol::fromQualString("torchexplain::attention_scale"), {qd, n->input(6)}, 1))->output();
  scale->setType(c10::FloatType::get());
  Value* bias = g.insertNode(g.create(c10::Symbol::fromQualString("torchexplain::attention_bias"),
                                      {qd, kd, n->input(3), g.insertConstant(causal->toBool())}, 1))->output();
  bias->setType(c10::TensorType::get());
  Value* scores = g.insert(c10::aten::matmul, {q, g.insert(c10::aten::transpose, {k, g.insertConstant(int64_t(-2)), g.insertConstant(int64_t(-1))})});
  scores = g.insert(c10::aten::add, {g.insert(c10::aten::mul, {scores, scale}), bias});
  Value* p = g.insert(c10::aten::softmax, {scores, g.insertConstant(int64_t(-1))});
  Value* out = g.insert(c10::aten::matmul, {p, v});
  adopt(first->next(), n, n);
  n->output()->replaceAllUsesWith(out);
  n->destroy();
}

Node* GraphRewrite::insert(const char* op, const std::vector<Value*>& inputs, Value* like, Node* anchor, size_t outputs) {
  Node* n = graph_->create(c10::Symbol::fromQualString(op), inputs, outputs);
  for (Value* v : n->outputs()) {
    v->setType(like->type());
    dependent_.insert(v);
  }
  take_origin(n, anchor);
  return n;
}

Value* GraphRewrite::insert_after(Node* after, const char* op, const std::vector<Value*>& inputs, Value* like,
                                  size_t outputs) {
  return insert(op, inputs, like, after, outputs)->insertAfter(after)->outputs()[0];
}

Value* GraphRewrite::insert_before(Node* before, const char* op, const std::vector<Value*>& inputs, Value* like) {
  return insert(op, inputs, like, before)->insertBefore(before)->output();
}

Node* GraphRewrite::with_indices(Node* n) {
  Node* p = graph_->create(c10::Symbol::aten(op_name(n) + "_with_indices"), n->inputs(), 2);
  p->output(0)->setType(n->output()->type());
  p->output(1)->setType(n->output()->type());
  take_origin(p, n);
  p->insertAfter(n);
  dependent_.insert(p->output(0));
  n->output()->replaceAllUsesWith(p->output(0));
  return p;
}

Node* GraphRewrite::copy_after(Node* n, Node* after) {
  Node* c = graph_->createClone(n, [](Value* v) { return v; });
  c->insertAfter(after);
  for (size_t i = 0; i < c->outputs().size(); ++i)
    if (depends(n->output(i))) dependent_.insert(c->output(i));
  return c;
}

Value* GraphRewrite::constant(const c10::IValue& v, Node* before) {
  torch::jit::WithInsertPoint guard(before);
  return graph_->insertConstant(v);
}

Value* GraphRewrite::buffer(const std::string& stem, const torch::Tensor& t, Node* before) {
  std::string name = "_torchexplain_" + stem + "_" + std::to_string(buffers_++);
  c10::Device device(c10::kCPU);
  for (const auto& p : module_.parameters()) {
    device = p.device();
    break;
  }
  module_.register_buffer(name, t.detach().to(device));
  torch::jit::WithInsertPoint guard(before);
  return graph_->insertNode(graph_->createGetAttr(graph_->inputs()[0], name))->output();
}

c10::optional<c10::IValue> GraphRewrite::resolve(Value* v) const {
  Node* n = v->node();
  if (n->kind() == c10::prim::Constant) return torch::jit::toIValue(v);
  if (n->kind() != c10::prim::GetAttr) return c10::nullopt;
  c10::optional<c10::IValue> parent =
      n->input() == graph_->inputs()[0] ? c10::optional<c10::IValue>(module_._ivalue()) : resolve(n->input());
  if (!parent || !parent->isObject()) return c10::nullopt;
  const auto& obj = parent->toObject();
  const std::string& name = n->s(c10::attr::name);
  if (!obj->type()->hasAttribute(name)) return c10::nullopt;
  return obj->getAttr(name);
}

// Batch norm in inference is an affine map per channel: fold it into the
// convolution or linear layer that feeds it (LRP then sees one layer, as
// Zennit's canonizers do).
void GraphRewrite::fold_batch_norm(Block* b) {
  for (auto it = b->nodes().begin(); it != b->nodes().end();) {
    Node* n = *it;
    ++it;
    for (Block* sub : n->blocks()) fold_batch_norm(sub);
    if (n->kind() != c10::Symbol::aten("batch_norm")) continue;
    Node* p = n->input(0)->node();
    std::string op = op_name(p);
    bool layer = op == "conv1d" || op == "conv2d" || op == "conv3d" || op == "linear";
    if (op == "_convolution") {
      auto transposed = resolve(p->input(6));
      layer = transposed && transposed->isBool() && !transposed->toBool();
    }
    if (!layer || p->outputs().size() != 1) continue;
    // Nothing else may read the layer's output, shape queries aside (the
    // graph's return, which a layer tap may be, reads it too).
    bool sole = true;
    for (const auto& use : p->output()->uses()) {
      if (use.user == n) continue;
      sole = sole && !use.user->outputs().empty();
      for (const Value* out : use.user->outputs()) sole = sole && !has_tensor(out->type());
    }
    if (!sole) continue;
    auto w = resolve(p->input(1)), bias = resolve(p->input(2)), gamma = resolve(n->input(1)), beta = resolve(n->input(2)),
         mean = resolve(n->input(3)), var = resolve(n->input(4)), training = resolve(n->input(5)), eps = resolve(n->input(7));
    if (!w || !w->isTensor() || !bias || !gamma || !beta || !mean || !mean->isTensor() || !var || !var->isTensor() ||
        !eps || !training || !training->isBool() || training->toBool())
      continue;
    torch::NoGradGuard no_grad;
    torch::Tensor scale = var->toTensor().add(eps->toDouble()).rsqrt();
    if (gamma->isTensor()) scale = scale * gamma->toTensor();
    std::vector<int64_t> shape(w->toTensor().dim(), 1);
    shape[0] = -1;
    torch::Tensor folded_w = w->toTensor() * scale.view(shape);
    torch::Tensor folded_b = ((bias->isTensor() ? bias->toTensor() : torch::zeros_like(scale)) - mean->toTensor()) * scale;
    if (beta->isTensor()) folded_b = folded_b + beta->toTensor();
    p->replaceInput(1, buffer("folded_weight", folded_w, p));
    p->replaceInput(2, buffer("folded_bias", folded_b, p));
    n->output()->replaceAllUsesWith(p->output());
    n->destroy();
    ++folded_;
  }
}

void GraphRewrite::reroute_after(Value* v, Node* node, Value* replacement) {
  v->replaceAllUsesAfterNodeWith(node, replacement);
}

}  // namespace tx
