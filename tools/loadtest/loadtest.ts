/**
 * Load test of `ollm serve` over loopback (bounded: a fixed number of requests and a time limit).
 *
 *   npm run loadtest -- [--requests 200] [--model test/fixtures/models/tiny-qwen2] [--max-tokens 16] [--json]
 *
 * Phases, each on a fresh server process:
 *   1. capacity — room for every request (concurrency 2, queue 256): every one of N concurrent chat
 *      completions (half streamed) must come back 200 with exactly the reference reply (greedy decoding);
 *   2. overload — a short queue (concurrency 1, queue 16): each request is answered correctly or refused
 *      with 429/503, nothing else;
 *   3. disconnects — half of the streamed clients hang up after the first chunk: the server must cancel
 *      them and end idle (nothing running or waiting).
 * In every phase: zero dropped connections (network errors, streams without [DONE]), and the server's
 * RSS (sampled from /proc) must stay bounded. Prints the figures; exits 1 if a check fails.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const { values } = parseArgs({
  options: {
    requests: { type: "string", default: "200" },
    model: { type: "string", default: join(ROOT, "test/fixtures/models/tiny-qwen2") },
    "max-tokens": { type: "string", default: "16" },
    "time-limit-s": { type: "string", default: "300" },
    "rss-growth-mib": { type: "string", default: "256" },
    json: { type: "boolean", default: false },
  },
});
const REQUESTS = Number(values.requests);
const MODEL = resolve(values.model);
const MAX_TOKENS = Number(values["max-tokens"]);
const RSS_GROWTH_LIMIT = Number(values["rss-growth-mib"]) * 1024 * 1024;
const PROMPTS = ["Hello there", "What is a tensor?", "Write a haiku about rain.", "List three colours."];

const deadline = setTimeout(() => {
  console.error(`load test: over the ${values["time-limit-s"]} s limit, giving up`);
  process.exit(2);
}, Number(values["time-limit-s"]) * 1000);
deadline.unref();

interface Completion {
  choices: { message: { content: string } }[];
}

interface Outcome {
  status: number | "dropped";
  ok: boolean;
  ms: number;
  detail?: string;
}

interface PhaseReport {
  phase: string;
  requests: number;
  answered: number;
  refused: number;
  wrong: number;
  dropped: number;
  cancelled: number;
  other: Record<string, number>;
  p50Ms: number;
  p95Ms: number;
  maxMs: number;
  seconds: number;
  rssBaseMiB: number;
  rssPeakMiB: number;
  rssEndMiB: number;
  idleAtEnd: boolean;
  pass: boolean;
  failures: string[];
}

/** Resident set size of a process, in bytes (Linux /proc; ps elsewhere). */
function rssOf(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {
    // not Linux
  }
  return 0;
}

async function startServer(options: object): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(
    process.execPath,
    ["--import", "./tools/loadtest/register.mjs", "tools/loadtest/server.ts", JSON.stringify(options)],
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  const url = await new Promise<string>((res, rej) => {
    child.stdout?.on("data", (d) => {
      out += d;
      const line = out.split("\n").find((l) => l.startsWith('{"url"'));
      if (line) res(JSON.parse(line).url);
    });
    child.once("exit", (code) => rej(new Error(`server exited early with ${code}`)));
  });
  return { child, url };
}

async function stopServer(child: ChildProcess): Promise<number | null> {
  const exited = once(child, "exit");
  child.kill("SIGTERM");
  const [code] = await exited;
  return code as number | null;
}

function body(prompt: string, stream: boolean): string {
  return JSON.stringify({ messages: [{ role: "user", content: prompt }], max_tokens: MAX_TOKENS, stream });
}

/** Reads a streamed completion; returns its text, or null when it ended without [DONE]. */
async function readStream(response: Response, hangUpAfterFirst: boolean): Promise<string | null> {
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return null;
    buffer += decoder.decode(value, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const data = buffer.slice(buffer.indexOf("data: ") + 6, end);
      buffer = buffer.slice(end + 2);
      if (data === "[DONE]") return text;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(`error event: ${chunk.error.message}`);
      text += chunk.choices[0]?.delta?.content ?? "";
      if (hangUpAfterFirst) {
        await reader.cancel();
        return "";
      }
    }
  }
}

