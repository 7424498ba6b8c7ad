/**
 * The demo's report as one self-contained HTML page: a verdict banner, then a section per
 * capability with its invariant verdicts and the numbers behind them. No scripts, no external
 * resources; every value from the report is escaped.
 */
import type { DemoReport } from "./run-demo.js";

/** Which verdicts belong to which capability, in the order the page shows them. */
export const CAPABILITY_VERDICTS: ReadonlyArray<{
  readonly title: string;
  readonly verdicts: readonly string[];
}> = [
  { title: "Gateway and security", verdicts: ["policyEnforced", "workloadsAuthenticated"] },
  {
    title: "Catalog and inventory (strong state)",
    verdicts: ["noOversell", "stockConserved", "stockRebalanced"],
  },
  { title: "Carts (CRDTs across regions)", verdicts: ["cartsConverged"] },
  {
    title: "Orders (saga, events, projection)",
    verdicts: ["eventsExactlyOnce", "projectionConsistent", "poisonDeadLettered", "sagasSettled"],
  },
  { title: "Payments (ledger)", verdicts: ["ledgerVerified"] },
  { title: "Documents (function on object-store events)", verdicts: ["invoicesRendered"] },
  { title: "Resilience", verdicts: ["noInternalErrors"] },
  { title: "Observability and SLOs", verdicts: ["orderTraced"] },
  { title: "Autoscaling", verdicts: ["autoscaled"] },
];

export function escapeHtml(value: unknown): string {
  return String(value)
    .replaceAll("&", "&amp;")
    .replaceAll("<", "&lt;")
    .replaceAll(">", "&gt;")
    .replaceAll('"', "&quot;")
    .replaceAll("'", "&#39;");
}

const pct = (x: number): string => `${(x * 100).toFixed(2)}%`;

function table(head: readonly string[], rows: ReadonlyArray<readonly unknown[]>): string {
  if (rows.length === 0) return "<p class=muted>none</p>";
  return `<table><thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead><tbody>${rows
    .map((row) => `<tr>${row.map((cell) => `<td>${escapeHtml(cell)}</td>`).join("")}</tr>`)
    .join("")}</tbody></table>`;
}

