// MinParamPerturbation (captum.robust.MinParamPerturbation): the smallest value
// of one attack parameter (noise level, epsilon, pixels dropped) at which the
// model stops being correct, by a linear scan of the grid argMin, argMin +
// argStep, ... (< argMax) or a binary search over it. The grid arithmetic
// follows the reference's float steps (accumulated additions, Python's floor
// division), so both modes visit the values the reference visits.
import { Tensor } from "../tensor";
import { TorchExplainError } from "../errors";
import type { Inputs } from "../attribution";
import type { ForwardArg, TargetType } from "../types";
import { Attack, callAttack, defaultAttackName, forwardBatch, positiveInteger, preprocess } from "./attack_comparator";
import { ForwardFunc, checkKeys, checkModel, numbers, throwIfAborted } from "./tensor_ops";

/** Whether the model is still right on a (perturbed) batch: true = correct, so the attack failed. */
export type CorrectFn = (modelOutput: Tensor, target: TargetType | undefined, correctFnKwargs: Record<string, unknown>) => boolean | Promise<boolean>;

export interface MinParamPerturbationOptions {
  attack: Attack<any>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** The attack option searched over (`epsilon`, a noise level, ...). */
  argName: string;
  argMin: number;
  /** Excluded from the search. */
  argMax: number;
  argStep: number;
  /** "linear" (default): every grid value in order; "binary": bisection of the grid, for attacks that get stronger as the value grows. */
  mode?: "linear" | "binary";
  /** Attack runs per value (default 1), for random attacks: a value succeeds when any attempt does. */
  numAttempts?: number;
  preprocFn?: (inputs: any) => Inputs | Promise<Inputs>; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Attack the raw inputs, then preprocess, or (default false) attack the preprocessed inputs. */
  applyBeforePreproc?: boolean;
  /** Default: every example's argmax over a 2-d output equals its target. */
  correctFn?: CorrectFn;
}

export interface MinParamEvaluateOptions {
  target?: TargetType;
  additionalForwardArgs?: ForwardArg[];
  /** Perturbed copies of the batch per forward pass (default 1). */
  perturbationsPerEval?: number;
  /** Options for every attack call besides the searched one. */
  attackKwargs?: Record<string, unknown>;
  /** Third argument of correctFn. */
  correctFnKwargs?: Record<string, unknown>;
  signal?: AbortSignal;
  /** Called with (evaluated, total) perturbed copies (total: the whole grid, an upper bound for binary search). */
  onProgress?: (done: number, total: number) => void;
}

const INIT_OPTIONS = ["attack", "argName", "argMin", "argMax", "argStep", "mode", "numAttempts", "preprocFn", "applyBeforePreproc", "correctFn"] as const;
const EVALUATE_OPTIONS = ["target", "additionalForwardArgs", "perturbationsPerEval", "attackKwargs", "correctFnKwargs", "signal", "onProgress"] as const;

/** Python's float floor division a // b (which is not Math.floor(a / b): 1.0 // 0.1 is 9.0). */
export function pyFloorDiv(a: number, b: number): number {
  let mod = a % b;
  let div = (a - mod) / b;
  if (mod !== 0 && b < 0 !== mod < 0) {
    mod += b;
    div -= 1;
  }
  if (div === 0) return 0;
  let floored = Math.floor(div);
  if (div - floored > 0.5) floored += 1;
  return floored;
}

/** math.isclose with its defaults (relative tolerance 1e-9, no absolute one). */
const isClose = (a: number, b: number) => a === b || Math.abs(a - b) <= 1e-9 * Math.max(Math.abs(a), Math.abs(b));

/** The linear grid as the reference builds it: argMin plus argStep added repeatedly while below argMax. */
export function paramGrid(argMin: number, argMax: number, argStep: number): number[] {
  const out: number[] = [];
  for (let v = argMin; v < argMax; v += argStep) out.push(v);
  return out;
}

