import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import {
  StrataError,
  createCodec,
  createNode,
  defineService,
  isStrataError,
  runLoad,
  type StrataNode,
} from "@strata/core";
import { startNatsCluster, waitFor, type NatsCluster } from "@strata/test-harness";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { checkServerVersion, createNatsTransport } from "./index.js";

const Echo = z.object({ text: z.string(), n: z.number().int() });
const echo = defineService({
  name: "echo",
  version: "1.0.0",
  actions: {
    echo: {
      input: Echo,
      output: z.object({ text: z.string(), n: z.number(), node: z.string() }),
      idempotent: true,
    },
    slow: { input: z.object({ ms: z.number() }), output: z.object({ aborted: z.boolean() }) },
    big: { input: z.object({ size: z.number() }), output: z.string() },
    whoami: { input: z.object({}), output: z.object({ principal: z.string() }) },
  },
});

function echoImpl(nodeId: string, seen: { aborted: number } = { aborted: 0 }) {
  return echo.implement({
    echo: ({ text, n }) => ({ text, n, node: nodeId }),
    slow: async ({ ms }, ctx) => {
      const aborted = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), ms);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          seen.aborted++;
          resolve(true);
        });
      });
      return { aborted };
    },
    big: ({ size }) => "x".repeat(size),
    whoami: (_, ctx) => ({
      principal:
        ctx.principal === undefined
          ? "anonymous"
          : ctx.principal.kind === "user"
            ? `user:${ctx.principal.subject}`
            : `${ctx.principal.kind}:${ctx.principal.id}`,
    }),
  });
}

const fast = { heartbeatIntervalMs: 200, deadAfterMs: 1_000 } as const;

describe("server version check", () => {
  it("refuses nats-server below 2.10 and says why", () => {
    expect(() => checkServerVersion("2.9.10")).toThrowError(/too old.*2\.10\.0.*4320/s);
    try {
      checkServerVersion("2.9.21");
    } catch (error) {
      expect(isStrataError(error, "FAILED_PRECONDITION")).toBe(true);
    }
    expect(() => checkServerVersion("garbage")).toThrowError(/no usable version/);
    expect(() => checkServerVersion(undefined)).toThrowError(/no usable version/);
    expect(() => checkServerVersion("2.10.27")).not.toThrow();
    expect(() => checkServerVersion("v2.11.0")).not.toThrow();
  });

  it("rejects bad transport options clearly", () => {
    expect(() => createNatsTransport({ servers: "" })).toThrowError(/no server URL/);
    expect(() => createNatsTransport({ servers: "http://x y" })).toThrowError(/not a server URL/);
    expect(() =>
      createNatsTransport({ servers: "nats://127.0.0.1:1", cluster: "a.b" }),
    ).toThrowError(/cluster/);
    expect(() =>
      createNatsTransport({ servers: "nats://127.0.0.1:1", maxFrameBytes: 3 }),
    ).toThrowError(/maxFrameBytes/);
  });

  it("fails to start with UNAVAILABLE when nothing listens", async () => {
    const node = createNode({
      transport: createNatsTransport({
        servers: "nats://127.0.0.1:1",
        connection: { maxReconnectAttempts: 0, timeout: 500 },
      }),
    });
    await expect(node.start()).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });
});

