// Option types shared by the algorithms, with Captum's meaning.
import type { Tensor } from "./tensor";

/**
 * Which output each example's attribution explains:
 * - a number: that column of every example's output;
 * - one per example: numbers, or index tuples (`[[i, j], ...]`) for outputs
 *   with several dimensions after the batch; an array of length 1 applies to
 *   every example (so `[[i, j]]` is one tuple for all);
 * - a tensor of integers, one per example (or a single one);
 * - "predicted": each example's highest-scoring class (outputs [batch, classes]).
 * Leave it out only when the model returns one value per example.
 */
export type TargetType = number | number[] | number[][] | Tensor | "predicted" | null;

/** A reference point: a number, a tensor shaped like the input (or its first row), or one per input. */
export type BaselineType = number | Tensor | (number | Tensor)[];

/** Extra arguments of forward() after the inputs: numbers, booleans, strings, tensors, lists. */
export type ForwardArg = number | boolean | string | Tensor | null | ForwardArg[];

/** Options of every request: cancellation, time and memory limits, input checks. */
export interface RequestOptions {
  /** Cancels the request: it rejects with an AbortError (code ERR_ABORTED) within one chunk. */
  signal?: AbortSignal;
  /** Rejects with an AbortError once the request has run this long (counted from the call). */
  timeoutMs?: number;
  /**
   * Bytes an expanded request may use at once (default: half the memory
   * available at the call). Without internalBatchSize, chunks are sized to fit
   * it from a probe pass; a request whose single row does not fit is rejected
   * (code ERR_MEMORY_BUDGET) with the estimate in the message.
   */
  memoryBudget?: number;
  /** Accept NaN or infinite values in inputs and baselines (rejected by default). */
  allowNonFinite?: boolean;
}

export interface ProgressOptions {
  /** Draw a progress bar on stderr when it is a terminal. */
  showProgress?: boolean;
  /**
   * Called with (done, total) as work proceeds, at most every 100 ms and once
   * at the end: perturbations for perturbation methods, rows of the expanded
   * batch (path points or samples times examples) for gradient methods,
   * counted as each chunk of rows finishes. A call may do several passes, each
   * adding to the total as it starts.
   */
  onProgress?: (done: number, total: number) => void;
}

/** What every attribute() call takes besides the algorithm's own options. */
export interface AttributeOptions extends RequestOptions, ProgressOptions {}

export interface TargetOptions extends AttributeOptions {
  target?: TargetType;
  additionalForwardArgs?: ForwardArg[];
}

export interface BatchOptions {
  /**
   * Rows per forward/backward pass of the expanded batch (steps x examples,
   * samples x examples). Bounds peak memory; results do not change.
   */
  internalBatchSize?: number;
  /** Split the expanded batch over model replicas on these devices, one worker thread each. */
  devices?: string[];
}

export interface DeltaOptions {
  /** Also resolve the convergence delta: sum of attributions - (F(input) - F(baseline)), per example. */
  returnConvergenceDelta?: boolean;
}

export type ApproximationMethod =
  | "gausslegendre"
  | "riemann_left"
  | "riemann_right"
  | "riemann_middle"
  | "riemann_trapezoid";