function facts(entries: ReadonlyArray<readonly [string, unknown]>): string {
  return `<dl>${entries.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${escapeHtml(v)}</dd>`).join("")}</dl>`;
}

/** A step chart of a series (replicas per second), as inline SVG. */
function stepChart(values: readonly number[], label: string): string {
  if (values.length === 0) return "";
  const w = 600;
  const h = 80;
  const max = Math.max(1, ...values);
  const dx = w / values.length;
  let d = "";
  values.forEach((v, i) => {
    const y = h - (v / max) * (h - 10);
    d += `${i === 0 ? "M" : "L"}${(i * dx).toFixed(1)},${y.toFixed(1)} L${((i + 1) * dx).toFixed(1)},${y.toFixed(1)} `;
  });
  return `<figure><svg viewBox="0 0 ${w} ${h}" width="${w}" height="${h}" role="img" aria-label="${escapeHtml(label)}"><path d="${d.trim()}" fill="none" stroke="#2563eb" stroke-width="2"/></svg><figcaption>${escapeHtml(label)} (max ${max})</figcaption></figure>`;
}

function verdictList(report: DemoReport, names: readonly string[]): string {
  const present = names.filter((n) => n in report.verdicts);
  if (present.length === 0) return "<p class=muted>no verdict on this profile</p>";
  return `<ul class=verdicts>${present
    .map((n) => {
      const ok = report.verdicts[n] === true;
      return `<li class=${ok ? "ok" : "bad"}><span>${ok ? "holds" : "FAILED"}</span> ${escapeHtml(n)}</li>`;
    })
    .join("")}</ul>`;
}

function details(report: DemoReport, title: string): string {
  const r = report;
  switch (title) {
    case "Gateway and security": {
      const s = r.security;
      return (
        facts([
          ["record requests", s.requests],
          ["allowed", s.allowed],
          ["denied by policy", s.denied],
          ["outcomes other than intended", s.unexpected],
          [
            "transport",
            s.transport.mode === "mtls"
              ? `mutual TLS, ${s.transport.envelopesVerified} signed calls verified, ${s.transport.envelopesRefused} refused`
              : `in-process (${s.transport.note ?? ""})`,
          ],
        ]) +
        "<h4>Denials by reason</h4>" +
        table(["reason", "denials"], Object.entries(s.deniedByReason)) +
        "<h4>Refused at the gateway</h4>" +
        table(["reason", "requests"], Object.entries(s.unauthenticated))
      );
    }
    case "Catalog and inventory (strong state)":
      return facts([
        ["reservations", r.inventory.reservations],
        ["refused (out of stock)", r.inventory.refusedOutOfStock],
        ["releases", r.inventory.releases],
        ["oversold units", r.inventory.oversold],
        [
          "SKUs per shard group",
          Object.entries(r.inventory.shards)
            .map(([group, n]) => `${group}: ${n}`)
            .join(", "),
        ],
        [
          "shard group added",
          r.inventory.rebalance === null
            ? "none"
            : `${r.inventory.rebalance.group} at ${r.inventory.rebalance.atSecond}s: ${r.inventory.rebalance.slots} slots, ${r.inventory.rebalance.keys} keys, ${r.inventory.rebalance.ms} ms`,
        ],
        [
          "browse calls",
          `${r.calls.total} (${r.calls.throughput}/s, success ${pct(r.calls.successRate)})`,
        ],
        [
          "latency",
          `p50 ${r.calls.latencyMs.p50} ms, p90 ${r.calls.latencyMs.p90} ms, p99 ${r.calls.latencyMs.p99} ms`,
        ],
      ]);
    case "Carts (CRDTs across regions)":
      return facts([
        ["carts", r.carts.carts],
        ["replicas compared", r.carts.replicas],
        [
          "edits",
          Object.entries(r.carts.updates)
            .map(([region, n]) => `${n} in ${region}`)
            .join(", "),
        ],
        [
          "partition",
          r.carts.partition === null
            ? "none"
            : `${r.carts.partition.fromSecond}s to ${r.carts.partition.toSecond}s`,
        ],
        [
          "converged after the heal",
          r.carts.convergedAfterMs === null ? "n/a" : `${r.carts.convergedAfterMs} ms`,
        ],
      ]);
    case "Orders (saga, events, projection)": {
      const e = r.events;
      return facts([
        ["checkouts placed", e.checkouts.placed],
        ["answered", e.checkouts.ok],
        ["orders confirmed / cancelled", `${e.orders.confirmed} / ${e.orders.cancelled}`],
        ["order events published", e.published],
        ["notifications (duplicated)", `${e.notifications} (${e.duplicateEffects})`],
        ["poison events dead-lettered", e.deadLetters],
        ["sales projection rows", e.projectionRows],
        [
          "sagas",
          `${e.sagas.completed} completed, ${e.sagas.compensated} compensated, ${e.sagas.failed} failed, ${e.sagas.unfinished} unfinished`,
        ],
        [
          "consumer handover",
          e.handover === null ? "none" : `${e.handover.node} left at ${e.handover.atSecond}s`,
        ],
      ]);
    }
    case "Payments (ledger)": {
      const l = r.ledger;
      return facts([
        ["entries", l.entries],
        ["transfers", l.transfers],
        ["refused for insufficient funds", l.insufficientFunds],
        ["money conserved", l.conserved ? "yes" : "NO"],
        ["signed tree heads", l.headsSigned],
        ["head", `${l.head.size} entries, root ${l.head.root.slice(0, 16)}…`],
        ["audit", l.audited ? "ok" : `failed at entry ${l.firstTampered ?? "?"}`],
        ["inclusion proofs", `${l.proofs.verified}/${l.proofs.sampled} verified`],
      ]);
    }
    case "Documents (function on object-store events)": {
      const d = r.documents;
      return facts([
        ["confirmed orders", d.orders],
        ["order documents filed", d.documents],
        ["invoices rendered", d.rendered],
        ["still pending", d.pending],
        [
          "checks",
          `${d.check.missingCount} missing, ${d.check.wrongTotals} wrong totals, ${d.check.duplicates} duplicates`,
        ],
        [
          "render latency (document stored to invoice stored)",
          `p50 ${d.renderLatency.p50Ms.toFixed(1)} ms, p99 ${d.renderLatency.p99Ms.toFixed(1)} ms`,
        ],
        [
          "function",
          `${d.function.name}: ${d.function.started} instances started (cold start p50 ${d.function.coldStarts.p50Ms.toFixed(2)} ms), warm hit ratio ${pct(d.function.warmHitRatio)}`,
        ],
        [
          "dead letters",
          `${d.deadLetters.documents} documents, ${d.deadLetters.invoices} invoices`,
        ],
      ]);
    }
    case "Resilience": {
      const res = r.resilience;
      return (
        facts([
          [
            "fault",
            res.fault === null
              ? "none"
              : `${res.fault.service} on ${res.fault.node} failed every call from ${res.fault.fromSecond}s to ${res.fault.toSecond}s (${res.faultHits} calls hit it)`,
          ],
          [
            "success rate during the fault (calls admitted)",
            res.successRateDuringFault === null
              ? "n/a"
              : `${pct(res.successRateDuringFault)} (${res.shedDuringFault ?? 0} more shed for load)`,
          ],
          ["retries", res.retries],
          ["shed", res.shed],
          ["ejections", res.ejections],
          ["errors", JSON.stringify(r.calls.errors)],
        ]) +
        "<h4>Nemeses on node processes</h4>" +
        table(
          ["at (s)", "node", "what"],
          res.nemeses.map((n) => [n.atSecond, n.node, n.action]),
        ) +
        "<h4>Breaker transitions</h4>" +
        table(
          ["at (s)", "target", "state"],
          res.breakerTransitions.map((t) => [t.atSecond, t.target, t.state]),
        )
      );
    }
    case "Observability and SLOs": {
      const o = r.observability;
      return (
        table(
          ["SLO", "objective", "attainment", "calls", "met"],
          o.slos.map((s) => [
            s.name,
            pct(s.objective),
            pct(s.attainment),
            s.total,
            s.met ? "yes" : "MISSED",
          ]),
        ) +
        "<h4>Burn-rate alerts</h4>" +
        table(
          ["at (s)", "node", "SLO", "severity", "state"],
          o.alerts.map((a) => [a.atSecond, a.node, a.slo, a.severity, a.state]),
        ) +
        (o.slowestOrder === null
          ? ""
          : "<h4>Slowest checkout</h4>" +
            facts([
              ["order", o.slowestOrder.orderId ?? "?"],
              ["duration", `${o.slowestOrder.durationMs} ms, ${o.slowestOrder.spans} spans`],
              ["nodes", o.slowestOrder.nodes.join(", ")],
              ["trace", o.slowestOrder.traceId],
            ]) +
            table(
              ["critical path step", "node", "self (ms)"],
              o.slowestOrder.criticalPath.map((s) => [s.name, s.node ?? "", s.selfMs]),
            ))
      );
    }
    case "Autoscaling": {
      const a = r.autoscale;
      return (
        facts([
          [
            "traffic",
            `${a.traffic.baseRps} -> ${a.traffic.spikeRps} checks/s from ${a.traffic.spikeFromSecond}s to ${a.traffic.spikeToSecond}s`,
          ],
          ["policy", a.policy],
          ["replicas", `${a.minReplicas} -> ${a.peakReplicas} (max ${a.maxReplicas})`],
          ["replica start-up", `${a.startupMs} ms`],
          [
            "p99 recovered",
            a.recoveredAfterSeconds === null
              ? "no"
              : `${a.recoveredAfterSeconds}s after the spike began`,
          ],
          ["checks", `${a.checks.ok} ok, ${a.checks.failed} failed`],
        ]) +
        stepChart(
          a.timeline.map((p) => p.replicas),
          "replicas per second",
        ) +
        "<h4>Scaling decisions</h4>" +
        table(
          ["at (s)", "from", "to", "reason"],
          a.decisions.map((d) => [d.atSecond, d.from, d.to, d.reason]),
        )
      );
    }
    default:
      return "";
  }
}

/** Renders the report as a standalone HTML page. */
export function renderHtmlReport(report: DemoReport): string {
  const failed = Object.entries(report.verdicts).filter(([, ok]) => !ok);
  const sections = CAPABILITY_VERDICTS.map(({ title, verdicts }) => {
    const held = verdicts.filter((n) => n in report.verdicts).every((n) => report.verdicts[n]);
    return `<section class=${held ? "ok" : "bad"}><h2>${escapeHtml(title)}</h2>${verdictList(report, verdicts)}${details(report, title)}</section>`;
  }).join("\n");
  return `<!doctype html>
