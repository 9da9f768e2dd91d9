/**
 * Memory bandwidth of the adapter, measured in the bench's own run for the HBM bound: a WGSL copy kernel
 * (16-byte loads and stores, grid-stride) and a read-only kernel (16-byte loads summed, what a GEMV does),
 * each over buffers far larger than L2, plus Dawn's copyBufferToBuffer. A copy counts the bytes read and
 * the bytes written.
 */
import type { GpuContext } from "../../src/engine/backends/webgpu/gpu.js";

export interface Bandwidth {
  bufferBytes: number;
  /** The WGSL copy kernel, read + write bytes per second. */
  copyKernel: number;
  /** The WGSL read kernel, bytes read per second. */
  readKernel: number;
  /** copyBufferToBuffer, read + write bytes per second. */
  copyCommand: number;
}

const STORAGE = 0x80;
const COPY_SRC = 0x04;
const COPY_DST = 0x08;
const WG = 256;

const COPY = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let stride = groups.x * ${WG}u;
  for (var i = id.x; i < arrayLength(&src); i += stride) { dst[i] = src[i]; }
}`;

// The sum is stored only when it equals a value it never takes, so the loads cannot be dropped.
const READ = /* wgsl */ `
@group(0) @binding(0) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<u32>>;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) id: vec3<u32>, @builtin(num_workgroups) groups: vec3<u32>) {
  let stride = groups.x * ${WG}u;
  var acc = vec4<u32>(0u);
  for (var i = id.x; i < arrayLength(&src); i += stride) { acc ^= src[i]; }
  if (acc.x == 0xdeadbeefu && acc.y == 0x12345678u) { dst[id.x] = acc; }
}`;

export async function measureBandwidth(gpu: GpuContext, reps = 20): Promise<Bandwidth> {
  const { device, limits } = gpu;
  const bytes = Math.min(1 << 30, limits.maxStorageBufferBindingSize, limits.maxBufferSize) & ~15;
  const usage = STORAGE | COPY_SRC | COPY_DST;
  const src = device.createBuffer({ size: bytes, usage });
  const dst = device.createBuffer({ size: bytes, usage });
  const groups = Math.min(limits.maxComputeWorkgroupsPerDimension, 8192);
  const time = async (record: (encoder: GPUCommandEncoder) => void): Promise<number> => {
    let best = Number.POSITIVE_INFINITY;
    for (let trial = 0; trial < 3; trial++) {
      const encoder = device.createCommandEncoder();
      for (let i = 0; i < reps; i++) record(encoder);
      await device.queue.onSubmittedWorkDone();
      const t0 = performance.now();
      device.queue.submit([encoder.finish()]);
      await device.queue.onSubmittedWorkDone();
      best = Math.min(best, (performance.now() - t0) / 1000 / reps);
    }
    return best;
  };
  const kernel = (code: string) => {
    const pipeline = device.createComputePipeline({
      layout: "auto",
      compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
    });
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [
        { binding: 0, resource: { buffer: src } },
        { binding: 1, resource: { buffer: dst } },
      ],
    });
    return (encoder: GPUCommandEncoder) => {
      const pass = encoder.beginComputePass();
      pass.setPipeline(pipeline);
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(groups);
      pass.end();
    };
  };
  try {
    const copyKernel = (2 * bytes) / (await time(kernel(COPY)));
    const readKernel = bytes / (await time(kernel(READ)));
    const copyCommand = (2 * bytes) / (await time((e) => e.copyBufferToBuffer(src, 0, dst, 0, bytes)));
    return { bufferBytes: bytes, copyKernel, readKernel, copyCommand };
  } finally {
    src.destroy();
    dst.destroy();
  }
}
