/** Validated safetensors reading: one file (`SafetensorsFile`) or a model directory (`Checkpoint`). */
export { Checkpoint } from "./checkpoint.js";
export { dtypeByteSize, type SafetensorsDType } from "./dtypes.js";
export { SafetensorsFile } from "./file.js";
export type { TensorInfo } from "./header.js";
