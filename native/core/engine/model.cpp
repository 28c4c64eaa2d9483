#include "engine/model.h"

#include <ATen/CPUGeneratorImpl.h>
#include <chrono>
#include <cmath>
#include <limits>

#include <filesystem>
#include <regex>
#include <set>
#include <unordered_map>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <c10/util/Logging.h>
#include <mutex>

#include "engine/errors.h"

namespace tx {

c10::Device parse_device(const std::string& spec) {
  c10::Device device(c10::kCPU);
  try {
    device = c10::Device(spec);
  } catch (const c10::Error&) {
    fail("device: expected 'cpu', 'cuda' or 'cuda:N', got '", spec, "'");
  }
  if (device.is_cuda()) {
    if (!torch::cuda::is_available()) {
      if (at::Context::hasCUDART())
        fail("device: '", spec, "' needs a visible GPU; this build's LibTorch ", TORCH_VERSION,
             " has CUDA but sees no GPU (check the driver, nvidia-smi, and CUDA_VISIBLE_DEVICES)");
      fail("device: '", spec, "' needs a CUDA build of LibTorch and a visible GPU; this build's LibTorch ", TORCH_VERSION,
           " has no CUDA (build against a CUDA LibTorch with LIBTORCH=/path/to/libtorch, or pip's CUDA torch)");
    }
    int64_t count = static_cast<int64_t>(torch::cuda::device_count());
    if (device.has_index() && device.index() >= count)
      fail("device: '", spec, "' is out of range: ", count, " CUDA device(s) visible");
  } else if (!device.is_cpu()) {
    fail("device: only 'cpu' and 'cuda[:N]' are supported, got '", spec, "'");
  } else if (device.has_index() && device.index() != 0) {
    fail("device: '", spec, "' does not exist: the CPU is 'cpu' (or 'cpu:0')");
  }
  return device;
}

namespace {

// A tensor whose storage is smaller than its sizes and strides reach reads
// past its end at the first forward: reject such archives at load.
void check_tensor(const torch::Tensor& t, const std::string& what, const std::string& path) {
  if (!t.defined() || !t.has_storage() || t.numel() == 0) return;
  int64_t extent = t.storage_offset();
  for (int64_t d = 0; d < t.dim(); ++d) extent += (t.size(d) - 1) * t.stride(d);
  int64_t need = (extent + 1) * static_cast<int64_t>(t.element_size());
  int64_t have = static_cast<int64_t>(t.storage().nbytes());
  if (!t.storage().data())
    fail_with(ErrorCode::ModelLoad, "path: '", path, "' is corrupt: tensor '", what, "' of shape ", shape_str(t.sizes()),
              " has no data in the archive");
  if (need > have)
    fail_with(ErrorCode::ModelLoad, "path: '", path, "' is corrupt: tensor '", what, "' of shape ", shape_str(t.sizes()),
              " needs ", need, " bytes of storage, the archive holds ", have);
}

void check_value(const c10::IValue& v, const std::string& what, const std::string& path, int depth = 0) {
  if (depth > 64) return;
  if (v.isTensor()) check_tensor(v.toTensor(), what, path);
  else if (v.isTensorList())
    for (size_t i = 0; i < v.toTensorList().size(); ++i) check_tensor(v.toTensorList().get(i), what + "[" + std::to_string(i) + "]", path);
  else if (v.isList())
    for (size_t i = 0; i < v.toListRef().size(); ++i) check_value(v.toListRef()[i], what + "[" + std::to_string(i) + "]", path, depth + 1);
  else if (v.isTuple())
    for (size_t i = 0; i < v.toTupleRef().elements().size(); ++i)
      check_value(v.toTupleRef().elements()[i], what + "[" + std::to_string(i) + "]", path, depth + 1);
  else if (v.isGenericDict())
    for (const auto& e : v.toGenericDict()) check_value(e.value(), what + "{}", path, depth + 1);
}

}  // namespace

namespace {

// TorchScript's parser and compiler recurse once per level of nesting, and a
// few hundred thousand levels overflow any thread's stack (a crash no handler
// can catch). Models saved by PyTorch nest a few dozen levels: reject code
// that nests far deeper before the compiler sees it.
void check_code_nesting(const std::string& path) {
  constexpr int64_t kMaxDepth = 1000;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const std::exception&) {
    return;  // not an archive: the loader reports it
  }
  for (const auto& name : reader->getAllRecords()) {
    if (name.size() < 3 || name.compare(name.size() - 3, 3, ".py") != 0) continue;
    auto [data, size] = reader->getRecord(name);
    const char* code = static_cast<const char*>(data.get());
    int64_t brackets = 0, unary = 0, line_words = 0, indent = 0;
    bool line_start = true;
    auto too_deep = [&](const char* what) {
      fail_with(ErrorCode::ModelLoad, "path: '", path, "' has code nested too deeply to compile safely (", what, " in ", name,
                "; at most ", kMaxDepth, " levels)");
    };
    for (size_t i = 0; i < size; ++i) {
      char c = code[i];
      if (c == '\n') {
        line_start = true, indent = 0, line_words = 0, unary = 0;
        continue;
      }
      if (line_start && c == ' ') {
        if (++indent > 4 * kMaxDepth) too_deep("indentation");
        continue;
      }
      line_start = false;
      if (c == '(' || c == '[' || c == '{') {
        if (++brackets > kMaxDepth) too_deep("brackets");
      } else if (c == ')' || c == ']' || c == '}') {
        brackets = std::max<int64_t>(0, brackets - 1);
      }
      // Runs of prefix operators, and right-nested words (if/else, not, **).
      if (c == '-' || c == '+' || c == '~') {
        if (++unary > kMaxDepth) too_deep("operators");
      } else if (c != ' ') {
        unary = 0;
      }
      if ((c == 'i' && i + 2 < size && code[i + 1] == 'f' && code[i + 2] == ' ') ||
          (c == 'n' && i + 3 < size && code[i + 1] == 'o' && code[i + 2] == 't' && code[i + 3] == ' ') ||
          (c == '*' && i + 1 < size && code[i + 1] == '*'))
        if (++line_words > 4 * kMaxDepth) too_deep("conditional or power expressions");
    }
  }
}

}  // namespace

