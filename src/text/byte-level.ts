/**
 * GPT-2's byte-level alphabet: every byte has a printable stand-in character, so byte-level BPE vocabularies
 * are plain strings ("Ġ" is the space byte).
 */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const table: string[] = new Array(256);
  let next = 256;
  for (let b = 0; b < 256; b++) {
    table[b] = String.fromCodePoint(printable.includes(b) ? b : next++);
  }
  return table;
})();

export const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));

const lossy = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });
const strict = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Rust's String::from_utf8_lossy: each maximal invalid subsequence becomes U+FFFD; a leading BOM is kept. */
export function utf8Lossy(bytes: Uint8Array): string {
  return lossy.decode(bytes);
}

/** Rust's String::from_utf8: undefined when the bytes are not valid UTF-8. */
export function utf8Strict(bytes: Uint8Array): string | undefined {
  try {
    return strict.decode(bytes);
  } catch {
    return undefined;
  }
}
