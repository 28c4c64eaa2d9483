// LLM attribution: prompts, tokenizers, methods and results.
export { loadTokenizer, Tokenizer } from "./tokenizer";
export {
  TextTemplateInput, TextTemplateInputOptions, TextTokenInput, TextTokenInputOptions, ProductBaselines, TemplateBaselines, InterpretableInput,
} from "./inputs";
export { LLMAttribution, LLMAttributionInit, LLMGradientAttribution, LLMAttributeOptions, LLMAttrTarget, GenArgs } from "./attribution";
export { LLMAttributionResult } from "./result";