void Model::check_storages(const torch::jit::Module& module, const std::string& path) {
  for (const auto& a : module.named_attributes(/*recurse=*/true))
    if (!a.value.isModule()) check_value(a.value, a.name, path);
  // Constants baked into the code (traced models keep tensors there).
  for (const auto& m : module.get_methods())
    for (const auto* node : m.graph()->nodes())
      if (node->kind() == c10::prim::Constant && node->output()->type()->kind() == c10::TypeKind::TensorType)
        check_value(*torch::jit::toIValue(node->output()), "constant in " + m.name(), path);
}

namespace {
size_t tensor_bytes(const torch::jit::Module& module) {
  size_t bytes = 0;
  for (const auto& a : module.named_attributes(true))
    if (a.value.isTensor() && a.value.toTensor().has_storage()) bytes += a.value.toTensor().storage().nbytes();
  return bytes;
}
}  // namespace

Model::Model(torch::jit::Module module, c10::Device device, std::string path, std::shared_ptr<Layout> layout)
    : module_(std::move(module)),
      device_(device),
      path_(std::move(path)),
      derived_((size_t{32} << 20) + 4 * tensor_bytes(module_)) {
  if (layout) layout_ = std::move(layout);
}

MemoryFormat parse_memory_format(const std::string& spec) {
  if (spec == "auto") return MemoryFormat::Auto;
  if (spec == "contiguous") return MemoryFormat::Contiguous;
  if (spec == "channelsLast") return MemoryFormat::ChannelsLast;
  fail("memoryFormat: expected 'auto', 'channelsLast' or 'contiguous', got '", spec, "'");
}

namespace {

bool is_image(const torch::Tensor& t) { return t.defined() && t.dim() == 4 && at::isFloatingType(t.scalar_type()); }

// Lays out the module's 4-d floating-point tensors (convolution weights).
// Returns whether it has any.
bool lay_out_weights(const torch::jit::Module& module, at::MemoryFormat format) {
  torch::NoGradGuard no_grad;
  bool any = false;
  // Parameters, and buffers (batch norms folded into convolution weights).
  auto lay_out = [&](const torch::Tensor& t) {
    if (!is_image(t)) return;
    any = true;
    if (!t.is_contiguous(format)) const_cast<torch::Tensor&>(t).set_data(t.detach().contiguous(format));
  };
  for (const auto& p : module.parameters(/*recurse=*/true)) lay_out(p);
  for (const auto& b : module.buffers(/*recurse=*/true)) lay_out(b);
  return any;
}

}  // namespace

MemoryFormat Model::memory_format() const { return layout_->format.load(); }

