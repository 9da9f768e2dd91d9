/** The benchmark library behind `ollm bench`. */
export {
  appendHistory,
  BENCH_SCHEMA,
  type BenchOptions,
  type BenchResult,
  type ModelSummary,
  runBench,
  summarizeModel,
} from "./bench.js";
export type {
  EngineJob,
  EngineName,
  EngineRun,
  RunMeasurement,
  SessionSpec,
  SessionTurn,
} from "./engines.js";
export { type BandwidthResult, type GemvResult, measureGemv, measureReadBandwidth } from "./kernels.js";
export { type MachineInfo, machineInfo } from "./machine.js";
export {
  LLAMA_1B,
  type LlamaShape,
  llamaParameters,
  type RandomCheckpoint,
  type RandomCheckpointOptions,
  writeRandomLlama,
} from "./random-checkpoint.js";
export { formatBenchTable } from "./table.js";