/** Captum's default correct function: all(argmax(output, dim=1) == target). */
export const defaultCorrectFn: CorrectFn = (out, target) => {
  if (out.shape.length !== 2)
    throw new TorchExplainError(`correctFn: the default needs a 2-d model output [batch, classes], got shape [${out.shape}]; give a correctFn`, "ERR_BAD_OPTION");
  if (target === undefined || target === null) throw new TorchExplainError("target: the default correctFn compares the argmax with target; give one", "ERR_BAD_TARGET");
  const [rows, cols] = out.shape;
  let targets: number[];
  if (typeof target === "number") targets = [target];
  else if (target instanceof Tensor) targets = Array.from(numbers(target));
  else if (Array.isArray(target) && target.every((t) => typeof t === "number")) targets = target as number[];
  else throw new TorchExplainError("target: the default correctFn takes a class index, one per example, or an integer Tensor", "ERR_BAD_TARGET");
  if (targets.length !== 1 && targets.length !== rows)
    throw new TorchExplainError(`target: ${targets.length} targets for ${rows} examples`, "ERR_BAD_TARGET");
  const d = numbers(out);
  for (let r = 0; r < rows; r++) {
    let best = 0;
    for (let c = 1; c < cols; c++) if (d[r * cols + c] > d[r * cols + best]) best = c;
    if (best !== targets[targets.length === 1 ? 0 : r]) return false;
  }
  return true;
};

export class MinParamPerturbation {
  readonly options: Readonly<Required<Omit<MinParamPerturbationOptions, "preprocFn">> & Pick<MinParamPerturbationOptions, "preprocFn">>;
  private readonly attackName: string;

  constructor(
    readonly model: ForwardFunc,
    options: MinParamPerturbationOptions,
  ) {
    checkModel(model, "MinParamPerturbation");
    checkKeys(options, INIT_OPTIONS, "MinParamPerturbation");
    const { attack, argName, argMin, argMax, argStep } = options ?? ({} as MinParamPerturbationOptions);
    if (typeof attack !== "function" && typeof (attack as { perturb?: unknown })?.perturb !== "function")
      throw new TorchExplainError("attack: expected an FGSM/PGD instance (with perturb()) or a function (inputs, kwargs) => Tensor", "ERR_BAD_OPTION");
    if (typeof argName !== "string" || argName === "") throw new TorchExplainError("argName: expected the name of the attack option to search", "ERR_BAD_OPTION");
    for (const [k, v] of Object.entries({ argMin, argMax, argStep }))
      if (typeof v !== "number" || !Number.isFinite(v)) throw new TorchExplainError(`${k}: expected a finite number, got ${String(v)}`, "ERR_BAD_OPTION");
    if (!(argStep > 0)) throw new TorchExplainError(`argStep: expected a positive number, got ${argStep}`, "ERR_BAD_OPTION");
    if (!(argMax > argMin + argStep))
      throw new TorchExplainError(`argMax: must exceed argMin + argStep (${argMin} + ${argStep}), got ${argMax}`, "ERR_BAD_OPTION");
    const mode = options.mode ?? "linear";
    if (mode !== "linear" && mode !== "binary") throw new TorchExplainError(`mode: expected "linear" or "binary", got ${String(mode)}`, "ERR_BAD_OPTION");
    if (options.correctFn !== undefined && typeof options.correctFn !== "function") throw new TorchExplainError("correctFn: expected a function", "ERR_BAD_OPTION");
    if (options.preprocFn !== undefined && typeof options.preprocFn !== "function") throw new TorchExplainError("preprocFn: expected a function", "ERR_BAD_OPTION");
    this.options = {
      attack,
      argName,
      argMin,
      argMax,
      argStep,
      mode,
      numAttempts: positiveInteger(options.numAttempts, "numAttempts", 1),
      preprocFn: options.preprocFn,
      applyBeforePreproc: options.applyBeforePreproc ?? false,
      correctFn: options.correctFn ?? defaultCorrectFn,
    };
    this.attackName = defaultAttackName(attack) ?? "attack";
  }