namespace {

// A TorchScript file that uses what this LibTorch does not know (an op added
// later, like scaled_dot_product_attention in 2.0, or a newer file format)
// is TorchScript from a newer PyTorch: say so, and what to do.
void newer_pytorch_check(const std::string& path, const std::string& why) {
  std::smatch m;
  std::string what;
  static const std::regex op("Unknown builtin op: ([A-Za-z0-9_]+::[A-Za-z0-9_]+(\\.[A-Za-z0-9_]+)?)");
  static const std::regex version("version (is )?not supported|Attempted to read a PyTorch file with version");
  if (std::regex_search(why, m, op)) what = "uses the op " + m[1].str() + ", which";
  else if (std::regex_search(why, version)) what = "has a file format version that";
  else return;
  fail_with(ErrorCode::ModelNewerPyTorch, "path: '", path, "' is TorchScript saved by a newer PyTorch than this build's LibTorch ",
            TORCH_VERSION, ": it ", what, " LibTorch ", TORCH_VERSION,
            " does not have. Rebuild torchexplain against a LibTorch at least as new as the PyTorch that saved the file ",
            "(pip install torch, then npm rebuild torchexplain; or LIBTORCH=/path/to/libtorch), or save the model with this PyTorch version");
}

// forward() returns the element `output` names (see Model::load).
void select_output(torch::jit::Module& module, const c10::IValue& output) {
  auto& fn = torch::jit::toGraphFunction(module.get_method("forward").function());
  std::shared_ptr<torch::jit::Graph> graph = fn.graph();
  torch::jit::Value* out = graph->outputs()[0];
  c10::TypePtr type = out->type();
  torch::jit::WithInsertPoint guard(graph->return_node());
  torch::jit::Value* picked = nullptr;
  std::string what = output.isString() ? "'" + output.toStringRef() + "'" : std::to_string(output.toInt());
  if (auto tuple = type->cast<c10::TupleType>()) {
    const auto& elements = tuple->elements();
    int64_t index = -1;
    if (output.isInt()) {
      index = output.toInt();
      if (index < 0 || index >= static_cast<int64_t>(elements.size()))
        fail("output: forward() returns a tuple of ", elements.size(), " elements (", type->str(), "); expected an index from 0 to ",
             elements.size() - 1, ", got ", index);
    } else {
      // A named tuple's fields (its schema's arguments; a plain tuple has none).
      std::vector<std::string> names;
      if (tuple->schema())
        for (const auto& a : tuple->schema()->arguments()) names.push_back(a.name());
      for (size_t i = 0; i < names.size(); ++i)
        if (names[i] == output.toStringRef()) index = static_cast<int64_t>(i);
      if (index < 0)
        fail("output: forward() returns ", type->str(), ", which has no field ", what, "; give an index from 0 to ",
             elements.size() - 1, names.empty() ? "" : std::string(" or a field name: ") + join(names));
    }
    picked = graph->insertNode(graph->createTupleIndex(out, graph->insertConstant(index), elements[index]))->output();
  } else if (auto dict = type->cast<c10::DictType>()) {
    bool str_keys = dict->getKeyType()->kind() == c10::TypeKind::StringType;
    if (output.isString() != str_keys)
      fail("output: forward() returns ", type->str(), "; expected a key of type ", dict->getKeyType()->str(), ", got ", what);
    // Keys known from the graph (a dict built in forward()) are checked here, not at the first call.
    torch::jit::Node* made = out->node();
    if (made->kind() == c10::prim::DictConstruct) {
      std::vector<std::string> keys;
      bool found = false;
      for (size_t i = 0; i + 1 < made->inputs().size(); i += 2) {
        auto k = torch::jit::toIValue(made->input(i));
        if (!k) { keys.clear(); found = true; break; }  // a key computed at run time: leave it to the call
        keys.push_back(k->isString() ? "'" + k->toStringRef() + "'" : k->tagKind());
        found = found || *k == output;
      }
      if (!found) fail("output: forward() returns a dict with the keys ", join(keys), ", not ", what);
    }
    picked = graph->insert(c10::aten::__getitem__, {out, graph->insertConstant(output)});
  } else {
    fail("output: forward() returns ", type->str(), ", not a tuple or dict to pick ", what,
         " from", type->kind() == c10::TypeKind::TensorType ? " (leave 'output' out)" : "");
  }
  if (picked->type()->kind() != c10::TypeKind::TensorType)
    fail("output: element ", what, " of forward()'s ", type->str(), " is ", picked->type()->str(), ", expected a Tensor");
  graph->eraseOutput(0);
  graph->registerOutput(picked);
  fn.setSchema(fn.getSchema().cloneWithReturns({c10::Argument("", picked->type())}));
}

}  // namespace

std::shared_ptr<Model> Model::load(const std::string& path, const std::string& device_spec, MemoryFormat format,
                                   const c10::IValue& output) {
  c10::Device device = parse_device(device_spec);
  std::error_code ec;
  if (path.empty()) fail("path: expected the path of a TorchScript file, got an empty string");
  if (path.find('\0') != std::string::npos) fail("path: contains a NUL character");
  if (!std::filesystem::exists(path, ec)) fail("path: no such file '", path, "'");
  if (std::filesystem::is_directory(path, ec)) fail("path: '", path, "' is a directory, not a TorchScript file");
  // A FIFO or device would block the reader (or never end): files only.
  if (!std::filesystem::is_regular_file(path, ec))
    fail("path: '", path, "' is not a regular file (a FIFO, socket or device cannot be loaded)");
  plain_execution();
  check_code_nesting(path);
  torch::jit::Module module;
  try {
    module = torch::jit::load(path, device);
  } catch (const std::exception& e) {
    const auto* c = dynamic_cast<const c10::Error*>(&e);
    const std::string why = c ? c->what_without_backtrace() : e.what();
    newer_pytorch_check(path, why);
    fail_with(ErrorCode::ModelLoad, "path: '", path, "' is not a TorchScript model (save one with torch.jit.script(model).save(path) ",
              "or torch.jit.trace): ", c ? c->what_without_backtrace() : e.what());
  }
  if (!module.find_method("forward"))
    fail_with(ErrorCode::ModelLoad, "path: '", path, "' has no forward() method");
  check_storages(module, path);
  if (!output.isNone()) select_output(module, output);
  // Attribution explains inference behaviour: dropout off, batch norm on its running statistics.
  module.eval();
  auto model = std::shared_ptr<Model>(new Model(std::move(module), device, path));
  model->inference_allowed_ = true;
  // Nothing to choose without convolution weights; on GPUs the choice is left to the user.
  bool has_images = lay_out_weights(model->module_, at::MemoryFormat::Contiguous);
  if (format == MemoryFormat::Auto && (!has_images || !device.is_cpu())) format = MemoryFormat::Contiguous;
  if (format == MemoryFormat::ChannelsLast) lay_out_weights(model->module_, at::MemoryFormat::ChannelsLast);
  model->layout_->format = format;
  return model;
}

