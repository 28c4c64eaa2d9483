// Every failure the library reports is a TorchExplainError with a stable
// `code`, so that callers can branch on the kind rather than the wording.

/** The kinds of failure, as `error.code`. */
export type ErrorCode =
  | "ERR_BAD_OPTION" // an argument or option has a wrong value or type, or is unknown: the message names it and what was expected
  | "ERR_BAD_SHAPE" // a tensor's shape does not fit the inputs or the model (baselines, masks, batch sizes, an empty batch)
  | "ERR_BAD_TARGET" // the target (or a neuronSelector) does not select one output value per example
  | "ERR_ABORTED" // cancelled by an AbortSignal, timeoutMs, or the environment shutting down
  | "ERR_MEMORY_BUDGET" // the request does not fit memoryBudget: the message gives the estimate
  | "ERR_MODEL_LOAD" // the file is not a (sound) TorchScript model
  | "ERR_MODEL_NEWER_PYTORCH" // a TorchScript file saved by a newer PyTorch than the LibTorch built against: it uses ops or a format this one lacks
  | "ERR_MODEL_FORWARD" // the model's forward() raised
  | "ERR_DISPOSED" // a disposed Model or Tensor was used
  | "ERR_NATIVE"; // anything else from the native core

const BAD_INPUT: ReadonlySet<ErrorCode> = new Set(["ERR_BAD_OPTION", "ERR_BAD_SHAPE", "ERR_BAD_TARGET"]);

/**
 * The argument a message names: by convention the text before its first ':'
 * ("baselines[0]: shape ..."); for an unknown option, the option
 * ("IntegratedGradients: unknown option nStep ...").
 */
function argumentOf(message: string): string | undefined {
  const unknown = /^[^:]+: unknown options? ([^\s,(]+)/.exec(message);
  if (unknown) return unknown[1];
  const i = message.indexOf(":");
  return i > 0 ? message.slice(0, i) : undefined;
}

export class TorchExplainError extends Error {
  readonly code: ErrorCode;
  /** For bad input (ERR_BAD_*): the argument or option at fault, as the message names it ("baselines[0]", "nSteps"). */
  readonly argument?: string;
  constructor(message: string, code: ErrorCode, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    if (BAD_INPUT.has(code)) this.argument = argumentOf(message);
    // Cancellation follows the platform's convention (fetch, timers/promises).
    this.name = code === "ERR_ABORTED" ? "AbortError" : "TorchExplainError";
  }
}

/**
 * The native error as a TorchExplainError carrying the caller's stack
 * (native rejections have none of their own).
 */
export function fromNative(e: unknown, callerStack?: string): TorchExplainError {
  if (e instanceof TorchExplainError) return e;
  const err = e as { message?: string; code?: string };
  const code = (err?.code ?? "ERR_NATIVE") as ErrorCode;
  const out = new TorchExplainError(String(err?.message ?? e), code, { cause: e });
  if (callerStack) out.stack = `${out.name}: ${out.message}\n${callerStack.split("\n").slice(1).join("\n")}`;
  return out;
}

export function abortError(reason: unknown): TorchExplainError {
  const why = reason instanceof Error ? reason.message : reason === undefined ? "the caller aborted the request" : String(reason);
  return new TorchExplainError(`aborted: ${why}`, "ERR_ABORTED", { cause: reason });
}

/** Runs a synchronous native call, turning its error into a TorchExplainError. */
export function guard<T>(call: () => T): T {
  try {
    return call();
  } catch (e) {
    throw fromNative(e, new Error().stack);
  }
}

// Node 20 defines Symbol.dispose; some sandboxes (jest's vm contexts) do not:
// use the same registered symbol Node uses, so `using` works everywhere.
(Symbol as { dispose?: symbol }).dispose ??= Symbol.for("nodejs.dispose");
