import { describe, expect, it } from "vitest";
import { logSoftmax, Rng, sampleToken, topEntries, validateSampling } from "../../src/engine/sampling.js";

const logits = Float32Array.from([1.0, 3.0, 2.0, -1.0, 2.5]);

function draw(params: Parameters<typeof sampleToken>[1], n: number, seed = 7): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => sampleToken(logits, params, [], rng).id);
}

describe("sampleToken", () => {
  it("is greedy without temperature, and with topK 1", () => {
    expect(draw({}, 5)).toEqual([1, 1, 1, 1, 1]);
    expect(draw({ temperature: 1.5, topK: 1 }, 5)).toEqual([1, 1, 1, 1, 1]);
  });

  it("is reproducible for a seed and varies across seeds", () => {
    const a = draw({ temperature: 1 }, 50, 42);
    expect(draw({ temperature: 1 }, 50, 42)).toEqual(a);
    expect(draw({ temperature: 1 }, 50, 43)).not.toEqual(a);
  });

  it("follows softmax(logits / T) at temperature T", () => {
    const n = 20000;
    const counts = new Array(logits.length).fill(0);
    for (const id of draw({ temperature: 0.7 }, n)) counts[id]++;
    const expected = logSoftmax(Array.from(logits, (x) => x / 0.7)).map(Math.exp);
    for (let i = 0; i < logits.length; i++) expect(Math.abs(counts[i] / n - expected[i])).toBeLessThan(0.015);
  });

  it("top-k keeps only the k best", () => {
    expect(new Set(draw({ temperature: 5, topK: 2 }, 500))).toEqual(new Set([1, 4]));
  });

  it("top-p keeps the smallest set reaching p", () => {
    // probs ≈ [.07, .50, .18, .01, .30] → top-p 0.6 keeps {1, 4}
    expect(new Set(draw({ temperature: 1, topP: 0.6 }, 500))).toEqual(new Set([1, 4]));
  });

  it("min-p drops tokens below minP × the top probability", () => {
    // p(4)/p(1) = e^-0.5 ≈ .61, p(2)/p(1) ≈ .37
    expect(new Set(draw({ temperature: 1, minP: 0.5 }, 500))).toEqual(new Set([1, 4]));
  });

  it("repetition penalty divides positive and multiplies negative logits of seen ids", () => {
    const rng = new Rng(1);
    // 3.0/4 = .75 < 2.5: id 4 wins once id 1 was seen.
    expect(sampleToken(logits, { repetitionPenalty: 4 }, [1], rng).id).toBe(4);
    // -1 × 3 = -3 < -2: the penalised id 0 loses.
    expect(sampleToken(Float32Array.from([-1, -2]), { repetitionPenalty: 3 }, [0], rng).id).toBe(1);
  });

  it("reports the model's logprobs and the top-N", () => {
    const t = sampleToken(logits, {}, [], new Rng(1), 3);
    const lp = logSoftmax(logits);
    expect(t.logprob).toBeCloseTo(lp[1], 12);
    expect(t.topLogprobs?.map((e) => e.id)).toEqual([1, 4, 2]);
    expect(Array.from(lp).reduce((s, x) => s + Math.exp(x), 0)).toBeCloseTo(1, 12);
  });

  it("rejects invalid parameters", () => {
    expect(() => validateSampling({ temperature: -1 })).toThrow(/temperature/);
    expect(() => validateSampling({ topP: 0 })).toThrow(/topP/);
    expect(() => validateSampling({ topK: 1.5 })).toThrow(/topK/);
    expect(() => validateSampling({ minP: 2 })).toThrow(/minP/);
    expect(() => validateSampling({ repetitionPenalty: 0 })).toThrow(/repetitionPenalty/);
  });
});

describe("topEntries", () => {
  it("returns the largest values best first", () => {
    expect(topEntries([3, 9, 1, 9, 5], 3)).toEqual([
      { id: 1, logprob: 9 },
      { id: 3, logprob: 9 },
      { id: 4, logprob: 5 },
    ]);
  });
});
