import { Attribution, AttributionResult, Exact, Inputs } from "../attribution";

export interface NoiseTunnelOptions {
  /** smoothgrad: mean; smoothgrad_sq: mean of squares; vargrad: variance (default smoothgrad). */
  ntType?: "smoothgrad" | "smoothgrad_sq" | "vargrad";
  /** Noisy copies per example (default 5); `ntSamples` is accepted as Captum's name. */
  nSamples?: number;
  ntSamples?: number;
  /** Noisy copies evaluated per call of the wrapped method (default all). */
  ntSamplesBatchSize?: number;
  /** Standard deviation of the Gaussian noise (default 1), or one per input. */
  stdevs?: number | number[];
  /** Draw each copy's baseline at random from the baselines given (default false). */
  drawBaselineFromDistrib?: boolean;
}

// The wrapped method's own options, so that they type-check under NoiseTunnel too.
type OptionsOf<A> = A extends { optionsType?: infer O } ? NonNullable<O> : object;

/** Averages any attribution method over noisy copies of the inputs (SmoothGrad, VarGrad). */
export class NoiseTunnel<A extends Attribution = Attribution> extends Attribution {
  readonly algorithm = "NoiseTunnel";
  constructor(readonly attributionMethod: A) {
    super(attributionMethod.model);
  }
  attribute<I extends Inputs, P extends NoiseTunnelOptions & OptionsOf<A> = never>(
    inputs: I,
    options?: Exact<NoiseTunnelOptions & OptionsOf<A>, P>,
  ): Promise<AttributionResult<I, P>> {
    return this.run(inputs, { ...this.attributionMethod.init, ...(options ?? {}) }, { base: this.attributionMethod.algorithm });
  }
  /** @internal */
  override nativeCall(): { algorithm: string; init: object } {
    return { algorithm: this.algorithm, init: { ...this.attributionMethod.init, base: this.attributionMethod.algorithm } };
  }
}