const std::vector<c10::Argument>& Model::arguments() const {
  return module_.get_method("forward").function().getSchema().arguments();
}

std::string Model::signature() const {
  std::ostringstream os;
  const auto& args = arguments();
  os << "forward(";
  for (size_t i = 1; i < args.size(); ++i) os << (i > 1 ? ", " : "") << args[i].name() << ": " << args[i].type()->str();
  os << ")";
  return os.str();
}

namespace {

// Module::clone() registers the copy's class types and method graphs in the
// original's compilation unit, which keeps them until the original dies: a
// copy made per call (a rule set or tap on a model too big for the derived
// cache, say) then leaked its graphs, ~3 MB a call on resnet18. Copies made
// here live in a compilation unit of their own and die with it.
using TypeRemap = std::unordered_map<c10::TypePtr, c10::TypePtr>;
// The memo IValue::deepcopy takes (keyed by identity since LibTorch 2).
#if TORCH_VERSION_MAJOR >= 2
using DeepcopyMemo = c10::IValue::HashIdentityIValueMap;
#else
using DeepcopyMemo = c10::IValue::HashAliasedIValueMap;
#endif

torch::jit::Module clone_object(const torch::jit::Module& orig, const std::shared_ptr<torch::jit::CompilationUnit>& cu,
                                bool inplace, TypeRemap& types, DeepcopyMemo& memo,
                                std::vector<std::pair<torch::jit::Module, torch::jit::Module>>& to_fill) {
  auto known = types.find(orig.type());
  const bool first = known == types.end();
  torch::jit::Module copy = first ? torch::jit::Module(*orig.type()->name(), cu, /*shouldMangle=*/true)
                                  : torch::jit::Module(cu, known->second->cast<c10::ClassType>());
  if (first) types[orig.type()] = copy.type();
  const auto& type = orig.type();
  for (size_t i = 0; i < type->numAttributes(); ++i) {
    c10::IValue slot = orig._ivalue()->getSlot(i);
    const std::string& name = type->getAttributeName(i);
    c10::TypePtr attr_type = type->getAttribute(i);
    if (attr_type->is_module()) {
      torch::jit::Module child = clone_object(torch::jit::Module(slot.toObject()), cu, inplace, types, memo, to_fill);
      // An interface-typed slot keeps its (schema-only) type; a class slot takes the copy's.
      copy.type()->addOrCheckAttribute(name, attr_type->cast<c10::ClassType>() ? child.type() : attr_type);
      copy._ivalue()->setAttr(name, child._ivalue());
    } else {
      copy.register_attribute(name, attr_type, inplace ? slot : slot.deepcopy(memo), type->is_parameter(i),
                              type->is_buffer(i));
    }
  }
  if (first) {
    for (size_t i = 0; i < type->numConstants(); ++i) copy.type()->addConstant(type->getConstantName(i), type->getConstant(i));
    to_fill.emplace_back(orig, copy);
  }
  return copy;
}

torch::jit::Module isolated_clone(const torch::jit::Module& orig, bool inplace) {
  auto cu = std::make_shared<torch::jit::CompilationUnit>();
  TypeRemap types;
  DeepcopyMemo memo;
  std::vector<std::pair<torch::jit::Module, torch::jit::Module>> to_fill;
  torch::jit::Module copy = clone_object(orig, cu, inplace, types, memo, to_fill);
  // Methods once every type exists: a method names its submodules' types.
  for (auto& [from, to] : to_fill) {
    for (auto* fn : from.type()->methods()) to.clone_method(from, fn->name());
    if (auto setstate = to.find_method("__setstate__")) {
      auto getstate = to.find_method("__getstate__");
      if (getstate) (*setstate)(torch::jit::Stack{(*getstate)(torch::jit::Stack{})});
    }
  }
  return copy;
}

}  // namespace

