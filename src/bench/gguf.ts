/**
 * A minimal GGUF (v3) writer: metadata key/values, tensor infos, then 32-byte aligned tensor data,
 * streamed tensor by tensor. Enough to hand llama.cpp the same random weights our engine reads from
 * safetensors (see random-checkpoint.ts). Format: ggml's docs/gguf.md.
 */
import { type FileHandle, open } from "node:fs/promises";

export const GGUF_ALIGNMENT = 32;

/** ggml tensor types used here. */
export const GGML_TYPE = { F32: 0, F16: 1, BF16: 30 } as const;
export type GgmlType = (typeof GGML_TYPE)[keyof typeof GGML_TYPE];

const VT = { U32: 4, I32: 5, F32: 6, STRING: 8, ARRAY: 9 } as const;

export type GgufValue =
  | { type: "u32"; value: number }
  | { type: "i32"; value: number }
  | { type: "f32"; value: number }
  | { type: "string"; value: string }
  | { type: "string[]"; value: readonly string[] }
  | { type: "i32[]"; value: ArrayLike<number> };

export interface GgufTensor {
  name: string;
  /** Row-major shape as in safetensors ([rows, cols]); GGUF stores it reversed (ne0 = cols). */
  shape: readonly number[];
  type: GgmlType;
  /** Produces the tensor's bytes (exactly numel × element size), possibly in several pieces. */
  data: () => Iterable<Uint8Array>;
}

const ELEMENT_BYTES: Record<GgmlType, number> = { 0: 4, 1: 2, 30: 2 };

class ByteWriter {
  private chunks: Buffer[] = [];
  length = 0;

  private push(b: Buffer): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  u32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.push(b);
  }

  i32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeInt32LE(v);
    this.push(b);
  }

  u64(v: number): void {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.push(b);
  }

  f32(v: number): void {
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
  }

  string(s: string): void {
    const bytes = Buffer.from(s, "utf8");
    this.u64(bytes.length);
    this.push(bytes);
  }

  raw(b: Buffer): void {
    this.push(b);
  }

  toBuffer(): Buffer {
    return Buffer.concat(this.chunks);
  }
}

function writeValue(w: ByteWriter, v: GgufValue): void {
  switch (v.type) {
    case "u32":
      w.u32(VT.U32);
      w.u32(v.value);
      return;
    case "i32":
      w.u32(VT.I32);
      w.i32(v.value);
      return;
    case "f32":
      w.u32(VT.F32);
      w.f32(v.value);
      return;
    case "string":
      w.u32(VT.STRING);
      w.string(v.value);
      return;
    case "string[]":
      w.u32(VT.ARRAY);
      w.u32(VT.STRING);
      w.u64(v.value.length);
      for (const s of v.value) w.string(s);
      return;
    case "i32[]": {
      w.u32(VT.ARRAY);
      w.u32(VT.I32);
      w.u64(v.value.length);
      const b = Buffer.alloc(v.value.length * 4);
      for (let i = 0; i < v.value.length; i++) b.writeInt32LE(v.value[i], i * 4);
      w.raw(b);
      return;
    }
  }
}

function padding(n: number): number {
  return (GGUF_ALIGNMENT - (n % GGUF_ALIGNMENT)) % GGUF_ALIGNMENT;
}

/** Writes a GGUF file: header, metadata, tensor infos, then each tensor's data (aligned). */
export async function writeGguf(
  path: string,
  metadata: ReadonlyMap<string, GgufValue>,
  tensors: readonly GgufTensor[],
): Promise<void> {
  const head = new ByteWriter();
  head.raw(Buffer.from("GGUF", "ascii"));
  head.u32(3);
  head.u64(tensors.length);
  head.u64(metadata.size);
  for (const [key, value] of metadata) {
    head.string(key);
    writeValue(head, value);
  }
  let offset = 0;
  const sizes: number[] = [];
  for (const t of tensors) {
    const numel = t.shape.reduce((a, b) => a * b, 1);
    const bytes = numel * ELEMENT_BYTES[t.type];
    sizes.push(bytes);
    head.string(t.name);
    head.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) head.u64(t.shape[i]);
    head.u32(t.type);
    head.u64(offset);
    offset += bytes + padding(bytes);
  }
  head.raw(Buffer.alloc(padding(head.length)));

  const file: FileHandle = await open(path, "w");
  try {
    await file.write(head.toBuffer());
    for (let i = 0; i < tensors.length; i++) {
      let written = 0;
      for (const piece of tensors[i].data()) {
        await file.write(piece);
        written += piece.byteLength;
      }
      if (written !== sizes[i])
        throw new Error(`GGUF tensor ${tensors[i].name}: wrote ${written} bytes, expected ${sizes[i]}`);
      const pad = padding(written);
      if (pad) await file.write(Buffer.alloc(pad));
    }
  } finally {
    await file.close();
  }
}

/** Header summary of a GGUF file (for tests and sanity checks): metadata keys and tensor infos. */
export async function readGgufHeader(path: string): Promise<{
  version: number;
  metadata: Map<string, unknown>;
  tensors: { name: string; shape: number[]; type: number; offset: number }[];
  dataStart: number;
}> {
  const file = await open(path, "r");
  try {
    const size = (await file.stat()).size;
    const buf = Buffer.alloc(Math.min(size, 64 << 20));
    await file.read(buf, 0, buf.length, 0);
    let p = 0;
    const u32 = () => {
      const v = buf.readUInt32LE(p);
      p += 4;
      return v;
    };
    const u64 = () => {
      const v = Number(buf.readBigUInt64LE(p));
      p += 8;
      return v;
    };
    const str = () => {
      const n = u64();
      const s = buf.toString("utf8", p, p + n);
      p += n;
      return s;
    };
    const value = (type: number): unknown => {
      switch (type) {
        case VT.U32:
          return u32();
        case VT.I32: {
          const v = buf.readInt32LE(p);
          p += 4;
          return v;
        }
        case VT.F32: {
          const v = buf.readFloatLE(p);
          p += 4;
          return v;
        }
        case VT.STRING:
          return str();
        case VT.ARRAY: {
          const et = u32();
          const n = u64();
          return Array.from({ length: n }, () => value(et));
        }
        default:
          throw new Error(`GGUF value type ${type} not supported by this reader`);
      }
    };
    if (buf.toString("ascii", 0, 4) !== "GGUF") throw new Error(`${path} is not a GGUF file`);
    p = 4;
    const version = u32();
    const nTensors = u64();
    const nKv = u64();
    const metadata = new Map<string, unknown>();
    for (let i = 0; i < nKv; i++) {
      const key = str();
      metadata.set(key, value(u32()));
    }
    const tensors = [];
    for (let i = 0; i < nTensors; i++) {
      const name = str();
      const dims = u32();
      const shape = Array.from({ length: dims }, () => u64()).reverse();
      const type = u32();
      tensors.push({ name, shape, type, offset: u64() });
    }
    return { version, metadata, tensors, dataStart: p + padding(p) };
  } finally {
    await file.close();
  }
}
