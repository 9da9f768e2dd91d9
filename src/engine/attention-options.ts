import { OllmError } from "../errors.js";
import type { AttentionOptions } from "./backend.js";

/**
 * Checks the masking options of `Backend.attention` the same way on every backend: a window is ≥ 1 key and a
 * soft cap is positive (the backends would otherwise read 0 differently: no window or every key masked,
 * no cap or a division by zero).
 */
export function checkAttentionOptions(o: Pick<AttentionOptions, "window" | "softcap">): void {
  if (o.window !== undefined && !(Number.isInteger(o.window) && o.window >= 1))
    throw new OllmError("INTERNAL", `attention: window = ${o.window} must be an integer ≥ 1 (or absent)`);
  if (o.softcap !== undefined && !(o.softcap > 0 && Number.isFinite(o.softcap)))
    throw new OllmError(
      "INTERNAL",
      `attention: softcap = ${o.softcap} must be a positive number (or absent)`,
    );
}
