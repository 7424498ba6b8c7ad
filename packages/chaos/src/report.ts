import type { ExperimentReport } from "./runner.js";

const escape = (text: string): string => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const W = 960;
const PAD = { left: 56, right: 16, top: 12, bottom: 28 };

/** x position of a time (ms since start). */
function xOf(t: number, end: number): number {
  return PAD.left + ((W - PAD.left - PAD.right) * t) / Math.max(1, end);
}

function faultBands(report: ExperimentReport, height: number, end: number): string {
  return report.faults
    .map((f, i) => {
      const x1 = xOf(f.start, end);
      const x2 = xOf(f.end ?? report.phases.methodEnd, end);
      const y = PAD.top;
      return `<rect x="${x1.toFixed(1)}" y="${y}" width="${Math.max(2, x2 - x1).toFixed(1)}" height="${height - PAD.top - PAD.bottom}" class="fault f${i % 4}"><title>${escape(f.detail)}${f.error === undefined ? "" : ` (${escape(f.error)})`}</title></rect>`;
    })
    .join("");
}

function axis(height: number, end: number, max: number, unit: string): string {
  const ticks: string[] = [];
  const step = end > 120_000 ? 30_000 : end > 30_000 ? 10_000 : 5_000;
  for (let t = 0; t <= end; t += step) {
    const x = xOf(t, end);
    ticks.push(
      `<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${height - PAD.bottom}" y2="${height - PAD.bottom + 4}" class="tick"/><text x="${x.toFixed(1)}" y="${height - 8}" class="label" text-anchor="middle">${t / 1_000}s</text>`,
    );
  }
  return `${ticks.join("")}<text x="4" y="${PAD.top + 10}" class="label">${escape(max.toFixed(max < 10 ? 1 : 0))} ${escape(unit)}</text><line x1="${PAD.left}" x2="${W - PAD.right}" y1="${height - PAD.bottom}" y2="${height - PAD.bottom}" class="tick"/>`;
}

function throughputChart(report: ExperimentReport): string {
  const height = 220;
  const end = report.phases.end;
  const bucket = report.timeline.length > 1 ? (report.timeline[1]?.t ?? 500) : 500;
  const perSecond = 1_000 / bucket;
  const max = Math.max(1, ...report.timeline.map((p) => (p.ok + p.fail + p.info) * perSecond));
  const inner = height - PAD.top - PAD.bottom;
  const bars = report.timeline
    .map((p) => {
      const x = xOf(p.t, end);
      const w = Math.max(1, xOf(p.t + bucket, end) - x - 0.5);
      let y = height - PAD.bottom;
      return (["ok", "info", "fail"] as const)
        .map((kind) => {
          const h = (p[kind] * perSecond * inner) / max;
          y -= h;
          return h <= 0
            ? ""
            : `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${w.toFixed(1)}" height="${h.toFixed(1)}" class="${kind}"><title>${(p.t / 1_000).toFixed(1)}s: ${p[kind]} ${kind}</title></rect>`;
        })
        .join("");
    })
    .join("");
  return `<svg viewBox="0 0 ${W} ${height}" role="img" aria-label="throughput and errors over time">${faultBands(report, height, end)}${bars}${axis(height, end, max, "ops/s")}</svg>`;
}

function latencyChart(report: ExperimentReport): string {
  const height = 180;
  const end = report.phases.end;
  const max = Math.max(1, ...report.timeline.map((p) => p.p99));
  const inner = height - PAD.top - PAD.bottom;
  const line = (pick: (p: { p50: number; p99: number }) => number, cls: string): string => {
    const points = report.timeline
      .filter((p) => p.ok + p.fail + p.info > 0)
      .map(
        (p) =>
          `${xOf(p.t, end).toFixed(1)},${(height - PAD.bottom - (pick(p) * inner) / max).toFixed(1)}`,
      );
    return points.length === 0 ? "" : `<polyline points="${points.join(" ")}" class="${cls}"/>`;
  };
  return `<svg viewBox="0 0 ${W} ${height}" role="img" aria-label="latency over time">${faultBands(report, height, end)}${line((p) => p.p99, "p99")}${line((p) => p.p50, "p50")}${axis(height, end, max, "ms")}</svg>`;
}