std::shared_ptr<Model> Model::randomized(const std::vector<std::string>& names, uint64_t seed) const {
  torch::NoGradGuard no_grad;
  torch::jit::Module copy = module_.deepcopy();
  at::Generator gen = at::detail::createCPUGenerator(seed);
  for (const auto& name : names) {
    bool found = false;
    for (const auto& m : copy.named_modules()) {
      if (m.name != name) continue;
      found = true;
      for (const auto& p : m.value.named_parameters(true)) {
        torch::Tensor t = p.value;
        if (!at::isFloatingType(t.scalar_type()) || t.numel() == 0) continue;
        double sd = t.numel() > 1 ? t.to(torch::kDouble).std().item<double>() : 0.0;
        if (!(sd > 0) || !std::isfinite(sd)) sd = 0.05;
        t.copy_(torch::empty(t.sizes(), torch::kFloat).normal_(0.0, sd, gen));
      }
    }
    if (!found) fail("layers: the model has no layer '", name, "'");
  }
  // The copy's weights were laid out like this model's: it starts from the same choice.
  auto layout = std::make_shared<Layout>();
  layout->format = layout_->format.load();
  return std::shared_ptr<Model>(new Model(std::move(copy), device_, path_, layout));
}

std::vector<std::string> Model::layers(bool with_parameters) const {
  std::vector<std::string> names;
  for (const auto& m : module_.named_modules())
    if (!m.name.empty() && (!with_parameters || m.value.named_parameters(true).size() > 0)) names.push_back(m.name);
  return names;
}

namespace {

c10::IValue convert_as(const Value& v, const c10::TypePtr& type, const std::string& where, c10::Device device) {
  using K = c10::TypeKind;
  auto wrong = [&]() -> c10::IValue { fail(where, ": expected ", type->str(), ", got ", v.kind_name()); };
  switch (type->kind()) {
    case K::OptionalType:
      if (v.is_none()) return c10::IValue();
      return convert_as(v, type->castRaw<c10::OptionalType>()->getElementType(), where, device);
    case K::TensorType:
      if (!v.is_tensor()) return wrong();
      return v.tensor.to(device);
    case K::FloatType:
      if (!v.is_number()) return wrong();
      return v.number;
    case K::IntType:
      if (!v.is_integer()) return wrong();
      return static_cast<int64_t>(v.number);
    case K::NumberType:
      if (!v.is_number()) return wrong();
      return v.is_integer() ? c10::IValue(static_cast<int64_t>(v.number)) : c10::IValue(v.number);
    case K::BoolType:
      if (v.kind != Value::Kind::Bool) return wrong();
      return v.boolean;
    case K::StringType:
      if (v.kind != Value::Kind::String) return wrong();
      return v.string;
    case K::ListType: {
      if (!v.is_list()) return wrong();
      auto elem = type->castRaw<c10::ListType>()->getElementType();
      c10::impl::GenericList list(elem);
      for (size_t i = 0; i < v.list->size(); ++i)
        list.push_back(convert_as((*v.list)[i], elem, where + "[" + std::to_string(i) + "]", device));
      return list;
    }
    default:
      fail(where, ": forward() takes a ", type->str(), " here, which torchexplain cannot pass from JavaScript");
  }
}

}  // namespace

std::vector<c10::IValue> Model::convert_extra(const List& extra, size_t num_inputs) const {
  const auto& args = arguments();  // args[0] is self
  size_t declared = args.size() - 1;
  size_t required = 0;
  for (size_t i = 1; i < args.size(); ++i)
    if (!args[i].default_value()) required = i;
  if (num_inputs + extra.size() > declared || num_inputs + extra.size() < required)
    fail("inputs: the model's ", signature(), " takes ", declared, " argument(s); got ", num_inputs,
         " input tensor(s) and ", extra.size(), " additionalForwardArgs");
  for (size_t i = 0; i < num_inputs; ++i) {
    auto kind = args[i + 1].type()->kind();
    bool tensor_like = kind == c10::TypeKind::TensorType ||
                       (kind == c10::TypeKind::OptionalType &&
                        args[i + 1].type()->castRaw<c10::OptionalType>()->getElementType()->kind() == c10::TypeKind::TensorType);
    if (!tensor_like)
      fail("inputs: argument '", args[i + 1].name(), "' of ", signature(), " is a ", args[i + 1].type()->str(),
           ", not a Tensor: pass it in additionalForwardArgs");
  }
  std::vector<c10::IValue> out;
  for (size_t j = 0; j < extra.size(); ++j) {
    const auto& arg = args[num_inputs + j + 1];
    out.push_back(convert_as(extra[j], arg.type(), "additionalForwardArgs[" + std::to_string(j) + "] ('" + arg.name() + "')", device_));
  }
  return out;
}

