import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { OllmError } from "../../src/errors.js";
import { Checkpoint, dtypeByteSize, SafetensorsFile } from "../../src/engine/weights/safetensors.js";
import {
  buildSafetensors,
  bytesOf,
  expectOllmError,
  rawSafetensors,
  tempDir,
  type TensorSpec,
} from "./helpers.js";

function sampleTensors(): TensorSpec[] {
  const bf16 = new Uint16Array([0x3f80, 0xbf80, 0x4000, 0x0000, 0x7f80, 0xffff]); // 1, -1, 2, 0, inf, nan
  const f32 = new Float32Array([Math.PI, -0.5, 1e-30, 65504]);
  const i64 = new BigInt64Array([0n, -1n, 9007199254740993n]);
  return [
    { name: "w.bf16", dtype: "BF16", shape: [2, 3], data: bytesOf(bf16) },
    { name: "w.f32", dtype: "F32", shape: [4], data: bytesOf(f32) },
    { name: "w.i64", dtype: "I64", shape: [3, 1], data: bytesOf(i64) },
    { name: "empty", dtype: "F16", shape: [0, 7], data: new Uint8Array(0) },
    { name: "scalar", dtype: "U8", shape: [], data: new Uint8Array([42]) },
  ];
}

async function writeOne(bytes: Uint8Array, name = "model.safetensors"): Promise<string> {
  const path = join(await tempDir(), name);
  await writeFile(path, bytes);
  return path;
}

describe("dtypeByteSize", () => {
  it("knows every dtype's width", () => {
    expect(dtypeByteSize("BF16")).toBe(2);
    expect(dtypeByteSize("F32")).toBe(4);
    expect(dtypeByteSize("I64")).toBe(8);
    expect(dtypeByteSize("F8_E4M3")).toBe(1);
    expect(dtypeByteSize("BOOL")).toBe(1);
  });
});

describe("SafetensorsFile", () => {
  it("parses a valid file and reads every tensor back byte-exact", async () => {
    const tensors = sampleTensors();
    const path = await writeOne(buildSafetensors(tensors, { format: "pt" }));
    const file = await SafetensorsFile.open(path);
    try {
      expect(file.path).toBe(path);
      expect(file.metadata).toEqual({ format: "pt" });
      expect([...file.tensors.keys()]).toEqual(tensors.map((t) => t.name));
      for (const t of tensors) {
        const info = file.tensors.get(t.name)!;
        expect(info).toMatchObject({ name: t.name, dtype: t.dtype, shape: t.shape, file: path });
        expect(info.byteLength).toBe(t.data.byteLength);
        expect(await file.read(t.name)).toEqual(t.data);
      }
      const i64 = await file.read("w.i64");
      expect(new BigInt64Array(i64.buffer)[2]).toBe(9007199254740993n);
    } finally {
      await file.close();
    }
  });

  it("byteOffset is absolute: 8 + header length + data_offsets[0]", async () => {
    const bytes = buildSafetensors(sampleTensors());
    const headerLen = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    const file = await SafetensorsFile.open(await writeOne(bytes));
    expect(file.tensors.get("w.bf16")!.byteOffset).toBe(8 + headerLen);
    expect(file.tensors.get("w.f32")!.byteOffset).toBe(8 + headerLen + 12);
  });

  it("accepts a header padded with trailing spaces and an absent __metadata__", async () => {
    const header = `${JSON.stringify({ a: { dtype: "U8", shape: [2], data_offsets: [0, 2] } })}    `;
    const file = await SafetensorsFile.open(await writeOne(rawSafetensors(header, new Uint8Array([1, 2]))));
    expect(file.metadata).toEqual({});
    expect(await file.read("a")).toEqual(new Uint8Array([1, 2]));
  });

  it("keeps hostile-looking names such as __proto__ as plain data", async () => {
    const header =
      '{"__metadata__":{"__proto__":"x"},"__proto__":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
    const file = await SafetensorsFile.open(await writeOne(rawSafetensors(header, new Uint8Array([7]))));
    expect(Object.entries(file.metadata)).toEqual([["__proto__", "x"]]);
    expect([...file.tensors.keys()]).toEqual(["__proto__"]);
    expect(await file.read("__proto__")).toEqual(new Uint8Array([7]));
  });

  it("missing file is MODEL_NOT_FOUND", async () => {
    await expectOllmError(
      SafetensorsFile.open(join(await tempDir(), "nope.safetensors")),
      "MODEL_NOT_FOUND",
      "nope",
    );
  });
});

