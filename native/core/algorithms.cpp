#include "algorithms.h"

#include "engine/errors.h"

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
  bool on_data = false;  // its inputs are data (concept activations), not the model's inputs
  bool parameters = false;  // measures the model's parameters: its passes run it unfolded (no batch norms folded)
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
      // Layer methods: integer inputs (token ids) are fine where the layer is what varies.
      {"LayerActivation", false, layer_activation},
      {"LayerGradientXActivation", false, layer_gradient_x_activation},
      {"LayerGradCam", false, layer_grad_cam},
      {"GuidedGradCam", true, guided_grad_cam},
      {"InternalInfluence", true, internal_influence},
      {"LayerConductance", false, layer_conductance},
      {"LayerIntegratedGradients", false, layer_integrated_gradients},
      {"LayerFeatureAblation", false, layer_feature_ablation},
      {"LayerDeepLift", false, layer_deep_lift},
      {"LayerDeepLiftShap", false, layer_deep_lift_shap},
      {"LayerGradientShap", false, layer_gradient_shap},
      {"LayerLRP", false, layer_lrp},
      {"NeuronGradient", true, neuron_gradient},
      {"NeuronIntegratedGradients", true, neuron_integrated_gradients},
      {"NeuronGradientShap", true, neuron_gradient_shap},
      {"NeuronGuidedBackprop", true, neuron_guided_backprop},
      {"NeuronDeconvolution", true, neuron_deconvolution},
      {"NeuronFeatureAblation", false, neuron_feature_ablation},
      {"NeuronDeepLift", true, neuron_deep_lift},
      {"NeuronDeepLiftShap", true, neuron_deep_lift_shap},
      {"NeuronConductance", true, neuron_conductance},
      {"FGSM", true, fgsm},
      {"PGD", true, pgd},
      {"Infidelity", false, infidelity},
      {"SensitivityMax", false, sensitivity_max},
      {"MaskedScores", false, masked_scores},
      {"LLMAttribution", false, llm_attribution},
      // Training-data influence: the model's (or its checkpoints') parameters, per example.
      {"TracInSketch", false, tracin_sketch, false, true},
      {"TracInScores", false, tracin_scores, false, true},
      {"TracInSelfInfluence", false, tracin_self_influence, false, true},
      {"TracInProjected", false, tracin_projected, false, true},
      {"NaiveInfluenceFunction", false, influence_function_naive, false, true},
      {"ArnoldiInfluenceFunction", false, influence_function_arnoldi, false, true},
      {"InfluenceEmbed", false, influence_embed, false, true},
      {"SimilarityScores", false, similarity_scores},
      {"EmbeddingScores", false, embedding_scores, true},
      {"TrainCAV", false, train_cav, true},
      {"ProjectCAVs", false, project_cavs, true},
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
  for (const auto& e : registry())
    if (name == e.name && e.on_data) {
      Context ctx;
      ctx.model = ctx.source = req.model;
      ctx.options = &req.options;
      ctx.inputs = req.inputs;
      ctx.batch = req.inputs.empty() ? 0 : req.inputs[0].size(0);
      ctx.progress = std::make_shared<Progress>(req.progress);
      return e.fn(ctx, req.options);
    }
  bool fold = true;
  for (const auto& e : registry())
    if (name == e.name) fold = !e.parameters;
  Context ctx = make_context(req, fold);
  return invoke(name, ctx, req.options);
}

}  // namespace tx
