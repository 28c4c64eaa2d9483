#include "algorithms.h"

#include "errors.h"
#include "executor.h"

namespace tx {

namespace {

// The bare model call, so that Model.forward uses the same worker and checks.
Result forward(const Context& ctx, const Options& o) {
  o.reject_unknown("forward");
  torch::NoGradGuard no_grad;
  return {{ctx.model->forward(ctx.inputs, ctx.extra)}, {}};
}

struct Entry {
  const char* name;
  bool gradient;  // needs floating-point inputs
  AlgorithmFn fn;
};

const std::vector<Entry>& registry() {
  static const std::vector<Entry> entries = {
      {"forward", false, forward},
      {"Saliency", true, saliency},
      {"InputXGradient", true, input_x_gradient},
      {"IntegratedGradients", true, integrated_gradients},
      {"GradientShap", true, gradient_shap},
      {"NoiseTunnel", false, noise_tunnel},
      {"FeatureAblation", false, feature_ablation},
      {"FeaturePermutation", false, feature_permutation},
      {"Occlusion", false, occlusion},
      {"ShapleyValues", false, shapley_values},
      {"ShapleyValueSampling", false, shapley_value_sampling},
      {"Lime", false, lime},
      {"KernelShap", false, kernel_shap},
      {"DeepLift", true, deep_lift},
      {"DeepLiftShap", true, deep_lift_shap},
      {"GuidedBackprop", true, guided_backprop},
      {"Deconvolution", true, deconvolution},
      {"LRP", true, lrp},
  };
  return entries;
}

}  // namespace

std::vector<std::string> algorithm_names() {
  std::vector<std::string> names;
  for (const auto& e : registry()) names.push_back(e.name);
  return names;
}

Result invoke(const std::string& name, const Context& ctx, const Options& options) {
  for (const auto& e : registry()) {
    if (name != e.name) continue;
    if (e.gradient) require_float_inputs(ctx);
    return e.fn(ctx, options);
  }
  fail("algorithm: unknown algorithm '", name, "' (known: ", join(algorithm_names()), ")");
}

Result run(const std::string& name, const Request& req) {
  return run_on<Result>(0, [&] {
    Context ctx = make_context(req);
    return invoke(name, ctx, req.options);
  });
}

}  // namespace tx
