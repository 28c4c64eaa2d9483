// Native objects a caller may free early: Model and Tensor.
import "./errors"; // defines Symbol.dispose where a sandbox lacks it

export abstract class DisposableHandle {
  /** @internal */
  abstract readonly native: { readonly disposed: boolean; dispose(): void };
  /** Whether dispose() was called. */
  get disposed(): boolean {
    return this.native.disposed;
  }
  /**
   * Frees the native memory now rather than at garbage collection. Requests
   * in flight finish; later use fails with code ERR_DISPOSED.
   */
  dispose(): void {
    this.native.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}
