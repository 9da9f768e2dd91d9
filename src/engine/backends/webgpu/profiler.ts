/**
 * Per-dispatch GPU times for diagnosis (`WebGpuBackend.startProfile`): every dispatch runs in a compute pass
 * of its own with timestamp writes, so each kernel is timed in its real place in a step (after the previous
 * op's barrier), and the time between dispatches (barriers, launch latency) shows as the span minus the busy
 * time. A pass per dispatch costs host time: this is a measuring mode, not a way to run.
 */
const QUERY_RESOLVE = 0x200;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;
const MAP_READ = 0x1;

export interface KernelTime {
  /** Kernel key and grid, e.g. "gemvb:bf16:… [4096,1,1]". */
  kernel: string;
  count: number;
  ms: number;
}

export interface DispatchProfile {
  dispatches: number;
  /** Σ of the dispatches' own times. */
  busyMs: number;
  /** Σ over submissions of first begin → last end: busy time plus the gaps between dispatches. */
  spanMs: number;
  /** Slowest first. */
  kernels: KernelTime[];
}

export class DispatchProfiler {
  /** Dispatches per submission (two queries each; 4096 queries is WebGPU's largest query set). */
  static readonly CAPACITY = 2048;
  private readonly set: GPUQuerySet;
  private readonly resolved: GPUBuffer;
  private labels: string[] = [];
  private readonly totals = new Map<string, { count: number; ns: number }>();
  private readonly pending: Promise<void>[] = [];
  /** Readbacks recorded in the command buffer being built: mapped once it is submitted. */
  private unsubmitted: { labels: string[]; readback: GPUBuffer }[] = [];
  private busyNs = 0;
  private spanNs = 0;
  private dispatches = 0;

  constructor(private readonly device: GPUDevice) {
    const queries = 2 * DispatchProfiler.CAPACITY;
    this.set = device.createQuerySet({ type: "timestamp", count: queries });
    this.resolved = device.createBuffer({ size: queries * 8, usage: QUERY_RESOLVE | COPY_SRC });
  }

  get full(): boolean {
    return this.labels.length >= DispatchProfiler.CAPACITY;
  }

  /** The timestamp writes of the next dispatch's pass. */
  next(label: string): GPUComputePassTimestampWrites {
    const i = this.labels.length;
    this.labels.push(label);
    return { querySet: this.set, beginningOfPassWriteIndex: 2 * i, endOfPassWriteIndex: 2 * i + 1 };
  }

  /** Records the copy-out of this submission's timestamps (before the encoder is finished; then `submitted`). */
  resolve(encoder: GPUCommandEncoder): void {
    const labels = this.labels;
    if (labels.length === 0) return;
    this.labels = [];
    const bytes = labels.length * 16;
    const readback = this.device.createBuffer({ size: bytes, usage: MAP_READ | COPY_DST });
    encoder.resolveQuerySet(this.set, 0, 2 * labels.length, this.resolved, 0);
    encoder.copyBufferToBuffer(this.resolved, 0, readback, 0, bytes);
    this.unsubmitted.push({ labels, readback });
  }

  /** The command buffer holding the last `resolve` was submitted: read its timestamps back. */
  submitted(): void {
    for (const { labels, readback } of this.unsubmitted)
      this.pending.push(
        readback.mapAsync(MAP_READ).then(
          () => {
            this.add(labels, new BigUint64Array(readback.getMappedRange()));
            readback.unmap();
            readback.destroy();
          },
          () => readback.destroy(),
        ),
      );
    this.unsubmitted = [];
  }

  private add(labels: string[], t: BigUint64Array): void {
    for (let i = 0; i < labels.length; i++) {
      const ns = t[2 * i + 1] > t[2 * i] ? Number(t[2 * i + 1] - t[2 * i]) : 0;
      const total = this.totals.get(labels[i]) ?? { count: 0, ns: 0 };
      total.count++;
      total.ns += ns;
      this.totals.set(labels[i], total);
      this.busyNs += ns;
    }
    const last = t[2 * labels.length - 1];
    if (last > t[0]) this.spanNs += Number(last - t[0]);
    this.dispatches += labels.length;
  }

  /** Everything measured so far (waits for the submitted timestamps). */
  async report(): Promise<DispatchProfile> {
    await Promise.all(this.pending);
    const kernels = [...this.totals.entries()]
      .map(([kernel, { count, ns }]) => ({ kernel, count, ms: ns / 1e6 }))
      .sort((a, b) => b.ms - a.ms);
    return { dispatches: this.dispatches, busyMs: this.busyNs / 1e6, spanMs: this.spanNs / 1e6, kernels };
  }

  destroy(): void {
    this.set.destroy();
    this.resolved.destroy();
  }
}
