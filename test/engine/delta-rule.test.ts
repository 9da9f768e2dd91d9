import { describe, expect, it } from "vitest";
import type { DeltaRuleOptions } from "../../src/engine/backend.js";
import { CpuBackend } from "../../src/engine/backends/cpu/cpu-backend.js";
import type { Tensor } from "../../src/engine/tensor.js";
import { relativeError } from "./oracle.js";

const b = new CpuBackend();

function random(n: number, seed: number, scale = 1, offset = 0): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return ((s / 2 ** 32) * 2 - 1) * scale + offset;
  });
}

const geometry = { numKeyHeads: 2, numValueHeads: 4, keyHeadDim: 8, valueHeadDim: 6 };
const { numKeyHeads: nk, numValueHeads: nv, keyHeadDim: dk, valueHeadDim: dv } = geometry;

/** Random inputs of T rows: q/k/v, log decays g < 0 (some strong), β in (0, 1). */
function inputs(T: number, seed: number) {
  return {
    q: b.fromFloat32(random(T * nk * dk, seed), [T, nk * dk]),
    k: b.fromFloat32(random(T * nk * dk, seed + 1), [T, nk * dk]),
    v: b.fromFloat32(random(T * nv * dv, seed + 2), [T, nv * dv]),
    g: b.fromFloat32(random(T * nv, seed + 3, 0.5, -0.6), [T, nv]),
    beta: b.fromFloat32(random(T * nv, seed + 4, 0.45, 0.5), [T, nv]),
  };
}

type Inputs = ReturnType<typeof inputs>;

function run(x: Inputs, state: Tensor | undefined, mode: DeltaRuleOptions["mode"], chunkSize?: number) {
  return b.gatedDeltaRule(x.q, x.k, x.v, x.g, x.beta, state, { ...geometry, mode, chunkSize });
}

function rows(x: Inputs, start: number, count: number): Inputs {
  return {
    q: b.sliceRows(x.q, start, count),
    k: b.sliceRows(x.k, start, count),
    v: b.sliceRows(x.v, start, count),
    g: b.sliceRows(x.g, start, count),
    beta: b.sliceRows(x.beta, start, count),
  };
}

/** The delta rule by its definition, in f64: S ← e^g S + k βᵀ(v − e^g Sᵀk), o = Sᵀq, q/k l2-normed, q scaled. */
async function reference(x: Inputs, initial: Float32Array) {
  const [q, k, v, g, beta] = await Promise.all([x.q, x.k, x.v, x.g, x.beta].map((t) => t.read()));
  const T = g.length / nv;
  const S = Float64Array.from(initial);
  const out = new Float64Array(T * nv * dv);
  const unit = (a: Float32Array, at: number, scale: number) => {
    const xs = Array.from(a.subarray(at, at + dk));
    const norm = Math.sqrt(xs.reduce((s, u) => s + u * u, 0) + 1e-6);
    return xs.map((u) => (u / norm) * scale);
  };
  for (let t = 0; t < T; t++)
    for (let h = 0; h < nv; h++) {
      const kh = Math.floor(h / (nv / nk));
      const qt = unit(q, (t * nk + kh) * dk, 1 / Math.sqrt(dk));
      const kt = unit(k, (t * nk + kh) * dk, 1);
      const s = S.subarray(h * dk * dv, (h + 1) * dk * dv);
      const decay = Math.exp(g[t * nv + h]);
      for (let i = 0; i < s.length; i++) s[i] *= decay;
      for (let j = 0; j < dv; j++) {
        let mem = 0;
        for (let i = 0; i < dk; i++) mem += s[i * dv + j] * kt[i];
        const delta = (v[(t * nv + h) * dv + j] - mem) * beta[t * nv + h];
        for (let i = 0; i < dk; i++) s[i * dv + j] += kt[i] * delta;
      }
      for (let j = 0; j < dv; j++) {
        let o = 0;
        for (let i = 0; i < dk; i++) o += s[i * dv + j] * qt[i];
        out[(t * nv + h) * dv + j] = o;
      }
    }
  return { out, state: S };
}

