import type { FileHandle } from "node:fs/promises";
import { resolve } from "node:path";
import { OllmError } from "../../errors.js";
import { invalidFile, MAX_HEADER_BYTES, parseHeader, type TensorInfo } from "./header.js";
import { fsCall, openFile, readAt } from "./io.js";

/**
 * One .safetensors file: its header is read and validated by `open`; tensor bytes are read on demand
 * through a handle that is opened on the first read and kept until `close`.
 */
export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  #handle: Promise<FileHandle> | undefined;

  private constructor(
    path: string,
    metadata: Record<string, string>,
    tensors: ReadonlyMap<string, TensorInfo>,
  ) {
    this.path = path;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  static async open(path: string): Promise<SafetensorsFile> {
    const file = resolve(path);
    const handle = await openFile(file);
    try {
      const stats = await fsCall(file, "stat", handle.stat());
      if (!stats.isFile()) throw invalidFile(file, "not a regular file");
      const size = stats.size;
      if (size < 8) {
        throw invalidFile(file, `only ${size} bytes long, too short for the 8-byte header length`);
      }

      const prefix = new Uint8Array(8);
      await readAt(handle, prefix, 0, file);
      const declared = new DataView(prefix.buffer).getBigUint64(0, true);
      if (declared > BigInt(MAX_HEADER_BYTES)) {
        throw invalidFile(file, `header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
      }
      const headerLen = Number(declared);
      if (8 + headerLen > size) {
        throw invalidFile(file, `header length ${headerLen} runs past the end of the file (${size} bytes)`);
      }

      const header = new Uint8Array(headerLen);
      await readAt(handle, header, 8, file);
      const { metadata, tensors } = parseHeader(header, file, 8 + headerLen, size - 8 - headerLen);
      return new SafetensorsFile(file, metadata, tensors);
    } finally {
      // Headers are parsed once; data reads reopen lazily so a large checkpoint does not hold every fd.
      await handle.close().catch(() => undefined);
    }
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (!info) throw invalidFile(this.path, `no tensor named ${JSON.stringify(name)}`);
    return info;
  }

  async read(name: string): Promise<Uint8Array> {
    const target = new Uint8Array(this.info(name).byteLength);
    await this.readInto(name, target);
    return target;
  }

  /** Reads the tensor's bytes into the start of `target`, which may be larger (a reused staging buffer). */
  async readInto(name: string, target: Uint8Array): Promise<void> {
    const info = this.info(name);
    if (target.byteLength < info.byteLength) {
      throw new OllmError(
        "INVALID_ARGUMENT",
        `Buffer of ${target.byteLength} bytes is too small for tensor ${JSON.stringify(name)} (${info.byteLength} bytes)`,
      );
    }
    if (info.byteLength === 0) return;
    const view = target.subarray(0, info.byteLength);
    await readAt(await this.#getHandle(), view, info.byteOffset, this.path);
  }

  /** Reads bytes [from, from + target.byteLength) of the tensor into `target`. */
  async readRangeInto(name: string, from: number, target: Uint8Array): Promise<void> {
    const info = this.info(name);
    if (from < 0 || from + target.byteLength > info.byteLength) {
      throw new OllmError(
        "INVALID_ARGUMENT",
        `Bytes [${from}, ${from + target.byteLength}) are outside tensor ${JSON.stringify(name)} (${info.byteLength} bytes)`,
      );
    }
    if (target.byteLength === 0) return;
    await readAt(await this.#getHandle(), target, info.byteOffset + from, this.path);
  }

  /** Closes the cached handle, if any; a later read opens it again. */
  async close(): Promise<void> {
    const pending = this.#handle;
    this.#handle = undefined;
    const handle = await pending?.catch(() => undefined);
    if (handle) await fsCall(this.path, "close", handle.close());
  }

  #getHandle(): Promise<FileHandle> {
    if (!this.#handle) {
      // Cache the promise, not the handle, so concurrent first reads share one open.
      const opening = openFile(this.path);
      this.#handle = opening;
      opening.catch(() => {
        if (this.#handle === opening) this.#handle = undefined;
      });
    }
    return this.#handle;
  }
}
