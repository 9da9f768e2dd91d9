import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect } from "vitest";
import { OllmError, type OllmErrorCode } from "../../src/errors.js";
import { dtypeByteSize, type SafetensorsDType } from "../../src/engine/weights/safetensors.js";

export interface TensorSpec {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

/** Assembles a safetensors file from a raw header (object or text) and data section. */
export function rawSafetensors(
  header: unknown,
  data: Uint8Array = new Uint8Array(0),
  headerLen?: bigint,
): Uint8Array {
  const text = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + text.byteLength + data.byteLength);
  new DataView(out.buffer).setBigUint64(0, headerLen ?? BigInt(text.byteLength), true);
  out.set(text, 8);
  out.set(data, 8 + text.byteLength);
  return out;
}

/** Builds a well-formed safetensors file with the tensors packed back to back. */
export function buildSafetensors(tensors: TensorSpec[], metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = metadata ? { __metadata__: metadata } : {};
  let offset = 0;
  for (const t of tensors) {
    const expected = t.shape.reduce((a, b) => a * b, dtypeByteSize(t.dtype));
    if (expected !== t.data.byteLength) throw new Error(`test bug: ${t.name} data has wrong length`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  const data = new Uint8Array(offset);
  offset = 0;
  for (const t of tensors) {
    data.set(t.data, offset);
    offset += t.data.byteLength;
  }
  return rawSafetensors(header, data);
}

export function bytesOf(view: ArrayBufferView): Uint8Array {
  return new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice();
}

/** A fresh temp dir per call, removed after the current test. */
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});
export async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "ollm-weights-"));
  dirs.push(dir);
  return dir;
}

export async function writeFiles(dir: string, files: Record<string, Uint8Array | string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) await writeFile(join(dir, name), content);
}

/** Awaits `promise` and checks it fails with an OllmError of `code` whose message matches every pattern. */
export async function expectOllmError(
  promise: Promise<unknown>,
  code: OllmErrorCode,
  ...patterns: (string | RegExp)[]
): Promise<OllmError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(OllmError);
  const err = error as OllmError;
  expect(err.code).toBe(code);
  for (const p of patterns) expect(err.message).toMatch(p);
  return err;
}
