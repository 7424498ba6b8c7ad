import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HoltWinters } from "./holt-winters.js";

const seasonal = (i: number, m: number): number =>
  1000 + 400 * Math.sin((2 * Math.PI * i) / m) + 150 * Math.cos((4 * Math.PI * i) / m);

describe("HoltWinters", () => {
  it("forecasts a pure seasonal series to within 1%", () => {
    const m = 48;
    const model = new HoltWinters({ seasonLength: m, alpha: 0.3, beta: 0.01, gamma: 0.3 });
    for (let i = 0; i < 5 * m; i++) model.observe(seasonal(i, m));
    for (let h = 1; h <= m; h++) {
      const actual = seasonal(5 * m + h - 1, m);
      expect(Math.abs((model.forecast(h) ?? 0) - actual) / actual).toBeLessThan(0.01);
    }
  });

  it("learns a step pattern it did not start with", () => {
    const m = 96;
    const step = (i: number): number => (i % m >= 48 && i % m < 72 ? 800 : 100);
    const model = new HoltWinters({ seasonLength: m, alpha: 0.3, beta: 0.01, gamma: 0.3 });
    for (let i = 0; i < m; i++) model.observe(100);
    for (let i = m; i < 10 * m + 40; i++) model.observe(step(i));
    // From step 40 of the next season, the forecast 8 steps ahead is the plateau.
    expect(model.forecast(9)).toBeGreaterThan(650);
    expect(model.forecast(1)).toBeLessThan(200);
  });

  it("follows a trend under the season", () => {
    const m = 24;
    const model = new HoltWinters({ seasonLength: m, alpha: 0.5, beta: 0.2, gamma: 0.3 });
    const series = (i: number): number => 500 + 2 * i + 100 * Math.sin((2 * Math.PI * i) / m);
    for (let i = 0; i < 20 * m; i++) model.observe(series(i));
    const actual = series(20 * m + 5);
    expect(Math.abs((model.forecast(6) ?? 0) - actual) / actual).toBeLessThan(0.05);
  });

  it("has no forecast before a whole season", () => {
    const model = new HoltWinters({ seasonLength: 4, alpha: 0.3, beta: 0.1, gamma: 0.1 });
    model.observe(1);
    model.observe(2);
    model.observe(3);
    expect(model.ready).toBe(false);
    expect(model.forecast(1)).toBeUndefined();
    model.observe(Number.NaN);
    expect(model.observed).toBe(3);
    model.observe(4);
    expect(model.forecast(1)).toBeCloseTo(1);
  });

  it("forecasts a constant series as that constant", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 30 }),
        fc.double({ min: 0, max: 1e6, noNaN: true }),
        fc.integer({ min: 1, max: 100 }),
        (m, level, h) => {
          const model = new HoltWinters({ seasonLength: m, alpha: 0.4, beta: 0.1, gamma: 0.2 });
          for (let i = 0; i < 3 * m; i++) model.observe(level);
          expect(Math.abs((model.forecast(h) ?? -1) - level)).toBeLessThanOrEqual(
            1e-6 * (1 + level),
          );
        },
      ),
    );
  });
});
