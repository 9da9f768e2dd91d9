/** The CLI's rendering of runtime events: notices are warnings on stderr, even with --quiet. */
import { describe, expect, it } from "vitest";
import { ProgressRenderer } from "../../src/cli/progress.js";
import { Ui } from "../../src/cli/ui.js";

function renderer(options: { quiet?: boolean; verbose?: boolean } = {}) {
  const err: string[] = [];
  const out: string[] = [];
  const ui = new Ui({
    stdout: { write: (s) => out.push(s) > 0 },
    stderr: { write: (s) => err.push(s) > 0 },
    env: { NO_COLOR: "1" },
    ...options,
  });
  return { progress: new ProgressRenderer(ui), err, out };
}

describe("ProgressRenderer", () => {
  it("prints a notice as a warning on stderr (also with --quiet), a status only with --verbose", () => {
    for (const quiet of [false, true]) {
      const { progress, err, out } = renderer({ quiet });
      progress.onEvent({ type: "status", message: "Loading tiny-llama…" });
      progress.onEvent({
        type: "notice",
        message: "the WebGPU backend failed to open: no adapter; running on the CPU",
      });
      expect(err.join("")).toBe(
        "warning: the WebGPU backend failed to open: no adapter; running on the CPU\n",
      );
      expect(out).toEqual([]);
      progress.close();
    }
  });
});