describe("gated delta rule", () => {
  const T = 150; // two full chunks of 64 and a partial one
  const x = inputs(T, 1);
  const initial = random(nv * dk * dv, 99, 0.3);
  const init = () => b.fromFloat32(initial.slice(), [nv, dk, dv]);

  it("the recurrent form follows the definition", async () => {
    const ref = await reference(x, initial);
    const got = run(x, init(), "recurrent");
    expect(relativeError(await got.out.read(), ref.out)).toBeLessThan(1e-5);
    expect(relativeError(await got.state.read(), ref.state)).toBeLessThan(1e-5);
  });

  it("the chunked form (prefill) and the recurrent form (decode) agree, outputs and final state", async () => {
    const recurrent = run(x, init(), "recurrent");
    for (const chunkSize of [64, 16, 1]) {
      const chunked = run(x, init(), "chunked", chunkSize);
      expect(relativeError(await chunked.out.read(), await recurrent.out.read())).toBeLessThan(1e-5);
      expect(relativeError(await chunked.state.read(), await recurrent.state.read())).toBeLessThan(1e-5);
    }
  });

  it("carries its state: a prefill in pieces, then token-by-token decode, equals one pass", async () => {
    const whole = await run(x, undefined, "chunked").out.read();
    const first = run(rows(x, 0, 70), undefined, "chunked");
    const second = run(rows(x, 70, 77), first.state, "chunked");
    let state = second.state;
    const decoded: number[] = [];
    for (let t = 147; t < T; t++) {
      const step = run(rows(x, t, 1), state, "recurrent");
      decoded.push(...(await step.out.read()));
      state = step.state;
    }
    const pieces = [...(await first.out.read()), ...(await second.out.read()), ...decoded];
    expect(relativeError(pieces, whole)).toBeLessThan(1e-5);
  });

  it("gates: beta = σ(b), g = −exp(A_log) · softplus(a + dt_bias)", async () => {
    const a = b.fromFloat32(Float32Array.of(0.3, -2, 25, 1), [2, 2]);
    const bb = b.fromFloat32(Float32Array.of(0, 1, -1, 2), [2, 2]);
    const aLog = b.fromFloat32(Float32Array.of(0.5, -1), [2]);
    const dtBias = b.fromFloat32(Float32Array.of(0.1, 0.2), [2]);
    const { g, beta } = b.deltaRuleGates(a, bb, aLog, dtBias);
    const softplus = (u: number) => (u > 20 ? u : Math.log1p(Math.exp(u)));
    const A = [Math.exp(0.5), Math.exp(-1)];
    const wantG = [0.4, -1.8, 25.1, 1.2].map((u, i) => -A[i % 2] * softplus(u));
    const wantBeta = [0, 1, -1, 2].map((u) => 1 / (1 + Math.exp(-u)));
    expect(relativeError(await g.read(), wantG)).toBeLessThan(1e-6);
    expect(relativeError(await beta.read(), wantBeta)).toBeLessThan(1e-6);
  });
});

describe("causal depthwise conv1d", () => {
  const channels = 5;
  const kernel = 4;
  const T = 11;
  const xs = random(T * channels, 5);
  const ws = random(channels * kernel, 6);
  const weight = b.fromFloat32(ws, [channels, 1, kernel]);

  it("is a causal depthwise convolution followed by SiLU", async () => {
    const { y } = b.causalConv1d(b.fromFloat32(xs, [T, channels]), weight, undefined);
    const want = new Float64Array(T * channels);
    for (let t = 0; t < T; t++)
      for (let c = 0; c < channels; c++) {
        let s = 0;
        for (let j = 0; j < kernel; j++) {
          const src = t - (kernel - 1) + j;
          if (src >= 0) s += ws[c * kernel + j] * xs[src * channels + c];
        }
        want[t * channels + c] = s / (1 + Math.exp(-s));
      }
    expect(relativeError(await y.read(), want)).toBeLessThan(1e-6);
  });

  it("continues from its state across chunks and single tokens", async () => {
    const whole = await b.causalConv1d(b.fromFloat32(xs, [T, channels]), weight, undefined).y.read();
    const part = (start: number, count: number) =>
      b.fromFloat32(xs.slice(start * channels, (start + count) * channels), [count, channels]);
    const first = b.causalConv1d(part(0, 2), weight, undefined); // shorter than the kernel
    const second = b.causalConv1d(part(2, 6), weight, first.state);
    let state = second.state;
    const got = [...(await first.y.read()), ...(await second.y.read())];
    for (let t = 8; t < T; t++) {
      const step = b.causalConv1d(part(t, 1), weight, state);
      got.push(...(await step.y.read()));
      state = step.state;
    }
    expect(relativeError(got, whole)).toBeLessThan(1e-7);
  });
});