/** A self-contained HTML page: the timeline of faults against throughput, errors and latency, and the verdicts. */
export function renderHtmlReport(report: ExperimentReport): string {
  const verdictRows = report.verdicts
    .map(
      (v) =>
        `<tr class="${v.valid ? "pass" : "failrow"}"><td>${escape(v.workload)}</td><td>${v.valid ? "valid" : "ANOMALY"}</td><td>${v.operations.ok} / ${v.operations.info} / ${v.operations.fail}</td><td>${escape(v.summary)}</td><td>${escape(
          Object.entries(v.errors)
            .sort((a, b) => b[1] - a[1])
            .slice(0, 6)
            .map(([code, n]) => `${code}: ${n}`)
            .join(", "),
        )}</td></tr>`,
    )
    .join("");
  const faultRows = report.faults
    .map(
      (f) =>
        `<tr><td>${(f.start / 1_000).toFixed(1)}s</td><td>${f.end === undefined ? "" : `${(f.end / 1_000).toFixed(1)}s`}</td><td>${escape(f.detail)}</td><td>${escape(f.error ?? "")}</td></tr>`,
    )
    .join("");
  const hypothesisRows = [
    ...report.hypothesis.before.map((h) => ["before", h] as const),
    ...report.hypothesis.after.map((h) => ["after", h] as const),
  ]
    .map(
      ([when, h]) =>
        `<tr class="${h.holds ? "pass" : "failrow"}"><td>${when}</td><td>${escape(h.name)}</td><td>${h.holds ? "holds" : "does not hold"}</td><td>${h.stats.throughput.toFixed(0)} ops/s, ${(h.stats.errorRate * 100).toFixed(1)}% errors, p99 ${h.stats.p99.toFixed(1)} ms</td></tr>`,
    )
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(report.experiment)}: ${escape(report.outcome)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}
.outcome{display:inline-block;padding:2px 10px;border-radius:4px;color:#fff;background:${report.valid ? "#1a7f37" : "#c62828"}}
svg{width:100%;height:auto;background:#fafafa;border:1px solid #eee}
.ok{fill:#4caf50}.info{fill:#ff9800}.fail{fill:#e53935}
.fault{fill-opacity:.15}.f0{fill:#7b1fa2}.f1{fill:#1565c0}.f2{fill:#00838f}.f3{fill:#ef6c00}
.p50{fill:none;stroke:#1565c0;stroke-width:1.5}.p99{fill:none;stroke:#c62828;stroke-width:1.5}
.tick{stroke:#999}.label{font-size:11px;fill:#555}.pass td:nth-child(2),.pass td:nth-child(3){color:#1a7f37}.failrow td{color:#c62828}
</style></head><body>
<h1>${escape(report.experiment)} <span class="outcome">${escape(report.outcome)}</span></h1>
<p>${escape(report.description)}</p>
<p>Started ${escape(report.startedAt)}, seed ${report.seed}. NATS ${escape(report.cluster.servers.join(", "))}; nodes ${escape(report.cluster.nodes.map((n) => `${n.name} (${n.region})`).join(", "))}${report.cluster.breakage === undefined ? "" : `; deliberate bug: <b>${escape(report.cluster.breakage)}</b>`}.${report.aborted === undefined ? "" : ` Aborted at ${(report.aborted.at / 1_000).toFixed(1)}s: ${escape(report.aborted.reason)}.`}</p>
<h2>Checker verdicts</h2>
<table><tr><th>workload</th><th>verdict</th><th>ok / info / fail</th><th>finding</th><th>errors the clients saw</th></tr>${verdictRows}</table>
<h2>Throughput and errors (green ok, orange unknown outcome, red failed; bands are faults)</h2>
${throughputChart(report)}
<h2>Latency (blue p50, red p99)</h2>
${latencyChart(report)}
<h2>Faults</h2>
<table><tr><th>from</th><th>to</th><th>fault</th><th>error</th></tr>${faultRows}</table>
<h2>Steady-state hypothesis</h2>
<table><tr><th></th><th>condition</th><th>result</th><th>measured</th></tr>${hypothesisRows}</table>
<p>Phases: method ${(report.phases.methodStart / 1_000).toFixed(1)}s to ${(report.phases.methodEnd / 1_000).toFixed(1)}s, rolled back by ${(report.phases.rollbackEnd / 1_000).toFixed(1)}s${report.phases.recoveredAt === undefined ? ", not recovered" : `, recovered by ${(report.phases.recoveredAt / 1_000).toFixed(1)}s`}.</p>
</body></html>
`;
}
