export { TrainingData } from "./data";
export { LossFn, LossName, Checkpoint, InfluenceInit, InfluenceCallOptions, KMostInfluential, TestData } from "./base";
export { TracInCP, TracInCPInit, TracInCPFast, TracInCPFastRandProj, TracInCPFastRandProjInit, InfluenceOptions, RandProjInfluenceOptions } from "./tracin";
export { NaiveInfluenceFunction, ArnoldiInfluenceFunction, InfluenceFunctionInit, ArnoldiInit, InfluenceFunctionOptions } from "./influence_function";
export { SimilarityInfluence, SimilarityInfluenceInit, SimilarityOptions, SimilarityResult } from "./similarity";