describe("NATS transport on a 3-server JetStream cluster", () => {
  let cluster: NatsCluster;
  const nodes: StrataNode[] = [];
  const seen = { aborted: 0 };

  beforeAll(async () => {
    cluster = await startNatsCluster({ nodes: 3 });
    for (let i = 0; i < 3; i++) {
      const id = `app${i + 1}`;
      const node = createNode({
        id,
        region: i === 2 ? "us" : "eu",
        // Each node connects to a different server first, and knows all three for failover.
        transport: createNatsTransport({
          servers: [...cluster.urls.slice(i), ...cluster.urls.slice(0, i)],
          connection: { noRandomize: true },
          maxFrameBytes: 64 * 1024,
        }),
        services: [echoImpl(id, seen)],
        ...fast,
      });
      nodes.push(node);
    }
    const caller = createNode({
      id: "caller",
      // The caller sits on the server the failover test kills: its own connection drops too.
      transport: createNatsTransport({ servers: cluster.urls, connection: { noRandomize: true } }),
      ...fast,
    });
    nodes.push(caller);
    await Promise.all(nodes.map((n) => n.start()));
    await waitFor(() => nodes.every((n) => n.nodes().length === 4), {
      timeoutMs: 10_000,
      message: "membership did not converge",
    });
  });

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.stop({ drainTimeoutMs: 1_000 }).catch(() => undefined)));
    await cluster.stop();
  });

  const caller = (): StrataNode => nodes[3] as StrataNode;

  it("makes typed calls across servers and spreads them over nodes", async () => {
    const client = caller().client(echo, { regionAffinity: false });
    const served = new Set<string>();
    for (let i = 0; i < 60; i++) {
      const out = await client.echo({ text: "hi", n: i });
      expect(out).toMatchObject({ text: "hi", n: i });
      served.add(out.node);
    }
    expect(served.size).toBe(3);
  });

  it("does not believe a principal sent over a transport without mutual TLS", async () => {
    const user = { kind: "user", subject: "mallory", claims: { roles: ["admin"] } } as const;
    const client = caller().client(echo, { principal: user });
    await expect(client.whoami({})).resolves.toEqual({ principal: "anonymous" });
  });

  it("answers schema violations with field paths", async () => {
    const error = await caller()
      .client(echo)
      .echo({ text: 1, n: 1.5 } as never)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StrataError);
    expect((error as StrataError).code).toBe("INVALID_ARGUMENT");
    const issues = (error as StrataError).details["issues"] as Array<{ path: string }>;
    expect(issues.map((i) => i.path).sort()).toEqual(["n", "text"]);
  });

  it("answers unknown actions with UNIMPLEMENTED", async () => {
    await expect(caller().call("echo", "nope", {}, { node: "app1" })).rejects.toMatchObject({
      code: "UNIMPLEMENTED",
    });
    await expect(caller().call("nosuch", "x", {})).rejects.toMatchObject({ code: "UNAVAILABLE" });
  });

  it("refuses oversized payloads both ways and keeps serving", async () => {
    const client = caller().client(echo);
    await expect(client.echo({ text: "x".repeat(2 * 1024 * 1024), n: 1 })).rejects.toMatchObject({
      code: "RESOURCE_EXHAUSTED",
    });
    await expect(client.big({ size: 100 * 1024 })).rejects.toMatchObject({
      code: "RESOURCE_EXHAUSTED",
    });
    await expect(client.echo({ text: "still here", n: 1 })).resolves.toMatchObject({
      text: "still here",
    });
  });

  it("answers malformed frames with INVALID_ARGUMENT and keeps serving", async () => {
    const raw = await connect({ servers: cluster.url });
    try {
      const garbage = [
        new Uint8Array([0xc1]),
        new Uint8Array([1, 2, 3]),
        createCodec().encode([1, 1, "x"]),
        createCodec().encode([99, 1]),
        new Uint8Array(0),
      ];
      for (const frame of garbage) {
        const reply = await raw.request("strata.default.n.app1", frame, { timeout: 2_000 });
        const decoded = createCodec().decodeReply(reply.data);
        expect(decoded.ok).toBe(false);
        if (!decoded.ok)
          expect(["INVALID_ARGUMENT", "FAILED_PRECONDITION"]).toContain(decoded.error.code);
      }
      // Garbage on the control and cancel subjects is dropped without harm.
      raw.publish("strata.default.ctl", new Uint8Array([0xff, 0x00]));
      raw.publish("strata.default.x.app1", new Uint8Array([0x93]));
      await raw.flush();
    } finally {
      await raw.close();
    }
    await expect(
      caller().client(echo).echo({ text: "ok", n: 2 }, { node: "app1" }),
    ).resolves.toMatchObject({ node: "app1" });
  });

  it("propagates deadlines and cancellation to the callee", async () => {
    const client = caller().client(echo);
    const before = seen.aborted;
    await expect(client.slow({ ms: 5_000 }, { timeoutMs: 200 })).rejects.toMatchObject({
      code: "DEADLINE_EXCEEDED",
    });
    const controller = new AbortController();
    const pending = client.slow({ ms: 5_000 }, { signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await expect(pending).rejects.toMatchObject({ code: "CANCELLED" });
    await waitFor(() => seen.aborted >= before + 2, {
      timeoutMs: 5_000,
      message: "callee never saw the abort",
    });
  });

  it("routes group-addressed calls through the queue group", async () => {
    const out = await caller().call(
      "echo",
      "echo",
      { text: "g", n: 3 },
      { via: "group", version: "^1.0.0" },
    );
    expect(out).toMatchObject({ text: "g" });
  });

  it("keeps serving when one NATS server is killed mid-load, and recovers after restart", async () => {
    const client = caller().client(echo);
    const victim = cluster.servers[0];
    if (victim === undefined) throw new Error("no server");
    const load = runLoad({
      concurrency: 16,
      durationMs: 4_000,
      call: (i) => client.echo({ text: "load", n: i }, { timeoutMs: 2_000 }),
    });
    setTimeout(() => void victim.kill(), 1_000);
    const report = await load;
    expect(report.calls).toBeGreaterThan(100);
    // Calls in flight on the dead server's connections may fail; nothing else may, and none hang.
    for (const code of Object.keys(report.errors))
      expect(["UNAVAILABLE", "DEADLINE_EXCEEDED"]).toContain(code);
    expect(report.ok / report.calls).toBeGreaterThan(0.9);
    await victim.restart();
    await waitFor(
      async () =>
        await client.echo({ text: "after", n: 0 }).then(
          () => true,
          () => false,
        ),
      { timeoutMs: 10_000 },
    );
    const after = await runLoad({
      concurrency: 8,
      calls: 200,
      call: (i) => client.echo({ text: "after", n: i }),
    });
    expect(after.ok).toBe(200);
  });
});