async function oneRequest(
  url: string,
  prompt: string,
  stream: boolean,
  reference: string,
  hangUp: boolean,
): Promise<Outcome> {
  const t0 = performance.now();
  try {
    const response = await fetch(`${url}/v1/chat/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: body(prompt, stream),
    });
    if (response.status !== 200) {
      await response.text();
      return {
        status: response.status,
        ok: response.status === 429 || response.status === 503,
        ms: performance.now() - t0,
      };
    }
    let text: string | null;
    if (stream) text = await readStream(response, hangUp);
    else text = ((await response.json()) as Completion).choices[0].message.content;
    const ms = performance.now() - t0;
    if (hangUp) return { status: 499, ok: true, ms };
    if (text === null) return { status: "dropped", ok: false, ms, detail: "stream ended without [DONE]" };
    return {
      status: 200,
      ok: text === reference,
      ms,
      detail: text === reference ? undefined : `got ${JSON.stringify(text)}`,
    };
  } catch (error) {
    return {
      status: "dropped",
      ok: false,
      ms: performance.now() - t0,
      detail: String((error as Error).cause ?? error),
    };
  }
}

function percentile(values: number[], p: number): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

async function phase(
  name: string,
  server: { concurrency: number; maxQueue: number },
  options: { hangUp: boolean; expectAllAnswered: boolean },
): Promise<PhaseReport> {
  const { child, url } = await startServer({ model: MODEL, ...server });
  const failures: string[] = [];
  try {
    // References (and warm-up): one request per prompt, alone.
    const references: string[] = [];
    for (const prompt of PROMPTS) {
      const r = await fetch(`${url}/v1/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: body(prompt, false),
      });
      references.push(((await r.json()) as Completion).choices[0].message.content);
    }
    const mib = (n: number) => Math.round((n / 1024 / 1024) * 10) / 10;
    const rssBase = rssOf(child.pid!);
    let rssPeak = rssBase;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, rssOf(child.pid!));
    }, 20);

    const t0 = performance.now();
    const outcomes = await Promise.all(
      Array.from({ length: REQUESTS }, (_, i) => {
        const stream = i % 2 === 1;
        // Every other streamed request hangs up after its first chunk when the phase asks for it.
        const hangUp = options.hangUp && i % 4 === 1;
        return oneRequest(url, PROMPTS[i % PROMPTS.length], stream, references[i % PROMPTS.length], hangUp);
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    // After the storm the server must go idle: nothing running, nothing waiting.
    let idle = false;
    for (let i = 0; i < 200 && !idle; i++) {
      const h = (await (await fetch(`${url}/v1/health`)).json()) as { running: number; waiting: number };
      idle = h.running === 0 && h.waiting === 0;
      if (!idle) await new Promise((r) => setTimeout(r, 25));
    }
    clearInterval(sampler);
    const rssEnd = rssOf(child.pid!);
    rssPeak = Math.max(rssPeak, rssEnd);

    const count = (f: (o: Outcome) => boolean) => outcomes.filter(f).length;
    const other: Record<string, number> = {};
    for (const o of outcomes)
      if (![200, 429, 503, 499, "dropped"].includes(o.status))
        other[String(o.status)] = (other[String(o.status)] ?? 0) + 1;
    const report: PhaseReport = {
      phase: name,
      requests: REQUESTS,
      answered: count((o) => o.status === 200),
      refused: count((o) => o.status === 429 || o.status === 503),
      wrong: count((o) => o.status === 200 && !o.ok),
      dropped: count((o) => o.status === "dropped"),
      cancelled: count((o) => o.status === 499),
      other,
      p50Ms: Math.round(
        percentile(
          outcomes.map((o) => o.ms),
          50,
        ),
      ),
      p95Ms: Math.round(
        percentile(
          outcomes.map((o) => o.ms),
          95,
        ),
      ),
      maxMs: Math.round(Math.max(...outcomes.map((o) => o.ms))),
      seconds: Math.round(seconds * 100) / 100,
      rssBaseMiB: mib(rssBase),
      rssPeakMiB: mib(rssPeak),
      rssEndMiB: mib(rssEnd),
      idleAtEnd: idle,
      pass: true,
      failures,
    };
    if (report.wrong)
      failures.push(
        `${report.wrong} wrong replies (${outcomes.find((o) => o.status === 200 && !o.ok)?.detail})`,
      );
    if (report.dropped)
      failures.push(`${report.dropped} dropped (${outcomes.find((o) => o.status === "dropped")?.detail})`);
    if (Object.keys(other).length) failures.push(`unexpected statuses ${JSON.stringify(other)}`);
    if (options.expectAllAnswered && report.answered + report.cancelled !== REQUESTS)
      failures.push(`only ${report.answered + report.cancelled} of ${REQUESTS} answered`);
    if (!idle) failures.push("the server did not go idle");
    if (rssBase && rssPeak - rssBase > RSS_GROWTH_LIMIT)
      failures.push(`RSS grew by ${mib(rssPeak - rssBase)} MiB`);
    return report;
  } finally {
    const code = await stopServer(child);
    if (code !== 0) failures.push(`the server exited with ${code} on SIGTERM`);
  }
}

const reports = [
  await phase("capacity", { concurrency: 2, maxQueue: 256 }, { hangUp: false, expectAllAnswered: true }),
  await phase("overload", { concurrency: 1, maxQueue: 16 }, { hangUp: false, expectAllAnswered: false }),
  await phase("disconnects", { concurrency: 2, maxQueue: 256 }, { hangUp: true, expectAllAnswered: true }),
];
for (const r of reports) r.pass = r.failures.length === 0;

if (values.json) console.log(JSON.stringify(reports, null, 2));
else {
  console.log(
    `load test: ${REQUESTS} concurrent chat completions per phase (half streamed), max_tokens ${MAX_TOKENS}, model ${MODEL}`,
  );
  const columns = [
    "phase",
    "answered",
    "refused",
    "cancelled",
    "wrong",
    "dropped",
    "p50Ms",
    "p95Ms",
    "maxMs",
    "seconds",
    "rssBaseMiB",
    "rssPeakMiB",
    "rssEndMiB",
    "idleAtEnd",
    "pass",
  ] as const;
  const rows = [columns.map(String), ...reports.map((r) => columns.map((c) => String(r[c])))];
  const widths = columns.map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  for (const row of rows) console.log(row.map((cell, i) => cell.padStart(widths[i])).join("  "));
  for (const r of reports) for (const f of r.failures) console.log(`FAIL ${r.phase}: ${f}`);
}
process.exitCode = reports.every((r) => r.pass) ? 0 : 1;