namespace {

// The interpreter's message ends with the Python-level error; put that first
// and keep the TorchScript traceback after it.
// The model's own error, its last line (the cause) first, then what may help:
// the batch dimension when an op says the input is unbatched, the layout when
// an op needs contiguous tensors; the TorchScript traceback follows.
[[noreturn]] void forward_failed(const std::string& message, const std::vector<torch::Tensor>& inputs, bool channels_last) {
  std::string last;
  size_t end = message.find_last_not_of(" \n");
  if (end != std::string::npos) {
    size_t start = message.rfind('\n', end);
    last = message.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
  }
  auto has = [&](const char* s) { return last.find(s) != std::string::npos; };
  std::string hints;
  // Ops that say a tensor has the wrong rank, or (a convolution having taken an
  // input without its batch as unbatched) a product that does not fit.
  if (has("unbatched") || has("Expected 4D") || has("Expected 3D") || has("Expected 2D") || has("cannot be multiplied")) {
    std::vector<std::string> shapes;
    for (const auto& x : inputs) shapes.push_back(shape_str(x.sizes()));
    hints += concat(" (inputs of shape ", join(shapes), ": the first dimension is the batch, so a single example is [1, ...];"
                    " is it missing?)");
  }
  if (channels_last && (has("view") || has("stride") || has("contiguous")))
    hints += " (the model runs channels-last; load it with memoryFormat: 'contiguous' if an op in it needs contiguous tensors)";
  if (last.empty() || last == message) fail_with(ErrorCode::ModelForward, "model forward failed: ", message, hints);
  fail_with(ErrorCode::ModelForward, "model forward failed: ", last, hints, "\n", message);
}

}  // namespace

void plain_execution() {
  // Run TorchScript graphs as written: the optimising executor's profiling
  // runs and autodiff subgraphs cost more than they save on attribution
  // workloads, and its differentiable subgraphs cut gradients to values a
  // graph returns besides its output (layer taps). The setting is per
  // thread, so every thread that runs a model sets it.
  thread_local bool set = false;
  if (set) return;
  torch::jit::setGraphExecutorOptimize(false);
  set = true;
#if TORCH_VERSION_MAJOR >= 2
  // LibTorch 2.x logs "Could not initialize NNPACK! Reason: Unsupported
  // hardware." to stderr, on CPUs NNPACK cannot use, whenever a convolution
  // considers it: probe once with logging quietened, and where it cannot run
  // take it out of the choice (as torch.backends.nnpack.set_flags(False)).
  static std::once_flag nnpack_once;
  std::call_once(nnpack_once, [] {
    int level = FLAGS_caffe2_log_level;
    FLAGS_caffe2_log_level = 2;  // errors only
    bool available = false;
    try {
      available = at::_nnpack_available();
    } catch (const std::exception&) {
    }
    FLAGS_caffe2_log_level = level;
    if (!available) at::globalContext().setUserEnabledNNPACK(false);
  });
#endif
}

namespace {

std::vector<c10::IValue> stack_of(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra,
                                  MemoryFormat format) {
  std::vector<c10::IValue> stack;
  for (const auto& x : inputs)
    stack.emplace_back(format == MemoryFormat::ChannelsLast && is_image(x) ? x.contiguous(at::MemoryFormat::ChannelsLast) : x);
  stack.insert(stack.end(), extra.begin(), extra.end());
  return stack;
}

// Every tensor of a forward's output, flattened (a tensor or tuples of them).
void tensors_of(const c10::IValue& v, std::vector<torch::Tensor>& out) {
  if (v.isTensor()) out.push_back(v.toTensor());
  else if (v.isTuple())
    for (const auto& e : v.toTupleRef().elements()) tensors_of(e, out);
}

bool same_outputs(const c10::IValue& a, const c10::IValue& b) {
  std::vector<torch::Tensor> ta, tb;
  tensors_of(a, ta), tensors_of(b, tb);
  if (ta.size() != tb.size()) return false;
  for (size_t i = 0; i < ta.size(); ++i) {
    if (!ta[i].sizes().equals(tb[i].sizes())) return false;
    if (!at::isFloatingType(tb[i].scalar_type())) {
      if (!torch::equal(ta[i], tb[i])) return false;
      continue;
    }
    // Float32 sums in another order: relative to the output's scale.
    torch::Tensor x = ta[i].to(torch::kDouble), y = tb[i].to(torch::kDouble);
    double scale = y.numel() ? y.nan_to_num(0, 0, 0).abs().max().item<double>() : 0.0;
    if (!torch::allclose(x, y, 1e-3, 1e-4 * scale + 1e-12, /*equal_nan=*/true)) return false;
  }
  return true;
}

}  // namespace

