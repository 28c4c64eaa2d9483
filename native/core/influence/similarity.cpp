// SimilarityInfluence: training examples ranked by how alike their layer
// activations are to a test example's (cosine similarity, or euclidean
// distance), layer by layer. No gradients: one forward pass per chunk.
#include "algorithms.h"
#include "engine/errors.h"
#include "influence/influence.h"

namespace tx {

namespace {

// Rows scaled to unit norm; a row of zeros (no direction) becomes a row of
// `replace`, as the reference does, rather than NaN.
torch::Tensor unit_rows(const torch::Tensor& x, double replace) {
  torch::Tensor norm = x.norm(2, 1, true);
  torch::Tensor zero = norm == 0;
  return torch::where(zero, torch::full_like(x, replace), x / norm.masked_fill(zero, 1));
}

}  // namespace

// Options: layer (names), test (their activations for the test set, from
// LayerActivation), similarityMetric ('cosine' | 'euclidean'),
// similarityDirection ('max' | 'min'), replaceNan, k, offset and best (one
// [indices, values] pair per layer). Returns [indices, values] per layer.
Result similarity_scores(const Context& ctx, const Options& o) {
  const Value& test = o.get("test");
  std::string metric = o.choice("similarityMetric", "cosine", {"cosine", "euclidean"});
  std::string direction = o.choice("similarityDirection", "max", {"max", "min"});
  double replace = o.number("replaceNan", direction == "max" ? -2.0 : 2.0);
  int64_t k = o.integer("k", 1, 1);
  int64_t offset = o.integer("offset", 0, 0);
  const Value& best = o.get("best");
  Options act;
  act.set("layer", o.get("layer"));
  Result train = invoke("LayerActivation", ctx, act);
  o.reject_unknown("SimilarityScores");
  size_t layers = train.attributions.size();
  if (!test.is_list() || test.list->size() != layers) fail("test: expected one activation tensor per layer (", layers, ")");
  if (!best.is_none() && (!best.is_list() || best.list->size() != 2 * layers)) fail("best: expected [indices, values] per layer from an earlier chunk");
  Result out;
  for (size_t l = 0; l < layers; ++l) {
    const Value& tv = (*test.list)[l];
    if (!tv.is_tensor()) fail("test[", l, "]: expected a Tensor");
    torch::Tensor x = tv.tensor.to(train.attributions[l].device());
    x = x.reshape({x.size(0), -1});
    torch::Tensor y = train.attributions[l].reshape({train.attributions[l].size(0), -1});
    if (x.size(1) != y.size(1)) fail_shape("test[", l, "]: ", x.size(1), " activations per example, the layer has ", y.size(1));
    torch::Tensor s = metric == "cosine" ? unit_rows(x, replace).mm(unit_rows(y, replace).t()) : torch::cdist(x, y);
    torch::Tensor indices, values;
    if (!best.is_none()) {
      indices = (*best.list)[2 * l].tensor;
      values = (*best.list)[2 * l + 1].tensor;
    }
    merge_top_k(s, offset, k, direction == "max", indices, values);
    out.attributions.push_back(indices);
    out.attributions.push_back(values);
  }
  return out;
}

}  // namespace tx
