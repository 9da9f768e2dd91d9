/** Builds the markdown table of docs/benchmarks-gpu.md from a device run's JSON files: node table.js DIR */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

const dir = process.argv[2] ?? ".";
const read = (name: string) => {
  const p = join(dir, name);
  if (!existsSync(p)) return undefined;
  try {
    return JSON.parse(readFileSync(p, "utf8"));
  } catch {
    return undefined;
  }
};
const ours = read("ours.json");
const hf = read("hf.json");
const fmt = (v: number | undefined, d = 1) => (v === undefined || !Number.isFinite(v) ? "—" : v.toFixed(d));
const ratio = (a: number | undefined, b: number | undefined) => (a && b ? `${(a / b).toFixed(2)}×` : "—");

const rows: string[] = [];
rows.push(
  "| shape | weights | HBM bound tok/s (copy kernel) | ours decode tok/s | llama.cpp tg128 tok/s | ours / llama.cpp | transformers decode tok/s | ours prefill tok/s | llama.cpp pp tok/s | ours / llama.cpp | transformers prefill tok/s |",
);
rows.push("|---|---|---|---|---|---|---|---|---|---|---|");
for (const [name, file] of [
  ["1B", "m1b"],
  ["8B", "m8b"],
]) {
  const o = ours?.models?.find((m: { dir: string }) => m.dir.endsWith(file));
  const h = hf?.models?.find((m: { dir: string }) => m.dir.endsWith(file));
  const l = read(`llama-${file}.json`) as { n_prompt: number; n_gen: number; avg_ts: number }[] | undefined;
  const tg = l?.find((r) => r.n_gen > 0)?.avg_ts;
  const pp = l?.find((r) => r.n_prompt > 0)?.avg_ts;
  rows.push(
    `| ${name} | ${o ? `${(o.weightBytes / 1e9).toFixed(2)} GB` : "—"} | ${fmt(o?.hbmBoundTokS, 0)} | ${fmt(o?.decodeTokS)} | ${fmt(tg)} | ${ratio(o?.decodeTokS, tg)} | ${fmt(h?.decode_tok_s)} | ${fmt(o?.prefillTokS, 0)} | ${fmt(pp, 0)} | ${ratio(o?.prefillTokS, pp)} | ${fmt(h?.prefill_tok_s, 0)} |`,
  );
}
console.log(rows.join("\n"));
if (ours) {
  console.log("\nDetails (ours):\n");
  for (const m of ours.models ?? []) {
    console.log(
      `- ${m.dir}: load ${fmt(m.loadSeconds)} s (upload ${fmt(m.uploadGBps, 2)} GB/s); decode step by step ${fmt(m.decodeSerialTokS)} tok/s, record ${fmt(m.decodeRecordMsPerToken, 2)} ms/token, submit every ${m.decodeSubmitEvery || "step"} (${fmt(m.submitsPerToken, 1)} submits/token); tok/s by submit interval (step by step; gen: generate()): ${Object.entries(
        m.decodeBySubmitInterval ?? {},
      )
        .map(([k, v]) => `${k} ${fmt(v as number)}`)
        .join(
          ", ",
        )}; GPU ${fmt(m.decodeGpuMsPerToken, 2)} ms/token (one submit per step), ${fmt(m.dispatchesPerToken, 0)} dispatches/token; prefill GPU ${fmt(m.prefillGpuMs, 0)} ms`,
    );
  }
  const b = ours.bandwidth;
  if (b)
    console.log(
      `- memory bandwidth (the HBM bound's): copy kernel ${fmt(b.copyKernel / 1e12, 2)} TB/s (read + write), read kernel ${fmt(b.readKernel / 1e12, 2)} TB/s, copyBufferToBuffer ${fmt(b.copyCommand / 1e12, 2)} TB/s`,
    );
  for (const m of ours.models ?? [])
    if (m.decodeRuns)
      console.log(
        `- ${m.dir}: decode runs ${m.decodeRuns.map((v: number) => fmt(v)).join(", ")} tok/s (the table shows the median)`,
      );
  for (const c of ours.checks ?? []) console.log(`- check: ${JSON.stringify(c)}`);
  for (const e of ours.errors ?? []) console.log(`- error: ${e.split("\n")[0]}`);
}
