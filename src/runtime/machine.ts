import { availableParallelism, freemem, totalmem } from "node:os";

/** What the planner knows about the machine. */
export interface MachineInfo {
  /** Total host memory in bytes. */
  hostMemoryBytes: number;
  /** Host memory free right now, in bytes. */
  availableHostMemoryBytes: number;
  /** CPU threads. */
  cpuCount: number;
  /** GPUs with known memory for planning (none measured yet: the WebGPU backend is used when asked for). */
  gpus: { name: string; memoryBytes: number }[];
}

/** Measures the machine; injected into the client so tests and embedders can plan for another machine. */
export type MachineProbe = () => MachineInfo | Promise<MachineInfo>;

/** The machine this process runs on. */
export const probeMachine: MachineProbe = () => ({
  hostMemoryBytes: totalmem(),
  availableHostMemoryBytes: freemem(),
  cpuCount: availableParallelism(),
  gpus: [],
});