describe("Checkpoint on a single file", () => {
  it("round-trips BF16/F32/I64 data with read and readInto", async () => {
    const dir = await tempDir();
    const tensors = sampleTensors();
    await writeFile(join(dir, "model.safetensors"), buildSafetensors(tensors));
    const ckpt = await Checkpoint.open(dir);
    try {
      expect(ckpt.dir).toBe(dir);
      expect(ckpt.names()).toEqual(tensors.map((t) => t.name));
      expect(ckpt.totalBytes()).toBe(tensors.reduce((n, t) => n + t.data.byteLength, 0));
      expect(ckpt.has("w.f32")).toBe(true);
      expect(ckpt.has("nope")).toBe(false);
      for (const t of tensors) expect(await ckpt.read(t.name)).toEqual(t.data);

      // A reused staging buffer larger than the tensor: only its prefix is written.
      const staging = new Uint8Array(64).fill(0xee);
      await ckpt.readInto("w.f32", staging);
      expect(staging.subarray(0, 16)).toEqual(tensors[1].data);
      expect(staging[16]).toBe(0xee);
      await expectOllmError(ckpt.readInto("w.f32", new Uint8Array(15)), "INVALID_ARGUMENT", "w.f32");

      // Concurrent first reads share one lazily opened handle.
      const all = await Promise.all(tensors.map((t) => ckpt.read(t.name)));
      expect(all).toEqual(tensors.map((t) => t.data));
    } finally {
      await ckpt.close();
    }
    // Reads after close reopen the file.
    expect(await ckpt.read("w.bf16")).toEqual(tensors[0].data);
    await ckpt.close();
  });

  it("info() of an unknown tensor names it", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "model.safetensors"), buildSafetensors(sampleTensors()));
    const ckpt = await Checkpoint.open(dir);
    expect(() => ckpt.info("model.missing.weight")).toThrow(OllmError);
    expect(() => ckpt.info("model.missing.weight")).toThrow(/model\.missing\.weight/);
    await expectOllmError(ckpt.read("model.missing.weight"), "INVALID_CHECKPOINT", "model.missing.weight");
  });

  it("a file truncated after open gives IO_ERROR on read, not garbage", async () => {
    const dir = await tempDir();
    const bytes = buildSafetensors(sampleTensors());
    await writeFile(join(dir, "model.safetensors"), bytes);
    const ckpt = await Checkpoint.open(dir);
    await writeFile(join(dir, "model.safetensors"), bytes.subarray(0, bytes.byteLength - 4));
    await expectOllmError(ckpt.read("scalar"), "IO_ERROR", "model.safetensors");
    await ckpt.close();
  });
});