  /**
   * Resolves to [the attack's output at the smallest value that makes correctFn false, that value],
   * or [null, null] when no value of the range does.
   */
  async evaluate<I = Inputs>(inputs: I, options: MinParamEvaluateOptions = {}): Promise<[I | null, number | null]> {
    checkKeys(options, EVALUATE_OPTIONS, "evaluate");
    const { target, additionalForwardArgs, signal, onProgress } = options;
    const perEval = positiveInteger(options.perturbationsPerEval, "perturbationsPerEval", 1);
    const attackKwargs = options.attackKwargs ?? {};
    if (this.options.argName in attackKwargs)
      throw new TorchExplainError(`attackKwargs: holds '${this.options.argName}', the option being searched; leave it out`, "ERR_BAD_OPTION");
    const correctFnKwargs = options.correctFnKwargs ?? {};
    const { argMin, argMax, argStep, numAttempts, preprocFn, applyBeforePreproc, correctFn } = this.options;
    throwIfAborted(signal);
    const preprocessed = applyBeforePreproc && preprocFn ? undefined : await preprocess(preprocFn, inputs);
    const total = paramGrid(argMin, argMax, argStep).length * numAttempts;
    let done = 0;

    // One attack call: [what the model sees, what the caller gets back].
    const attackAt = async (value: number): Promise<[Inputs, unknown]> => {
      const kwargs = { ...attackKwargs, [this.options.argName]: value };
      if (applyBeforePreproc) {
        const attacked = await callAttack(this.options.attack, this.attackName, inputs, kwargs, signal);
        return [await preprocess(preprocFn, attacked), attacked];
      }
      const attacked = (await callAttack(this.options.attack, this.attackName, preprocessed, kwargs, signal)) as Inputs;
      return [attacked, attacked];
    };
    // The index of the first item on which the model is wrong, or -1.
    const firstIncorrect = async (items: Inputs[]): Promise<number> => {
      let found = -1;
      await forwardBatch(this.model, items, additionalForwardArgs, signal, async (out, i) => {
        if (!(await correctFn(out, target, correctFnKwargs))) {
          found = i;
          return true;
        }
      });
      done += items.length;
      onProgress?.(done, total);
      return found;
    };

    if (this.options.mode === "linear") {
      let batch: { model: Inputs; result: unknown; value: number }[] = [];
      const flush = async () => {
        const hit = await firstIncorrect(batch.map((b) => b.model));
        const found = hit >= 0 ? batch[hit] : undefined;
        batch = [];
        return found;
      };
      for (const value of paramGrid(argMin, argMax, argStep))
        for (let a = 0; a < numAttempts; a++) {
          const [model, result] = await attackAt(value);
          batch.push({ model, result, value });
          if (batch.length === perEval) {
            const found = await flush();
            if (found) return [found.result as I, found.value];
          }
        }
      if (batch.length > 0) {
        const found = await flush();
        if (found) return [found.result as I, found.value];
      }
      return [null, null];
    }

    // Binary search over grid points lo + k*argStep; the reference's loop, step for step.
    let lo = argMin, hi = argMax;
    let best: number | null = null, bestInput: unknown = null;
    while (hi > lo) {
      let midStep = pyFloorDiv(pyFloorDiv(hi - lo, argStep), 2);
      if (midStep === 0 && lo + argStep < hi) midStep = 1;
      const mid = lo + midStep * argStep;
      let success = false;
      let batch: { model: Inputs; result: unknown }[] = [];
      for (let a = 0; a < numAttempts; a++) {
        const [model, result] = await attackAt(mid);
        batch.push({ model, result });
        if (batch.length === perEval || a === numAttempts - 1) {
          const hit = await firstIncorrect(batch.map((b) => b.model));
          if (hit >= 0) {
            success = true;
            hi = mid;
            if (best === null || best > mid) {
              best = mid;
              bestInput = batch[hit].result;
            }
            break;
          }
          batch = [];
        }
      }
      if (isClose(lo, mid)) break;
      if (!success) lo = mid;
    }
    return [bestInput as I | null, best];
  }
}
