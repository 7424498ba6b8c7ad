import { isStrataError, type EventLog, type LogRecord } from "@strata/core";
import { describe, expect, it } from "vitest";
import { waitFor } from "../wait-for.js";

/** How the suite opens logs for each test. */
export interface LogFixture {
  /** A fresh log with no streams. */
  open(): Promise<EventLog>;
  /**
   * Closes `log` and opens the same storage again (embedded: the same folder; NATS: a new
   * connection to the same servers), to show that acknowledged records survive.
   */
  reopen(log: EventLog): Promise<EventLog>;
}

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);
const dec = (b: Uint8Array): string => new TextDecoder().decode(b);

async function expectCode(promise: Promise<unknown>, code: string): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isStrataError(error), `expected ${code}, got ${String(error)}`).toBe(true);
  expect((error as { code: string }).code).toBe(code);
}

async function collect(
  log: EventLog,
  stream: string,
  count: number,
  options: { partition?: number; fromSeq?: number } = {},
): Promise<LogRecord[]> {
  const controller = new AbortController();
  const out: LogRecord[] = [];
  for await (const record of log.follow(stream, { ...options, signal: controller.signal })) {
    out.push(record);
    if (out.length === count) controller.abort();
  }
  return out;
}

/**
 * The Log conformance suite: every adapter of the port must pass it. Declares a vitest
 * `describe` block; call it from an adapter's test file with a fixture.
 *
 * @example
 * describeLogConformance("embedded", { open: () => openEmbeddedLog({ dir: fresh() }), reopen });
 */
