/** Plain-text tables of a bench result for the terminal (no plots, fixed-width columns). */
import type { BenchResult } from "./bench.js";
import type { EngineRun, RunMeasurement } from "./engines.js";

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i])))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...rows.map(line)].join("\n");
}

const fixed = (v: number, digits: number) => (Number.isFinite(v) ? v.toFixed(digits) : "-");
const percent = (v: number) => (Number.isFinite(v) ? `${(v * 100).toFixed(0)}%` : "-");
const gb = (bytes: number) => (bytes / 1e9).toFixed(1);

function bandwidthOf(result: BenchResult, threads: number): number {
  return result.bandwidth.find((b) => b.threads === threads)?.bytesPerSecond ?? Number.NaN;
}

function peerRun(result: BenchResult, run: EngineRun, m: RunMeasurement): RunMeasurement | undefined {
  const peer = result.engines.find((e) => e.engine === "llama.cpp" && e.threads === run.threads);
  return peer?.runs.find((r) => r.promptTokens === m.promptTokens && r.outputTokens === m.outputTokens);
}

/** The result as terminal tables: bandwidth and GEMV, the sweep with ratios, and the session growth. */
export function formatBenchTable(result: BenchResult): string {
  const m = result.machine;
  const out: string[] = [];
  out.push(`ollm bench ${result.timestamp}${result.label ? ` (${result.label})` : ""}`);
  out.push(
    `machine: ${m.cpu}, ${m.cores} cores, ${(m.memoryBytes / 2 ** 30).toFixed(1)} GiB, node ${m.node}, ` +
      `load average ${m.loadAverage.toFixed(2)} before, ${result.loadAverageAfter.toFixed(2)} after`,
  );
  out.push(
    `model: ${result.model.dir}: ${(result.model.parameters / 1e9).toFixed(3)}B parameters ` +
      `(${result.model.dtypes.join(", ")}), ${gb(result.model.decodeBytesPerToken)} GB read per decoded token` +
      (result.gguf ? `; peer: ${result.gguf}` : ""),
  );

  const dtypes = [...new Set(result.gemv.map((g) => g.dtype))];
  out.push("", "Memory bandwidth (streaming read) and WASM GEMV");
  out.push(
    table(
      ["threads", "read GB/s", ...dtypes.flatMap((d) => [`GEMV ${d} GB/s`, "of read"])],
      result.bandwidth.map((b) => [
        String(b.threads),
        gb(b.bytesPerSecond),
        ...dtypes.flatMap((d) => {
          const g = result.gemv.find((x) => x.dtype === d && x.threads === b.threads);
          return g ? [gb(g.bytesPerSecond), percent(g.bytesPerSecond / b.bytesPerSecond)] : ["-", "-"];
        }),
      ]),
    ),
  );

  out.push("", "Prefill and decode (bound: read bandwidth at that thread count / bytes read per token)");
  const rows: string[][] = [];
  for (const run of result.engines) {
    const bound = bandwidthOf(result, run.threads) / result.model.decodeBytesPerToken;
    for (const r of run.runs) {
      const peer = run.engine === "ollm" ? peerRun(result, run, r) : undefined;
      rows.push([
        run.engine,
        String(run.threads),
        `${r.promptTokens}→${r.outputTokens}`,
        fixed(r.ttftMs, 0),
        fixed(r.prefillTokensPerSecond, 1),
        fixed(r.decodeTokensPerSecond, 2),
        fixed(r.itlP50Ms, 1),
        fixed(r.itlP95Ms, 1),
        fixed(bound, 2),
        percent(r.decodeTokensPerSecond / bound),
        peer ? `${fixed(r.decodeTokensPerSecond / peer.decodeTokensPerSecond, 2)}×` : "",
        peer ? `${fixed(r.prefillTokensPerSecond / peer.prefillTokensPerSecond, 2)}×` : "",
        gb(run.peakRssBytes),
      ]);
    }
  }
  out.push(
    table(
      [
        "engine",
        "threads",
        "tokens",
        "TTFT ms",
        "prefill tok/s",
        "decode tok/s",
        "ITL p50 ms",
        "ITL p95 ms",
        "bound tok/s",
        "of bound",
        "decode vs llama.cpp",
        "prefill vs llama.cpp",
        "peak RSS GB",
      ],
      rows,
    ),
  );

  const sessions = result.engines.filter((e) => e.session?.length);
  if (sessions.length) {
    out.push("", "Session growth (one context, turn after turn)");
    const srows: string[][] = [];
    for (const run of sessions)
      for (const t of run.session ?? [])
        srows.push([
          run.engine,
          String(run.threads),
          String(t.turn),
          String(t.contextTokens),
          String(t.promptTokens),
          fixed(t.ttftMs, 0),
          fixed(t.decodeTokensPerSecond, 2),
          fixed(t.itlP50Ms, 1),
        ]);
    out.push(
      table(
        ["engine", "threads", "turn", "context", "new tokens", "TTFT ms", "decode tok/s", "ITL p50 ms"],
        srows,
      ),
    );
  }
  out.push(
    "",
    result.engines
      .map((e) => `${e.engine} t=${e.threads}: ${e.detail}, loaded in ${e.loadSeconds.toFixed(1)} s`)
      .join("\n"),
  );
  return out.join("\n");
}
