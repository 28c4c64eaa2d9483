// TracIn (TracInCP, TracInCPFast, TracInCPFastRandProj): a training
// example's influence on a test example is the sum over checkpoints of the
// learning rate times the dot product of their loss gradients. The test set's
// gradients are taken once (TracInSketch) and every chunk of the training set
// is scored against them (TracInScores), all checkpoints in one call, with no
// checkpoint ever reloaded.
#include "algorithms.h"
#include "engine/errors.h"
#include "engine/scheduler.h"
#include "influence/influence.h"

namespace tx {

namespace {

struct TracIn {
  std::vector<Checkpoint> checkpoints;
  GradientSpec spec;
  torch::Tensor labels;
};

TracIn tracin_options(const Context& ctx, const Options& o) {
  TracIn t;
  t.checkpoints = checkpoints_option(o, *ctx.source);
  t.spec = gradient_spec(o, *ctx.source, o.boolean("fast", false));
  t.labels = labels_option(o, "labels", ctx.batch, ctx.source->device());
  return t;
}

Context at_checkpoint(const Context& ctx, const Checkpoint& c) { return with_model(ctx, c.model); }

std::vector<Sketch> sketches_at_checkpoints(const Context& ctx, const TracIn& t, const torch::Tensor& labels) {
  std::vector<Sketch> out;
  for (const auto& c : t.checkpoints) out.push_back(example_gradients(at_checkpoint(ctx, c), *c.model, t.spec, labels));
  return out;
}

}  // namespace

// The test set's per-example gradients at every checkpoint (summed over the
// set with `aggregate`): the sketch that TracInScores takes.
Result tracin_sketch(const Context& ctx, const Options& o) {
  TracIn t = tracin_options(ctx, o);
  bool aggregate = o.boolean("aggregate", false);
  o.reject_unknown("TracInSketch");
  std::vector<Sketch> all = sketches_at_checkpoints(ctx, t, t.labels);
  if (aggregate)
    for (auto& s : all)
      for (auto& l : s) l = l.summed();
  return {encode_sketches(all), {}};
}

// Influence of a chunk of training examples on the sketched test set:
// [nTest, chunk], or the running top k (options k, proponents, offset, best).
Result tracin_scores(const Context& ctx, const Options& o) {
  TracIn t = tracin_options(ctx, o);
  std::vector<Sketch> test = decode_sketches(o.get("sketch"), "sketch");
  if (test.size() != t.checkpoints.size()) fail("sketch: made at ", test.size(), " checkpoints, not these ", t.checkpoints.size());
  torch::Tensor scores = by_slices(ctx, 1, t.labels, [&](const Context& part, const torch::Tensor& labels) {
    torch::Tensor s;
    for (size_t c = 0; c < t.checkpoints.size(); ++c) {
      Sketch train = example_gradients(at_checkpoint(part, t.checkpoints[c]), *t.checkpoints[c].model, t.spec, labels);
      torch::Tensor dot = sketch_dot(test[c], train) * t.checkpoints[c].learning_rate;
      s = s.defined() ? s + dot : dot;
    }
    return s;
  });
  Result r = ranked(scores, o);
  o.reject_unknown("TracInScores");
  return r;
}

// Self-influence of a chunk: sum over checkpoints of the learning rate times
// each example's squared gradient norm.
Result tracin_self_influence(const Context& ctx, const Options& o) {
  TracIn t = tracin_options(ctx, o);
  o.reject_unknown("TracInSelfInfluence");
  torch::Tensor self = by_slices(ctx, 0, t.labels, [&](const Context& part, const torch::Tensor& labels) {
    torch::Tensor s;
    for (const auto& c : t.checkpoints) {
      torch::Tensor n = sketch_norms(example_gradients(at_checkpoint(part, c), *c.model, t.spec, labels)) * c.learning_rate;
      s = s.defined() ? s + n : n;
    }
    return s;
  });
  return {{self}, {}};
}

// TracInCPFastRandProj's embeddings: per checkpoint, sqrt(learning rate) times
// the outer product of the final layer's output gradient and input, each first
// projected by a random Gaussian matrix when their product has more than
// projectionDim entries; dot products of two embeddings are TracInCPFast's
// influence (exactly without projection, in expectation with it). The
// projections are drawn once, from `seed`, as the reference draws them
// (after one 64-bit draw), and returned for later calls.
Result tracin_projected(const Context& ctx, const Options& o) {
  TracIn t = tracin_options(ctx, o);
  if (!t.spec.weight_only) fail("TracInProjected: needs fcLayer");
  const Value& given = o.get("projections");
  int64_t dim = o.integer("projectionDim", 0, 1);
  int64_t seed = o.integer("seed", 0, 0);
  o.reject_unknown("TracInProjected");
  torch::Tensor pj, pa;
  bool draw = given.is_none() && o.has("projectionDim");
  if (!given.is_none()) {
    if (!given.is_list() || given.list->size() != 2 || !(*given.list)[0].is_tensor() || !(*given.list)[1].is_tensor())
      fail("projections: expected [P_output, P_input] from an earlier call");
    pj = (*given.list)[0].tensor, pa = (*given.list)[1].tensor;
  }
  bool drawn = false;
  torch::Tensor e = by_slices(ctx, 0, t.labels, [&](const Context& part, const torch::Tensor& labels) {
    std::vector<torch::Tensor> blocks;
    for (const auto& c : t.checkpoints) {
      Sketch s = example_gradients(at_checkpoint(part, c), *c.model, t.spec, labels);
      torch::Tensor d = s[0].d, a = s[0].a;
      if (draw && !drawn) {
        drawn = true;
        int64_t k = d.size(1), in = a.size(1);
        if (k * in > dim) {
          // The reference's order: the seed, a DataLoader's base-seed draw, then the two matrices.
          at::Generator gen = at::detail::createCPUGenerator(static_cast<uint64_t>(seed));
          torch::empty({}, torch::kLong).random_(gen);
          int64_t root = static_cast<int64_t>(std::sqrt(static_cast<double>(dim)));
          int64_t pk = std::min(root, k), pi = std::min(root, in);
          pj = at::normal(torch::zeros({k, pk}), 1.0 / std::sqrt(static_cast<double>(pk)), gen);
          pa = at::normal(torch::zeros({in, pi}), 1.0 / std::sqrt(static_cast<double>(pi)), gen);
        }
      }
      if (pj.defined()) {
        if (pj.size(0) != d.size(1) || pa.size(0) != a.size(1)) fail("projections: made for another layer's sizes");
        d = d.mm(pj.to(d.device(), d.scalar_type()));
        a = a.mm(pa.to(a.device(), a.scalar_type()));
      }
      int64_t n = d.size(0);
      blocks.push_back((d.unsqueeze(2) * a.unsqueeze(1)).reshape({n, -1}) * std::sqrt(c.learning_rate));
    }
    return torch::cat(blocks, 1);
  });
  if (drawn && pj.defined()) return {{e, pj, pa}, {}};
  return {{e}, {}};
}

// Dot products of embeddings (TracInCPFastRandProj, the influence functions):
// inputs [test rows, chunk rows] -> [nTest, chunk] or the running top k; with
// `norms`, the squared norms of inputs[0]'s rows (self-influence).
Result embedding_scores(const Context& ctx, const Options& o) {
  bool norms = o.boolean("norms", false);
  if (norms) {
    o.reject_unknown("EmbeddingScores");
    return {{ctx.inputs[0].pow(2).sum(1)}, {}};
  }
  if (ctx.inputs.size() != 2) fail("inputs: expected [test embeddings, training embeddings]");
  const torch::Tensor &x = ctx.inputs[0], &y = ctx.inputs[1];
  if (x.dim() != 2 || y.dim() != 2 || x.size(1) != y.size(1))
    fail_shape("inputs: embeddings ", shape_str(x.sizes()), " and ", shape_str(y.sizes()), " do not match");
  Result r = ranked(x.mm(y.to(x.device()).t()), o);
  o.reject_unknown("EmbeddingScores");
  return r;
}

}  // namespace tx