void Model::choose_layout(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const {
  bool images = false;
  for (const auto& x : inputs) images = images || is_image(x);
  if (!images) return;  // decided on the first call that has images
  std::lock_guard<std::mutex> lock(layout_->mutex);
  if (layout_->format.load() != MemoryFormat::Auto) return;
  // A few rows are enough to see which layout is faster: up to 16, fewer
  // when a pass of 16 is slow (large models), all of them when forward
  // arguments may be per-example and must keep their batch; an even count, as
  // DeepLift's rewritten models take input/reference pairs. Timed forward and
  // backward, as most methods run them: channels-last gains most in the
  // backward convolutions.
  int64_t n = inputs[0].dim() > 0 ? inputs[0].size(0) : 0;
  int64_t rows = extra.empty() ? std::min<int64_t>(n, 16) : n;
  auto pass = [&](MemoryFormat f, c10::IValue* out) {
    std::vector<torch::Tensor> leaves;
    for (const auto& x : inputs) {
      torch::Tensor leaf = (x.dim() > 0 && x.size(0) == n ? x.slice(0, 0, rows) : x).detach();
      leaves.push_back(at::isFloatingType(leaf.scalar_type()) ? leaf.requires_grad_(true) : leaf);
    }
    auto start = std::chrono::steady_clock::now();
    c10::IValue v = module_.forward(stack_of(leaves, extra, f));
    std::vector<torch::Tensor> outs, wrt;
    tensors_of(v, outs);
    torch::Tensor total;
    for (const auto& o : outs)
      if (o.requires_grad()) total = total.defined() ? total + o.sum() : o.sum();
    for (const auto& l : leaves)
      if (l.requires_grad()) wrt.push_back(l);
    if (total.defined() && !wrt.empty()) torch::autograd::grad({total}, wrt, {}, false, false, /*allow_unused=*/true);
    if (out) {
      std::vector<c10::IValue> detached;
      for (const auto& o : outs) detached.emplace_back(o.detach());
      *out = c10::ivalue::Tuple::create(std::move(detached));
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  c10::IValue plain, last;
  double first;
  try {
    first = pass(MemoryFormat::Contiguous, nullptr);  // creates the kernels' primitives
  } catch (const std::exception&) {
    // The model refuses these rows alone (a traced batch size, say): no
    // choice to make here, and the call itself reports any real error.
    layout_->format = MemoryFormat::Contiguous;
    return;
  }
  if (extra.empty() && first > 0.05 && rows > 2) rows = std::max<int64_t>(2, static_cast<int64_t>(rows * 0.05 / first) / 2 * 2);
  auto best_of = [&](MemoryFormat f, c10::IValue* out, int times) {
    double best = std::numeric_limits<double>::infinity();
    for (int i = 0; i < times; ++i) best = std::min(best, pass(f, i == 0 ? out : nullptr));
    return best;
  };
  MemoryFormat choice = MemoryFormat::Contiguous;
  try {
    double t_plain = best_of(MemoryFormat::Contiguous, &plain, 3);
    lay_out_weights(module_, at::MemoryFormat::ChannelsLast);
    pass(MemoryFormat::ChannelsLast, nullptr);
    double t_last = best_of(MemoryFormat::ChannelsLast, &last, 3);
    // Keep channels-last only when faster and equal within float32 (an op
    // that assumed contiguous memory would differ; `view` throws).
    if (t_last < 0.95 * t_plain && same_outputs(last, plain)) choice = MemoryFormat::ChannelsLast;
  } catch (const std::exception&) {
  }
  if (choice == MemoryFormat::Contiguous) lay_out_weights(module_, at::MemoryFormat::Contiguous);
  layout_->format = choice;
}

c10::IValue Model::call(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const {
  plain_execution();
  // An op that cannot take channels-last tensors (`view` across channels)
  // fails only where the user chose that layout: the message says how to undo it.
  bool channels_last = layout_->format.load() == MemoryFormat::ChannelsLast;
  try {
    if (layout_->format.load() == MemoryFormat::Auto) choose_layout(inputs, extra);
    return module_.forward(stack_of(inputs, extra, layout_->format.load()));
  } catch (const c10::Error& e) {
    forward_failed(e.what_without_backtrace(), inputs, channels_last);
  } catch (const std::exception& e) {
    forward_failed(e.what(), inputs, channels_last);
  }
}

torch::Tensor Model::forward(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const {
  c10::IValue out = call(inputs, extra);
  if (!out.isTensor())
    fail("model output: expected forward() to return a Tensor, got ", out.type()->str(),
         out.isTuple() || out.isGenericDict()
             ? "; load it with the 'output' option naming the element to explain (loadModel(path, { output: 0 }), or a dict key such as 'logits')"
             : "");
  return out.toTensor();
}

std::vector<torch::Tensor> Model::forward_values(const std::vector<torch::Tensor>& inputs,
                                                 const std::vector<c10::IValue>& extra) const {
  c10::IValue out = call(inputs, extra);
  if (out.isTensor()) return {out.toTensor()};
  std::vector<torch::Tensor> values;
  if (out.isTuple())
    for (const auto& v : out.toTupleRef().elements()) {
      if (!v.isTensor()) fail("model output: expected Tensors, got ", v.type()->str());
      values.push_back(v.toTensor());
    }
  if (values.empty()) fail("model output: expected a Tensor or a tuple of Tensors, got ", out.type()->str());
  return values;
}

std::shared_ptr<const Model> Model::replica(c10::Device device, size_t index) const {
  if (device == device_ && index == 0) return shared_from_this();
  std::lock_guard<std::mutex> lock(replicas_mutex_);
  auto& slot = replicas_[device.str() + "#" + std::to_string(index)];
  if (!slot) {
    // Replicas on the model's own device share its (read-only) weights:
    // a replica per worker then costs graphs, not parameters.
    torch::jit::Module copy = isolated_clone(module_, /*inplace=*/device == device_);
    if (device != device_) copy.to(device);
    auto replica = std::shared_ptr<Model>(new Model(std::move(copy), device, path_, layout_));
    replica->inference_allowed_ = inference_allowed_;
    slot = replica;
  }
  return slot;
}

namespace {

// What a derived copy costs beyond the original: its graphs, and tensors it
// does not share with the original (folded batch norms, say).
size_t derived_bytes(const torch::jit::Module& original, const torch::jit::Module& copy) {
  std::set<const void*> shared;
  for (const auto& a : original.named_attributes(true))
    if (a.value.isTensor() && a.value.toTensor().has_storage()) shared.insert(a.value.toTensor().storage().data());
  size_t bytes = 0;
  for (const auto& a : copy.named_attributes(true))
    if (a.value.isTensor() && a.value.toTensor().has_storage() && !shared.count(a.value.toTensor().storage().data()))
      bytes += a.value.toTensor().storage().nbytes();
  for (const auto& m : copy.get_methods())
    for (const auto* n : m.graph()->nodes()) bytes += 512, (void)n;
  return bytes + 4096;
}

}  // namespace

std::shared_ptr<const Model> Model::derived(const std::string& key,
                                            const std::function<void(torch::jit::Module&)>& rewrite) const {
  // Cloning registers class types in the shared compilation unit: one at a time.
  std::lock_guard<std::mutex> lock(replicas_mutex_);
  if (!key.empty())
    if (auto hit = derived_.get(key)) return *hit;
  torch::jit::Module copy = isolated_clone(module_, /*inplace=*/true);
  rewrite(copy);
  auto model = std::shared_ptr<Model>(new Model(std::move(copy), device_, path_, layout_));
  if (!key.empty()) derived_.put(key, model, derived_bytes(module_, model->module_));
  return model;
}

std::shared_ptr<const Model> Model::plain(const std::function<bool(torch::jit::Module&)>& rewrite) const {
  std::call_once(plain_once_, [&] {
    std::lock_guard<std::mutex> lock(replicas_mutex_);  // cloning registers class types: one at a time
    torch::jit::Module copy = isolated_clone(module_, /*inplace=*/true);
    bool changed = false;
    try {
      changed = rewrite(copy);
    } catch (const std::exception&) {
      changed = false;  // a graph the rewriter cannot take runs as it is
    }
    if (changed) {
      auto plain = std::shared_ptr<Model>(new Model(std::move(copy), device_, path_, layout_));
      plain->inference_allowed_ = inference_allowed_;
      plain_ = plain;
    }
  });
  return plain_ ? plain_ : shared_from_this();
}

torch::Tensor Model::infer(const std::vector<torch::Tensor>& inputs, const std::vector<c10::IValue>& extra) const {
  if (!inference_allowed_ || !device_.is_cpu() || inference_checked_.load() == Checked::Different) return forward(inputs, extra);
  std::call_once(inference_once_, [&] {
    std::lock_guard<std::mutex> lock(replicas_mutex_);  // cloning registers class types: one at a time
    // Freezing inlines through the graph executor's optimising path, which
    // this thread otherwise runs without (plain_execution): on for the build only.
    torch::jit::setGraphExecutorOptimize(true);
    try {
      torch::jit::Module frozen = torch::jit::freeze(isolated_clone(module_, /*inplace=*/false));
      inference_ = torch::jit::optimize_for_inference(frozen);
    } catch (const std::exception&) {
      inference_.reset();  // a model the passes cannot take runs as it is
    }
    torch::jit::setGraphExecutorOptimize(false);
  });
  if (!inference_) return forward(inputs, extra);
  plain_execution();
  auto run = [&] {
    std::vector<c10::IValue> stack(inputs.begin(), inputs.end());
    stack.insert(stack.end(), extra.begin(), extra.end());
    return inference_->forward(std::move(stack));
  };
  if (inference_checked_.load() == Checked::Pending) {
    // Once: the frozen copy must give forward()'s outputs within float32
    // rounding, or it is not used (nor is a copy that throws where forward() does not).
    std::lock_guard<std::mutex> lock(inference_mutex_);
    if (inference_checked_.load() == Checked::Pending) {
      torch::Tensor expected = forward(inputs, extra);
      Checked verdict = Checked::Different;
      try {
        if (same_outputs(run(), expected)) verdict = Checked::Same;
      } catch (const std::exception&) {
      }
      inference_checked_ = verdict;
      return expected;
    }
  }
  if (inference_checked_.load() != Checked::Same) return forward(inputs, extra);
  c10::IValue out;
  try {
    out = run();
  } catch (const c10::Error& e) {
    forward_failed(e.what_without_backtrace(), inputs, false);
  } catch (const std::exception& e) {
    forward_failed(e.what(), inputs, false);
  }
  if (!out.isTensor()) fail("model output: expected forward() to return a Tensor, got ", out.type()->str());
  return out.toTensor();
}

}  // namespace tx
