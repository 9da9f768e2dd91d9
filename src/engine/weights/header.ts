import { OllmError } from "../../errors.js";
import { dtypeByteSize, isSafetensorsDType, type SafetensorsDType } from "./dtypes.js";

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute path of the shard. */
  file: string;
  /** Absolute offset in the file (8 + headerLen + data_offsets[0]). */
  byteOffset: number;
  byteLength: number;
}

export interface ParsedHeader {
  metadata: Record<string, string>;
  tensors: Map<string, TensorInfo>;
}

/** Real headers are kilobytes to a few MiB; anything past this is corrupt or hostile. */
export const MAX_HEADER_BYTES = 100 * 1024 * 1024;

const HINT = "The file is corrupt, truncated or not a safetensors file; re-download or re-export it.";

export function invalidFile(file: string, detail: string, cause?: unknown): OllmError {
  return new OllmError("INVALID_CHECKPOINT", `Invalid safetensors file ${file}: ${detail}`, {
    hint: HINT,
    cause,
  });
}

function invalidTensor(file: string, name: string, detail: string): OllmError {
  return invalidFile(file, `tensor ${JSON.stringify(name)} ${detail}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

/**
 * Validates the header JSON of `file` and turns it into tensor infos with absolute offsets.
 * `dataStart` is 8 + headerLen; `dataSize` the bytes after it. Nothing is trusted before it is checked.
 */
export function parseHeader(
  bytes: Uint8Array,
  file: string,
  dataStart: number,
  dataSize: number,
): ParsedHeader {
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (cause) {
    throw invalidFile(file, "header is not valid UTF-8 JSON", cause);
  }
  if (!isPlainObject(json)) throw invalidFile(file, "header is not a JSON object");

  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const spans: { name: string; begin: number; end: number }[] = [];

  for (const [name, entry] of Object.entries(json)) {
    if (name === "__metadata__") {
      if (!isPlainObject(entry)) throw invalidFile(file, "__metadata__ is not an object");
      for (const [key, value] of Object.entries(entry)) {
        if (typeof value !== "string") {
          throw invalidFile(file, `__metadata__ value for ${JSON.stringify(key)} is not a string`);
        }
      }
      // fromEntries defines own properties, so even a "__proto__" key is kept as data.
      metadata = Object.fromEntries(Object.entries(entry)) as Record<string, string>;
      continue;
    }
    if (!isPlainObject(entry)) throw invalidTensor(file, name, "entry is not an object");
    const { dtype, shape, data_offsets: offsets } = entry;

    if (!isSafetensorsDType(dtype)) {
      throw invalidTensor(file, name, `has unknown dtype ${JSON.stringify(dtype) ?? "undefined"}`);
    }
    if (!Array.isArray(shape) || !shape.every(isCount)) {
      throw invalidTensor(file, name, "shape is not an array of non-negative integers");
    }
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
      throw invalidTensor(file, name, "data_offsets is not a pair of non-negative integers");
    }
    const [begin, end] = offsets as [number, number];
    if (begin > end) throw invalidTensor(file, name, `data_offsets begin ${begin} > end ${end}`);

    let byteLength = dtypeByteSize(dtype);
    for (const dim of shape) byteLength *= dim;
    // Past 2^53 the product is no longer exact, so it cannot be compared with the span.
    if (!Number.isSafeInteger(byteLength)) throw invalidTensor(file, name, "shape is too large");
    if (byteLength !== end - begin) {
      throw invalidTensor(
        file,
        name,
        `needs ${byteLength} bytes for ${dtype}[${shape.join(", ")}] but data_offsets span ${end - begin}`,
      );
    }
    if (end > dataSize) {
      throw invalidTensor(file, name, `data_offsets end ${end} is past the data section (${dataSize} bytes)`);
    }

    const info: TensorInfo = { name, dtype, shape, file, byteOffset: dataStart + begin, byteLength };
    Object.freeze(shape);
    tensors.set(name, Object.freeze(info));
    spans.push({ name, begin, end });
  }

  checkNoOverlap(file, spans);
  return { metadata, tensors };
}

function checkNoOverlap(file: string, spans: { name: string; begin: number; end: number }[]): void {
  // Empty tensors occupy no bytes, so they cannot overlap anything.
  const sorted = spans.filter((s) => s.end > s.begin).sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < sorted.length; i++) {
    // Sorted by begin and overlap-free so far, so only the previous span can reach into this one.
    const prev = sorted[i - 1];
    const span = sorted[i];
    if (span.begin < prev.end) {
      throw invalidFile(
        file,
        `tensors ${JSON.stringify(prev.name)} and ${JSON.stringify(span.name)} have overlapping data_offsets`,
      );
    }
  }
}
