// The algorithm registry: every algorithm is a function of a parsed Context
// and its options, run by name (the binding has one generic worker).
#pragma once
#include <string>
#include <vector>

#include "engine/context.h"

namespace tx {

using AlgorithmFn = Result (*)(const Context&, const Options&);

// Parses the request into a Context and runs the named algorithm.
Result run(const std::string& name, const Request& req);

// Runs an algorithm on an existing Context (used by wrappers such as NoiseTunnel).
Result invoke(const std::string& name, const Context& ctx, const Options& options);

std::vector<std::string> algorithm_names();

// One family per file.
Result saliency(const Context&, const Options&);              // gradient.cpp
Result input_x_gradient(const Context&, const Options&);      // gradient.cpp
Result gradient_shap(const Context&, const Options&);         // gradient.cpp
Result integrated_gradients(const Context&, const Options&);  // integrated_gradients.cpp
Result noise_tunnel(const Context&, const Options&);          // noise_tunnel.cpp
Result feature_ablation(const Context&, const Options&);      // perturbation.cpp
Result feature_permutation(const Context&, const Options&);   // perturbation.cpp
Result occlusion(const Context&, const Options&);             // perturbation.cpp
Result shapley_values(const Context&, const Options&);        // perturbation.cpp
Result shapley_value_sampling(const Context&, const Options&);  // perturbation.cpp
Result lime(const Context&, const Options&);                  // lime.cpp
Result kernel_shap(const Context&, const Options&);           // lime.cpp
Result deep_lift(const Context&, const Options&);             // rules.cpp
Result deep_lift_shap(const Context&, const Options&);        // rules.cpp
Result guided_backprop(const Context&, const Options&);       // rules.cpp
Result deconvolution(const Context&, const Options&);         // rules.cpp
Result lrp(const Context&, const Options&);                   // rules.cpp
Result layer_activation(const Context&, const Options&);      // layer.cpp, and below
Result layer_gradient_x_activation(const Context&, const Options&);
Result layer_grad_cam(const Context&, const Options&);
Result guided_grad_cam(const Context&, const Options&);
Result internal_influence(const Context&, const Options&);
Result layer_conductance(const Context&, const Options&);
Result layer_integrated_gradients(const Context&, const Options&);
Result layer_feature_ablation(const Context&, const Options&);
Result layer_deep_lift(const Context&, const Options&);
Result layer_deep_lift_shap(const Context&, const Options&);
Result layer_gradient_shap(const Context&, const Options&);
Result layer_lrp(const Context&, const Options&);
Result neuron_gradient(const Context&, const Options&);
Result neuron_integrated_gradients(const Context&, const Options&);
Result neuron_gradient_shap(const Context&, const Options&);
Result neuron_guided_backprop(const Context&, const Options&);
Result neuron_deconvolution(const Context&, const Options&);
Result neuron_feature_ablation(const Context&, const Options&);
Result neuron_deep_lift(const Context&, const Options&);
Result neuron_deep_lift_shap(const Context&, const Options&);
Result neuron_conductance(const Context&, const Options&);
Result fgsm(const Context&, const Options&);                  // robust.cpp
Result pgd(const Context&, const Options&);                   // robust.cpp
Result infidelity(const Context&, const Options&);            // metrics.cpp
Result sensitivity_max(const Context&, const Options&);       // metrics.cpp
Result masked_scores(const Context&, const Options&);         // metrics.cpp
Result train_cav(const Context&, const Options&);             // concept.cpp
Result project_cavs(const Context&, const Options&);          // concept.cpp
Result llm_attribution(const Context&, const Options&);       // llm.cpp
Result tracin_sketch(const Context&, const Options&);         // influence/tracin.cpp
Result tracin_scores(const Context&, const Options&);
Result tracin_self_influence(const Context&, const Options&);
Result tracin_projected(const Context&, const Options&);
Result embedding_scores(const Context&, const Options&);
Result influence_function_naive(const Context&, const Options&);   // influence/influence_function.cpp
Result influence_function_arnoldi(const Context&, const Options&);
Result influence_embed(const Context&, const Options&);
Result similarity_scores(const Context&, const Options&);     // influence/similarity.cpp

// Layer attributions resized to `size` (spatial dimensions), as Captum's
// LayerAttribution.interpolate: mode nearest, area, linear, bilinear, bicubic, trilinear.
torch::Tensor interpolate(const torch::Tensor& t, const std::vector<int64_t>& size, const std::string& mode);

}  // namespace tx