<html lang=en><head><meta charset=utf-8><title>Strata demo report</title>
<meta name=viewport content="width=device-width, initial-scale=1">
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem;color:#111}
h1{margin-bottom:.2rem} .muted{color:#666}
.banner{padding:.8rem 1rem;border-radius:6px;font-weight:600;margin:1rem 0}
.banner.ok{background:#dcfce7;color:#14532d} .banner.bad{background:#fee2e2;color:#7f1d1d}
section{border:1px solid #ddd;border-left:6px solid #16a34a;border-radius:6px;padding:.4rem 1rem 1rem;margin:1rem 0}
section.bad{border-left-color:#dc2626}
ul.verdicts{list-style:none;padding:0} ul.verdicts li span{display:inline-block;width:4.5rem;font-weight:700}
li.ok span{color:#15803d} li.bad span{color:#b91c1c}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem} dt{color:#555} dd{margin:0}
table{border-collapse:collapse;margin:.4rem 0} td,th{border:1px solid #ddd;padding:.2rem .5rem;text-align:left}
</style></head><body>
<h1>Strata demo report</h1>
<p class=muted>${escapeHtml(report.profile.description)} · ${escapeHtml(report.durationSeconds)} s of traffic · Black-Friday spike ${escapeHtml(report.traffic.spike.fromSecond)}s to ${escapeHtml(report.traffic.spike.toSecond)}s</p>
<div class="banner ${failed.length === 0 ? "ok" : "bad"}">${
    failed.length === 0
      ? `Every invariant held (${Object.keys(report.verdicts).length} verdicts).`
      : `${failed.length} invariant(s) failed: ${failed.map(([n]) => escapeHtml(n)).join(", ")}`
  }</div>
<h3>Nodes</h3>
${table(
  ["node", "region", "calls served"],
  report.cluster.nodes.map((n) => [n.id, n.region, n.served]),
)}
${sections}
</body></html>
`;
}
