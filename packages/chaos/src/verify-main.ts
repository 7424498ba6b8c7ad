/**
 * `npm run verify`: every workload under every nemesis, then the deliberately broken systems,
 * which must each be caught. Exits non-zero on any anomaly, a steady state that did not come
 * back, or a broken system that went unnoticed.
 *
 *   node packages/chaos/dist/verify-main.js [--minutes 10] [--out verify-reports] [--only a,b]
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { BROKEN_SUITE, EXPERIMENTS, VERIFY_SUITE } from "./experiments/index.js";
import { runExperiment, type ExperimentReport } from "./runner.js";

/** Fixed cost of one experiment beyond its method: start, warm-up, recovery, final reads, checks. */
const OVERHEAD_MS = 25_000;

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      minutes: { type: "string", default: "10" },
      out: { type: "string", default: "verify-reports" },
      only: { type: "string" },
      seed: { type: "string", default: "1" },
    },
  });
  const minutes = Number(values.minutes);
  const seed = Number(values.seed);
  if (!(Number.isFinite(minutes) && minutes > 0) || !Number.isSafeInteger(seed)) {
    console.error("verify: --minutes must be a positive number and --seed an integer");
    return 2;
  }
  const only = values.only?.split(",").map((s) => s.trim());
  const suite = [...VERIFY_SUITE, ...BROKEN_SUITE].filter(
    (n) => only === undefined || only.includes(n),
  );
  const unknown = only?.filter((n) => EXPERIMENTS[n] === undefined) ?? [];
  if (unknown.length > 0) {
    console.error(`verify: unknown experiments ${unknown.join(", ")}`);
    return 2;
  }
  const methodMs = suite.reduce((sum, n) => sum + (EXPERIMENTS[n]?.durationMs ?? 0), 0);
  const budget = minutes * 60_000 - OVERHEAD_MS * suite.length;
  const scale = Math.min(10, Math.max(0.5, budget / Math.max(1, methodMs)));
  console.log(
    `verify: ${suite.length} experiments, method times x${scale.toFixed(2)} (about ${minutes} min)`,
  );
  const results: Array<{
    name: string;
    report?: ExperimentReport;
    error?: string;
    expectAnomaly: boolean;
  }> = [];
  for (const name of suite) {
    const experiment = EXPERIMENTS[name];
    if (experiment === undefined) continue;
    const expectAnomaly = (BROKEN_SUITE as readonly string[]).includes(name);
    try {
      const report = await runExperiment(experiment, {
        out: resolve(values.out, name),
        seed,
        timeScale: expectAnomaly ? 1 : scale,
        log: (line) => console.log(line),
      });
      results.push({ name, report, expectAnomaly });
    } catch (error) {
      results.push({
        name,
        error: error instanceof Error ? error.message : String(error),
        expectAnomaly,
      });
    }
  }
  console.log("\nverify summary");
  let bad = 0;
  for (const r of results) {
    const outcome = r.report?.outcome ?? `error: ${r.error ?? "?"}`;
    const good = r.expectAnomaly ? r.report?.outcome === "anomaly" : r.report?.outcome === "passed";
    if (!good) bad++;
    const ops =
      r.report?.verdicts.reduce(
        (s, v) => s + v.operations.ok + v.operations.info + v.operations.fail,
        0,
      ) ?? 0;
    console.log(
      `  ${good ? "ok  " : "FAIL"} ${r.name.padEnd(18)} ${outcome}${r.expectAnomaly ? " (expected: anomaly)" : ""}, ${ops} operations`,
    );
  }
  console.log(
    bad === 0
      ? "verify: every contract held, every broken system was caught"
      : `verify: ${bad} experiments failed`,
  );
  return bad === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error);
    process.exit(2);
  },
);
