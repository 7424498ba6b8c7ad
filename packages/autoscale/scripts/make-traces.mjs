// Writes the shipped load traces to ../traces/ (CSV: seconds, requests per second).
// Deterministic: a fixed-seed PRNG, so running it again gives byte-identical files.
//   node packages/autoscale/scripts/make-traces.mjs
import { writeFileSync } from "node:fs";

const DAY = 86_400;

/** mulberry32: a small seeded PRNG. */
function prng(seed) {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const smooth = (x) => (x <= 0 ? 0 : x >= 1 ? 1 : x * x * (3 - 2 * x));

/**
 * A working day's shape, 0..1: a night trough, a steep morning rise between 07:30 and 09:00,
 * a lunchtime peak, an afternoon plateau and an evening bump, falling off towards midnight.
 */
function dayShape(secondOfDay) {
  const h = secondOfDay / 3600;
  const night = 0.18;
  const morning = smooth((h - 7.5) / 1.5) * 0.62;
  const lunch = Math.exp(-(((h - 12.5) / 1.2) ** 2)) * 0.2;
  const evening = Math.exp(-(((h - 20.5) / 1.5) ** 2)) * 0.15;
  const falloff = smooth((h - 18) / 5.5) * 0.55;
  return night + morning + lunch + evening - falloff * 0.9;
}

/** Diurnal load with day-to-day amplitude drift and correlated noise (AR(1), ~4%). */
function diurnal({ days, step, peak, seed }) {
  const random = prng(seed);
  const gauss = () => {
    const u = Math.max(random(), 1e-12);
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
  };
  const amplitude = Array.from({ length: days + 1 }, () => 0.92 + 0.16 * random());
  let noise = 0;
  const points = [];
  for (let t = 0; t <= days * DAY; t += step) {
    const day = Math.floor(t / DAY);
    noise = 0.8 * noise + 0.6 * 0.04 * gauss();
    const rps = peak * dayShape(t % DAY) * (amplitude[day] ?? 1) * (1 + noise);
    points.push([t, Math.max(0, rps)]);
  }
  return points;
}

function write(name, header, points) {
  const lines = [header, "seconds,rps", ...points.map(([t, rps]) => `${t},${rps.toFixed(1)}`)];
  writeFileSync(new URL(`../traces/${name}.csv`, import.meta.url), `${lines.join("\n")}\n`);
}

// 1. Seven ordinary days at one-minute resolution.
write(
  "diurnal",
  "# seven days of diurnal load (peak ~2000 rps), one point a minute; make-traces.mjs, seed 1",
  diurnal({ days: 7, step: 60, peak: 2000, seed: 1 }),
);

// 2. Four ordinary days, then Black Friday: at 08:00 on day five load rises to ten times the
// usual morning load within ten minutes, holds for two hours, and eases back over three.
{
  const base = diurnal({ days: 5, step: 60, peak: 2000, seed: 2 });
  const start = 4 * DAY + 8 * 3600;
  const points = base.map(([t, rps]) => {
    const since = t - start;
    let factor = 1;
    if (since >= 0 && since < 600) factor = 1 + 9 * smooth(since / 600);
    else if (since >= 600 && since < 600 + 7200) factor = 10;
    else if (since >= 7800) factor = 1 + 9 * (1 - smooth((since - 7800) / 10_800));
    return [t, rps * Math.max(1, factor)];
  });
  write(
    "black-friday",
    "# four diurnal days, then a 10x spike at 08:00 on day five (10 min rise, 2 h hold, 3 h decline); seed 2",
    points,
  );
}

// 3. Four ordinary days at 30 s resolution with flash crowds from day two on: at seeded random
// times, load jumps to 3-6x within one to two minutes and decays over 10-30 minutes.
{
  const random = prng(3);
  const base = diurnal({ days: 4, step: 30, peak: 2000, seed: 3 });
  const crowds = [];
  for (let i = 0; i < 9; i++) {
    crowds.push({
      at: DAY + Math.floor(random() * 3 * DAY),
      rise: 60 + random() * 60,
      height: 3 + 3 * random(),
      decay: 600 + random() * 1200,
    });
  }
  const points = base.map(([t, rps]) => {
    let factor = 1;
    for (const c of crowds) {
      const since = t - c.at;
      if (since < 0) continue;
      const extra =
        since < c.rise
          ? (c.height - 1) * smooth(since / c.rise)
          : (c.height - 1) * Math.exp(-(since - c.rise) / (c.decay / 3));
      factor += extra;
    }
    return [t, rps * factor];
  });
  write(
    "flash-crowds",
    "# four diurnal days, nine flash crowds (3-6x in 1-2 min, 10-30 min decay) from day two; 30 s resolution; seed 3",
    points,
  );
}
