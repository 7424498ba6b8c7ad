import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { connect } from "@nats-io/transport-node";
import { openNatsLog } from "@strata/nats";
import { checkSet } from "@strata/verify";
import { CONSUMED_FILE, setService } from "../services.js";
import {
  CALL,
  clientLoops,
  createTracker,
  definitelyNot,
  pauseFor,
  type Workload,
  type WorkloadContext,
  type WorkloadVerdict,
} from "./workload.js";

/** Options of {@link setWorkload}. */
export interface SetWorkloadOptions {
  /** How long the final read waits for the consumers to catch up (ms); default 60 000 (or 25 s without progress). */
  readonly drainMs?: number;
  /** Count an element consumed twice as an anomaly (default false: delivery is at least once). */
  readonly exactlyOnce?: boolean;
}

/** Every element the nodes' consumer group recorded, duplicates included. */
async function consumed(ctx: WorkloadContext): Promise<number[]> {
  const all: number[] = [];
  for (const node of ctx.cluster.nodes) {
    const text = await readFile(join(node.dir, CONSUMED_FILE), "utf8").catch(() => "");
    for (const line of text.split("\n")) if (line !== "") all.push(Number(line));
  }
  return all;
}

/**
 * For acknowledged elements missing from every consumer's record: which of them the log holds
 * (delivered to no consumer) and which it does not (lost by the log). Read straight from the
 * servers, past the proxies.
 */
async function whereAreThey(
  ctx: WorkloadContext,
  missing: readonly number[],
): Promise<{ inLog: number[]; notInLog: number[] } | undefined> {
  const nc = await connect({ servers: [...ctx.cluster.nats.urls], timeout: 5_000 }).catch(
    () => undefined,
  );
  if (nc === undefined) return undefined;
  try {
    const log = await openNatsLog({
      connection: nc,
      streamPrefix: "CHAOSSET_",
      subjectPrefix: "chaosset",
      replicas: ctx.cluster.replicas,
    });
    const stream = `ev-${setService.name}`;
    const info = await log.streamInfo(stream);
    const ids = new Set<string>();
    for (let fromSeq = 1; fromSeq <= info.lastSeq;) {
      const page = await log.read(stream, { fromSeq, limit: 1_000 });
      if (page.length === 0) break;
      for (const record of page) ids.add(record.id);
      fromSeq = (page[page.length - 1]?.seq ?? info.lastSeq) + 1;
    }
    const inLog = missing.filter((e) => ids.has(`element-${e}`));
    return { inLog, notInLog: missing.filter((e) => !ids.has(`element-${e}`)) };
  } catch {
    return undefined;
  } finally {
    await nc.close();
  }
}

/**
 * Events as a set: clients publish unique elements (a publish that errs is `info`: it may be
 * stored); a consumer group on every node records each element it consumes on disk before it
 * acknowledges. After the rollback the final read is everything consumed. Checked: no
 * acknowledged publish is lost, nothing unexpected appears; duplicates are reported (delivery is
 * at least once and the file is not transactional with the consumer's commit).
 */
export function setWorkload(options: SetWorkloadOptions = {}): Workload {
  const tracker = createTracker("set");
  const acknowledged = new Set<number>();
  const duplicatesAllowed = options.exactlyOnce !== true;
  let whereabouts: { inLog: number[]; notInLog: number[] } | undefined;
  const run = async (ctx: WorkloadContext): Promise<void> => {
    const client = ctx.cluster.client.client(setService, CALL);
    await clientLoops(ctx, async (c, i, process) => {
      const element = c * 1_000_000 + i;
      const { outcome } = await tracker.op(
        ctx.metrics,
        process,
        "add",
        element,
        () => client.add({ element }),
        { output: () => element, classify: (e) => (definitelyNot(e) ? "fail" : "info") },
      );
      if (outcome === "ok") acknowledged.add(element);
      return outcome;
    });
  };
  return {
    name: "set",
    setup: () => Promise.resolve(),
    run,
    async finish(ctx) {
      // The consumers catch up after the heal: wait until every acknowledged element is there,
      // or nothing new has arrived for a while.
      const deadline = performance.now() + (options.drainMs ?? 60_000);
      let last = -1;
      let quietSince = performance.now();
      for (;;) {
        const seen = new Set(await consumed(ctx));
        const missing = [...acknowledged].filter((e) => !seen.has(e)).length;
        if (missing === 0) break;
        if (seen.size !== last) {
          last = seen.size;
          quietSince = performance.now();
        }
        if (performance.now() > deadline || performance.now() - quietSince > 25_000) break;
        await pauseFor(250);
      }
      const all = await consumed(ctx);
      const final = tracker.recorder.invoke("final", "read", null);
      final.ok(all);
      const seen = new Set(all);
      const missing = [...acknowledged].filter((e) => !seen.has(e));
      if (missing.length > 0) whereabouts = await whereAreThey(ctx, missing);
    },
    check(): WorkloadVerdict {
      const verdict = checkSet(tracker.recorder.events());
      const lost = verdict.anomalies.filter((a) => a.type === "lost").length;
      const unexpected = verdict.anomalies.filter((a) => a.type === "unexpected").length;
      const duplicated = verdict.anomalies.filter((a) => a.type === "duplicated").length;
      const valid = lost === 0 && unexpected === 0 && (duplicatesAllowed || duplicated === 0);
      return {
        workload: "set",
        valid,
        summary: `${acknowledged.size} acknowledged publishes: ${lost} lost${
          whereabouts === undefined
            ? ""
            : ` (${whereabouts.inLog.length} stored in the log but consumed by no one, ${whereabouts.notInLog.length} missing from the log)`
        }, ${unexpected} unexpected, ${duplicated} delivered twice${duplicated > 0 && duplicatesAllowed ? " (allowed: at-least-once)" : ""}`,
        operations: { ...tracker.counts },
        errors: { ...tracker.errors },
        errorExamples: { ...tracker.errorExamples },
        details: whereabouts === undefined ? verdict : { ...verdict, whereabouts },
      };
    },
    history: () => tracker.recorder.events(),
    historyJson: () => tracker.recorder.toJson(),
  };
}