describe("an app node killed with SIGKILL mid-load", () => {
  it("fails only the calls it held, leaves the table, and traffic moves to the others", async () => {
    await using cluster = await startNatsCluster({ nodes: 1 });
    const fixture = fileURLToPath(new URL("../test-fixtures/echo-node.mjs", import.meta.url));
    const children: ChildProcess[] = [];
    const spawnNode = async (id: string): Promise<ChildProcess> => {
      const child = spawn(process.execPath, [fixture, cluster.url, id, "killtest"], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      children.push(child);
      const [data] = (await once(child.stdout as NodeJS.ReadableStream, "data")) as [Buffer];
      expect(data.toString()).toContain("ready");
      return child;
    };
    try {
      const victim = await spawnNode("victim");
      await spawnNode("survivor");
      await using caller = createNode({
        id: "caller",
        transport: createNatsTransport({ servers: cluster.url, cluster: "killtest" }),
        ...fast,
      });
      await caller.start();
      await waitFor(() => caller.nodes().length === 3, {
        timeoutMs: 10_000,
        message: "did not see both app nodes",
      });
      const anyInput = {
        "~standard": {
          version: 1 as const,
          vendor: "test",
          validate: (value: unknown) => ({ value }),
        },
      };
      const remote = defineService({
        name: "echo",
        version: "1.0.0",
        actions: { echo: { input: anyInput, output: anyInput, idempotent: true } },
      });
      const client = caller.client(remote);
      const load = runLoad({
        concurrency: 32,
        durationMs: 4_000,
        call: (i) => client.echo({ i }, { timeoutMs: 3_000 }),
      });
      setTimeout(() => victim.kill("SIGKILL"), 1_000);
      const report = await load;
      for (const code of Object.keys(report.errors)) expect(code).toBe("UNAVAILABLE");
      // Only calls in flight on the victim (at most the concurrency, plus any sent before it left) fail.
      expect(report.errors["UNAVAILABLE"] ?? 0).toBeLessThan(report.calls * 0.2);
      await waitFor(() => caller.nodes().every((n) => n.id !== "victim"), {
        timeoutMs: 5_000,
        message: "victim never left",
      });
      const after = await runLoad({ concurrency: 8, calls: 100, call: (i) => client.echo({ i }) });
      expect(after.ok).toBe(100);
    } finally {
      for (const child of children) child.kill("SIGKILL");
    }
  });
});