export function describeLogConformance(name: string, fixture: LogFixture): void {
  describe(`Log conformance: ${name}`, () => {
    it("creates a stream once and refuses a different partition count", async () => {
      await using log = await fixture.open();
      const info = await log.ensureStream({ name: "orders", partitions: 4 });
      expect(info).toMatchObject({ name: "orders", partitions: 4, firstSeq: 1, lastSeq: 0 });
      expect(info.records).toBe(0);
      await expect(log.ensureStream({ name: "orders", partitions: 4 })).resolves.toMatchObject({
        partitions: 4,
      });
      await expectCode(log.ensureStream({ name: "orders", partitions: 8 }), "FAILED_PRECONDITION");
      await expectCode(log.streamInfo("missing"), "NOT_FOUND");
    });

    it("appends in sequence order and reads records back whole", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "s", partitions: 2 });
      const before = Date.now();
      const a = await log.append("s", {
        partition: 1,
        id: "e-1",
        key: "order-1",
        headers: { "ce-type": "placed", traceparent: "00-abc-def-01" },
        payload: enc("one"),
      });
      const b = await log.append("s", {
        partition: 0,
        id: "e-2",
        key: "order-2",
        payload: enc(""),
      });
      expect(a).toEqual({ seq: 1, duplicate: false });
      expect(b).toEqual({ seq: 2, duplicate: false });
      const records = await log.read("s");
      expect(records.map((r) => r.seq)).toEqual([1, 2]);
      const first = records[0] as LogRecord;
      expect(first).toMatchObject({
        stream: "s",
        partition: 1,
        seq: 1,
        id: "e-1",
        key: "order-1",
        headers: { "ce-type": "placed", traceparent: "00-abc-def-01" },
      });
      expect(dec(first.payload)).toBe("one");
      expect(first.time).toBeGreaterThanOrEqual(before - 1_000);
      expect(first.time).toBeLessThanOrEqual(Date.now() + 1_000);
      expect((records[1] as LogRecord).payload.length).toBe(0);
      expect((records[1] as LogRecord).headers).toEqual({});
      expect(await log.streamInfo("s")).toMatchObject({ firstSeq: 1, lastSeq: 2, records: 2 });
    });

    it("reads one partition, from a sequence, a page at a time", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "p", partitions: 3 });
      for (let i = 0; i < 30; i++) {
        await log.append("p", {
          partition: i % 3,
          id: `id-${i}`,
          key: `k${i}`,
          payload: enc(`${i}`),
        });
      }
      const p1 = await log.read("p", { partition: 1, limit: 100 });
      expect(p1.map((r) => dec(r.payload))).toEqual(
        Array.from({ length: 10 }, (_, i) => String(i * 3 + 1)),
      );
      expect(p1.every((r) => r.partition === 1)).toBe(true);
      const page = await log.read("p", { fromSeq: 11, limit: 5 });
      expect(page.map((r) => r.seq)).toEqual([11, 12, 13, 14, 15]);
      expect(await log.read("p", { fromSeq: 31 })).toEqual([]);
      const tail = await log.read("p", { partition: 2, fromSeq: 25, limit: 100 });
      expect(tail.map((r) => r.seq)).toEqual([27, 30]);
    });

    it("stores an id once within the duplicate window", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "d", partitions: 1 });
      const first = await log.append("d", {
        partition: 0,
        id: "same",
        key: "k",
        payload: enc("1"),
      });
      const again = await log.append("d", {
        partition: 0,
        id: "same",
        key: "k",
        payload: enc("2"),
      });
      expect(first).toEqual({ seq: 1, duplicate: false });
      expect(again).toEqual({ seq: 1, duplicate: true });
      await log.append("d", { partition: 0, id: "other", key: "k", payload: enc("3") });
      const records = await log.read("d");
      expect(records.map((r) => dec(r.payload))).toEqual(["1", "3"]);
    });

    it("appends on a condition: only after the expected last sequence, so writers cannot fork the log", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "ledger", partitions: 1 });
      const at = (expectedLastSeq: number, id: string) =>
        log.append("ledger", { partition: 0, id, key: "k", payload: enc(id), expectedLastSeq });
      await expect(at(0, "a")).resolves.toEqual({ seq: 1, duplicate: false });
      await expect(at(1, "b")).resolves.toEqual({ seq: 2, duplicate: false });
      // A writer that read only up to 1 is refused and told to catch up.
      const stale = await at(1, "c").catch((e: unknown) => e);
      expect(isStrataError(stale, "ABORTED")).toBe(true);
      expect((stale as { details: { reason: string } }).details.reason).toBe("wrong-last-seq");
      await expectCode(at(7, "d"), "ABORTED");
      // A retried append is answered as the duplicate it is, whatever the sequence now.
      await expect(at(0, "a")).resolves.toEqual({ seq: 1, duplicate: true });
      // Of concurrent writers expecting the same last sequence exactly one wins.
      const racers = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) => at(2, `race-${i}`)),
      );
      expect(racers.filter((r) => r.status === "fulfilled")).toHaveLength(1);
      for (const r of racers) {
        if (r.status === "rejected") expect(isStrataError(r.reason, "ABORTED")).toBe(true);
      }
      expect((await log.read("ledger")).map((r) => r.seq)).toEqual([1, 2, 3]);
      await expectCode(at(-1, "e"), "INVALID_ARGUMENT");
      await expectCode(at(1.5, "f"), "INVALID_ARGUMENT");
    });

    it("acknowledges concurrent appends with distinct sequences, all readable", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "c", partitions: 4 });
      const results = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          log.append("c", {
            partition: i % 4,
            id: `c-${i}`,
            key: `k${i % 7}`,
            payload: enc(`${i}`),
          }),
        ),
      );
      const seqs = results.map((r) => r.seq).sort((x, y) => x - y);
      expect(seqs).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      const records = await log.read("c", { limit: 1_000 });
      expect(records.length).toBe(200);
      for (const r of records) expect(results[Number(dec(r.payload))]?.seq).toBe(r.seq);
    });

    it("follows a stream: what is stored, then what is appended, until aborted", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "f", partitions: 2 });
      await log.append("f", { partition: 0, id: "a", key: "k", payload: enc("a") });
      await log.append("f", { partition: 1, id: "b", key: "k", payload: enc("b") });
      const reading = collect(log, "f", 3, { partition: 0 });
      const all = collect(log, "f", 5, { fromSeq: 2 });
      for (const [i, id] of ["c", "d", "e", "g"].entries()) {
        await log.append("f", { partition: i % 2, id, key: "k", payload: enc(id) });
      }
      expect((await reading).map((r) => dec(r.payload))).toEqual(["a", "c", "e"]);
      expect((await all).map((r) => dec(r.payload))).toEqual(["b", "c", "d", "e", "g"]);
    });

    it("ends a follow when its signal aborts while waiting", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "w", partitions: 1 });
      const controller = new AbortController();
      const seen: number[] = [];
      const done = (async () => {
        for await (const r of log.follow("w", { signal: controller.signal })) seen.push(r.seq);
      })();
      await log.append("w", { partition: 0, id: "x", key: "k", payload: enc("x") });
      await waitFor(() => seen.length > 0, { message: "follow did not deliver the append" });
      controller.abort();
      await done;
      expect(seen).toEqual([1]);
    });

    it("finds the first sequence at a time", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "t", partitions: 1 });
      await log.append("t", { partition: 0, id: "1", key: "k", payload: enc("1") });
      const [first] = await log.read("t");
      const later = (first as LogRecord).time + 5;
      await waitFor(() => Date.now() > later + 1, { intervalMs: 2 });
      await log.append("t", { partition: 0, id: "2", key: "k", payload: enc("2") });
      expect(await log.seqAtTime("t", 0)).toBe(1);
      expect(await log.seqAtTime("t", later)).toBe(2);
      expect(await log.seqAtTime("t", Date.now() + 60_000)).toBe(3);
    });

    it("answers bad input with INVALID_ARGUMENT or NOT_FOUND and keeps working", async () => {
      await using log = await fixture.open();
      await expectCode(log.ensureStream({ name: "Bad Name", partitions: 1 }), "INVALID_ARGUMENT");
      await expectCode(log.ensureStream({ name: "ok", partitions: 0 }), "INVALID_ARGUMENT");
      await log.ensureStream({ name: "ok", partitions: 2 });
      const good = { partition: 0, id: "i", key: "k", payload: enc("v") };
      await expectCode(log.append("ok", { ...good, partition: 2 }), "INVALID_ARGUMENT");
      await expectCode(log.append("ok", { ...good, id: "" }), "INVALID_ARGUMENT");
      await expectCode(log.append("ok", { ...good, key: "has space" }), "INVALID_ARGUMENT");
      await expectCode(
        log.append("ok", { ...good, payload: "text" as unknown as Uint8Array }),
        "INVALID_ARGUMENT",
      );
      await expectCode(
        log.append("ok", { ...good, payload: new Uint8Array(2 * 1024 * 1024) }),
        "INVALID_ARGUMENT",
      );
      await expectCode(
        log.append("ok", { ...good, headers: { "bad header": "x" } }),
        "INVALID_ARGUMENT",
      );
      await expectCode(log.append("nope", good), "NOT_FOUND");
      await expectCode(log.read("ok", { limit: 0 }), "INVALID_ARGUMENT");
      await expectCode(log.read("ok", { fromSeq: -1 }), "INVALID_ARGUMENT");
      await expectCode(log.read("ok", { partition: 5 }), "INVALID_ARGUMENT");
      await expectCode(log.read("nope"), "NOT_FOUND");
      expect(await log.append("ok", good)).toEqual({ seq: 1, duplicate: false });
    });

    it("deletes a stream", async () => {
      await using log = await fixture.open();
      await log.ensureStream({ name: "gone", partitions: 1 });
      await log.append("gone", { partition: 0, id: "1", key: "k", payload: enc("1") });
      expect(await log.deleteStream("gone")).toBe(true);
      expect(await log.deleteStream("gone")).toBe(false);
      await expectCode(log.streamInfo("gone"), "NOT_FOUND");
      const info = await log.ensureStream({ name: "gone", partitions: 1 });
      expect(info.lastSeq).toBe(0);
    });

    it("keeps every acknowledged record across a reopen, and the sequence goes on", async () => {
      let log = await fixture.open();
      await log.ensureStream({ name: "keep", partitions: 2 });
      const acked = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          log.append("keep", { partition: i % 2, id: `k-${i}`, key: "k", payload: enc(`${i}`) }),
        ),
      );
      log = await fixture.reopen(log);
      try {
        const records = await log.read("keep", { limit: 100 });
        expect(records.map((r) => r.seq).sort((a, b) => a - b)).toEqual(
          acked.map((a) => a.seq).sort((a, b) => a - b),
        );
        const next = await log.append("keep", {
          partition: 0,
          id: "after",
          key: "k",
          payload: enc("x"),
        });
        expect(next.seq).toBe(51);
        const dup = await log.append("keep", {
          partition: 1,
          id: "k-3",
          key: "k",
          payload: enc("x"),
        });
        expect(dup.duplicate).toBe(true);
      } finally {
        await log[Symbol.asyncDispose]();
      }
    });
  });
}
