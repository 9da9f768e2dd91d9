import { readdir, readFile, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { OllmError } from "../../errors.js";
import { SafetensorsFile } from "./file.js";
import { MAX_HEADER_BYTES, type TensorInfo } from "./header.js";
import { fsCall, isFile } from "./io.js";

const SINGLE_FILE = "model.safetensors";
const INDEX_FILE = "model.safetensors.index.json";
/** Bounds the open file descriptors while headers are read. */
const OPEN_CONCURRENCY = 16;

/**
 * A model directory's weights: every tensor name mapped to its shard and byte span. Headers are
 * validated up front; tensor bytes are read on demand with positioned reads.
 */
export class Checkpoint {
  readonly dir: string;
  readonly #tensors: ReadonlyMap<string, TensorInfo>;
  readonly #files: ReadonlyMap<string, SafetensorsFile>;

  private constructor(dir: string, tensors: ReadonlyMap<string, TensorInfo>, files: SafetensorsFile[]) {
    this.dir = dir;
    this.#tensors = tensors;
    this.#files = new Map(files.map((f) => [f.path, f]));
  }

  /** dir with model.safetensors, or model.safetensors.index.json + shards, or (fallback) all *.safetensors files in the dir */
  static async open(dir: string): Promise<Checkpoint> {
    const abs = resolve(dir);
    const stats = await fsCall(abs, "open model directory", stat(abs));
    if (!stats.isDirectory()) throw new OllmError("MODEL_NOT_FOUND", `Model path ${abs} is not a directory`);

    if (await isFile(join(abs, SINGLE_FILE))) return Checkpoint.#fromFiles(abs, [join(abs, SINGLE_FILE)]);
    if (await isFile(join(abs, INDEX_FILE))) return Checkpoint.#fromIndex(abs, join(abs, INDEX_FILE));

    const entries = await fsCall(abs, "list", readdir(abs));
    const candidates = entries.filter((n) => n.endsWith(".safetensors")).sort();
    const paths: string[] = [];
    for (const name of candidates) if (await isFile(join(abs, name))) paths.push(join(abs, name));
    if (paths.length === 0) {
      throw new OllmError("MODEL_NOT_FOUND", `No safetensors weights in ${abs}`, {
        hint: `Expected ${SINGLE_FILE}, ${INDEX_FILE} with its shards, or *.safetensors files.`,
      });
    }
    return Checkpoint.#fromFiles(abs, paths);
  }

  static async #fromFiles(dir: string, paths: string[]): Promise<Checkpoint> {
    const files = await openAll(paths);
    return new Checkpoint(dir, mergeShards(files), files);
  }

  static async #fromIndex(dir: string, indexPath: string): Promise<Checkpoint> {
    const weightMap = await readIndex(indexPath);
    const shardNames = [...new Set(weightMap.values())];
    for (const shard of shardNames) {
      if (!(await isFile(join(dir, shard)))) {
        throw invalidIndex(indexPath, `shard ${JSON.stringify(shard)} is missing`);
      }
    }
    const files = await openAll(shardNames.map((s) => join(dir, s)));
    const all = mergeShards(files);

    // The index is authoritative: expose exactly the tensors it names, each where it says it is.
    const tensors = new Map<string, TensorInfo>();
    for (const [name, shard] of weightMap) {
      const info = all.get(name);
      if (!info || info.file !== join(dir, shard)) {
        throw invalidIndex(
          indexPath,
          `tensor ${JSON.stringify(name)} is not in its shard ${JSON.stringify(shard)}`,
        );
      }
      tensors.set(name, info);
    }
    return new Checkpoint(dir, tensors, files);
  }

  names(): string[] {
    return [...this.#tensors.keys()];
  }

  has(name: string): boolean {
    return this.#tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.#tensors.get(name);
    if (!info) {
      throw new OllmError(
        "INVALID_CHECKPOINT",
        `Checkpoint ${this.dir} has no tensor ${JSON.stringify(name)}`,
        {
          hint: "The weights do not match the model's architecture or config.",
        },
      );
    }
    return info;
  }

  totalBytes(): number {
    let total = 0;
    for (const info of this.#tensors.values()) total += info.byteLength;
    return total;
  }

  /** positioned read of one tensor's bytes (exact byteLength), never reads the whole file; file handles are opened lazily and cached */
  async read(name: string): Promise<Uint8Array> {
    return this.#shard(name).read(name);
  }

  /** read into a caller-provided buffer (for reused staging buffers); `target` may be longer than the tensor */
  async readInto(name: string, target: Uint8Array): Promise<void> {
    return this.#shard(name).readInto(name, target);
  }

  /** Reads bytes [from, from + target.byteLength) of one tensor into `target` (a part of a host buffer). */
  async readRangeInto(name: string, from: number, target: Uint8Array): Promise<void> {
    return this.#shard(name).readRangeInto(name, from, target);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#files.values()].map((f) => f.close()));
  }

  #shard(name: string): SafetensorsFile {
    return this.#files.get(this.info(name).file)!;
  }
}

function invalidIndex(indexPath: string, detail: string): OllmError {
  return new OllmError("INVALID_CHECKPOINT", `Invalid checkpoint index ${indexPath}: ${detail}`, {
    hint: "The index does not match its shards; re-download the model.",
  });
}

/** A shard name must stay inside the model directory: no separators, no "." or "..". */
function isPlainFileName(name: string): boolean {
  return name !== "" && name !== "." && name !== ".." && !/[/\\:\0]/.test(name);
}

async function readIndex(indexPath: string): Promise<Map<string, string>> {
  const size = (await fsCall(indexPath, "stat", stat(indexPath))).size;
  if (size > MAX_HEADER_BYTES) throw invalidIndex(indexPath, `${size} bytes is larger than any real index`);
  const text = await fsCall(indexPath, "read", readFile(indexPath, "utf8"));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw invalidIndex(indexPath, "not valid JSON");
  }
  const weightMap = (json as { weight_map?: unknown } | null)?.weight_map;
  if (typeof weightMap !== "object" || weightMap === null || Array.isArray(weightMap)) {
    throw invalidIndex(indexPath, "weight_map is missing or not an object");
  }
  const entries = Object.entries(weightMap);
  if (entries.length === 0) throw invalidIndex(indexPath, "weight_map names no tensors");
  for (const [name, shard] of entries) {
    if (typeof shard !== "string" || !isPlainFileName(shard)) {
      throw invalidIndex(
        indexPath,
        `tensor ${JSON.stringify(name)} maps to ${JSON.stringify(shard)}, not a file name inside the model directory`,
      );
    }
  }
  return new Map(entries as [string, string][]);
}

/** Every tensor of every shard by name; a name in two shards is ambiguous, so it is an error. */
function mergeShards(files: SafetensorsFile[]): Map<string, TensorInfo> {
  const merged = new Map<string, TensorInfo>();
  for (const file of files) {
    for (const [name, info] of file.tensors) {
      const other = merged.get(name);
      if (other) {
        throw new OllmError(
          "INVALID_CHECKPOINT",
          `Tensor ${JSON.stringify(name)} appears in both ${other.file} and ${info.file}`,
          { hint: "Remove stray or duplicate .safetensors files from the model directory." },
        );
      }
      merged.set(name, info);
    }
  }
  return merged;
}

async function openAll(paths: string[]): Promise<SafetensorsFile[]> {
  const files: SafetensorsFile[] = new Array(paths.length);
  let next = 0;
  const worker = async () => {
    while (next < paths.length) {
      const i = next++;
      files[i] = await SafetensorsFile.open(paths[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(OPEN_CONCURRENCY, paths.length) }, worker));
  return files;
}