describe("malformed files are INVALID_CHECKPOINT naming the file (and tensor)", () => {
  const u8 = (begin: number, end: number, shape = [end - begin]) => ({
    dtype: "U8",
    shape,
    data_offsets: [begin, end],
  });
  const cases: { what: string; bytes: () => Uint8Array; message: (string | RegExp)[] }[] = [
    {
      what: "file shorter than 8 bytes",
      bytes: () => new Uint8Array([1, 2, 3]),
      message: ["3 bytes", "too short"],
    },
    { what: "empty file", bytes: () => new Uint8Array(0), message: ["0 bytes"] },
    {
      what: "huge header length",
      bytes: () => rawSafetensors({}, new Uint8Array(0), 1n << 60n),
      message: ["header length 1152921504606846976", "limit"],
    },
    {
      what: "header length just over the 100 MiB bound",
      bytes: () => rawSafetensors({}, new Uint8Array(0), 100n * 1024n * 1024n + 1n),
      message: ["limit"],
    },
    {
      what: "header length past end of file",
      bytes: () => rawSafetensors({}, new Uint8Array(0), 1000n),
      message: ["header length 1000", "past the end"],
    },
    { what: "bad JSON", bytes: () => rawSafetensors('{"a": '), message: ["not valid UTF-8 JSON"] },
    {
      what: "invalid UTF-8",
      bytes: () => {
        const b = rawSafetensors('{"\u00e9":1}');
        b[10] = 0xff; // break the 2-byte sequence of "é"
        return b;
      },
      message: ["UTF-8"],
    },
    { what: "JSON array", bytes: () => rawSafetensors([1, 2]), message: ["not a JSON object"] },
    { what: "JSON null", bytes: () => rawSafetensors("null"), message: ["not a JSON object"] },
    { what: "zero-length header", bytes: () => rawSafetensors(""), message: ["JSON"] },
    {
      what: "unknown dtype",
      bytes: () =>
        rawSafetensors({ w: { dtype: "Q4_K", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      message: ['"w"', "unknown dtype", "Q4_K"],
    },
    {
      what: "missing dtype",
      bytes: () => rawSafetensors({ w: { shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      message: ['"w"', "unknown dtype"],
    },
    {
      what: "dtype that is an Object.prototype key",
      bytes: () =>
        rawSafetensors({ w: { dtype: "toString", shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1)),
      message: ['"w"', "unknown dtype"],
    },
    {
      what: "negative shape",
      bytes: () => rawSafetensors({ w: u8(0, 1, [-1]) }, new Uint8Array(1)),
      message: ['"w"', "shape"],
    },
    {
      what: "non-integer shape",
      bytes: () => rawSafetensors({ w: u8(0, 1, [1.5]) }, new Uint8Array(2)),
      message: ['"w"', "shape"],
    },
    {
      what: "shape not an array",
      bytes: () =>
        rawSafetensors({ w: { dtype: "U8", shape: "1", data_offsets: [0, 1] } }, new Uint8Array(1)),
      message: ['"w"', "shape"],
    },
    {
      what: "shape whose byte size overflows 2^53",
      bytes: () => rawSafetensors({ w: u8(0, 1, [2 ** 30, 2 ** 30, 2 ** 30]) }, new Uint8Array(1)),
      message: ['"w"', "too large"],
    },
    {
      what: "size mismatch",
      bytes: () =>
        rawSafetensors({ w: { dtype: "F32", shape: [2, 2], data_offsets: [0, 12] } }, new Uint8Array(16)),
      message: ['"w"', "needs 16 bytes", "span 12"],
    },
    {
      what: "span past the data section",
      bytes: () => rawSafetensors({ w: u8(0, 8) }, new Uint8Array(4)),
      message: ['"w"', "past the data section"],
    },
    {
      what: "overlapping spans",
      bytes: () => rawSafetensors({ a: u8(0, 6), b: u8(4, 8) }, new Uint8Array(8)),
      message: ['"a"', '"b"', "overlapping"],
    },
    {
      what: "a span nested inside another",
      bytes: () => rawSafetensors({ outer: u8(0, 8), inner: u8(2, 3), next: u8(8, 9) }, new Uint8Array(9)),
      message: ['"outer"', '"inner"', "overlapping"],
    },
    {
      what: "begin > end",
      bytes: () =>
        rawSafetensors({ w: { dtype: "U8", shape: [0], data_offsets: [4, 2] } }, new Uint8Array(4)),
      message: ['"w"', "begin 4 > end 2"],
    },
    {
      what: "data_offsets of the wrong arity",
      bytes: () =>
        rawSafetensors({ w: { dtype: "U8", shape: [1], data_offsets: [0, 1, 2] } }, new Uint8Array(2)),
      message: ['"w"', "data_offsets"],
    },
    {
      what: "negative data_offsets",
      bytes: () =>
        rawSafetensors({ w: { dtype: "U8", shape: [1], data_offsets: [-1, 0] } }, new Uint8Array(2)),
      message: ['"w"', "data_offsets"],
    },
    {
      what: "tensor entry not an object",
      bytes: () => rawSafetensors({ w: [1, 2] }),
      message: ['"w"', "not an object"],
    },
    {
      what: "__metadata__ with a non-string value",
      bytes: () => rawSafetensors({ __metadata__: { format: "pt", step: 3 } }),
      message: ["__metadata__", '"step"'],
    },
    {
      what: "__metadata__ not an object",
      bytes: () => rawSafetensors({ __metadata__: "pt" }),
      message: ["__metadata__"],
    },
  ];

  for (const c of cases) {
    it(c.what, async () => {
      const path = await writeOne(c.bytes(), "broken.safetensors");
      const err = await expectOllmError(SafetensorsFile.open(path), "INVALID_CHECKPOINT", path, ...c.message);
      expect(err.hint).toBeTruthy();
    });
  }

  it("the same checks apply through Checkpoint.open", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "model.safetensors"), rawSafetensors({ w: u8(0, 8) }, new Uint8Array(4)));
    await expectOllmError(Checkpoint.open(dir), "INVALID_CHECKPOINT", "model.safetensors", '"w"');
  });
});
