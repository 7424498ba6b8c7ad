import { connect, type Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { startNatsCluster, waitFor, type NatsServerHandle } from "./index.js";

/**
 * Just enough of the NATS client protocol for request/reply (no headers), so that this package
 * needs no NATS client library: CONNECT, SUB on an inbox, PUB with a reply subject, PING/PONG.
 */
class WireClient {
  private readonly socket: Socket;
  private buffer = Buffer.alloc(0);
  private next = 0;
  private readonly waiting = new Map<string, (body: string) => void>();
  private readonly inbox = `_INBOX.t${Math.floor(performance.now())}`;
  private pong: (() => void) | undefined;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on("data", (chunk: Buffer) => this.read(chunk));
    socket.on("error", () => undefined);
  }

  static async open(url: string): Promise<WireClient> {
    const { hostname, port } = new URL(url);
    const socket = connect({ host: hostname, port: Number(port) });
    const client = new WireClient(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once("connect", resolve);
      socket.once("error", reject);
    });
    socket.write(
      `CONNECT {"verbose":false,"pedantic":false,"headers":false,"protocol":1}\r\nSUB ${client.inbox}.* 1\r\n`,
    );
    await new Promise<void>((resolve) => {
      client.pong = resolve;
      socket.write("PING\r\n");
    });
    return client;
  }

  /** The reply's body, or undefined when none came within `timeoutMs`. */
  request(subject: string, body: string, timeoutMs: number): Promise<string | undefined> {
    const reply = `${this.inbox}.${this.next++}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiting.delete(reply);
        resolve(undefined);
      }, timeoutMs);
      this.waiting.set(reply, (answer) => {
        clearTimeout(timer);
        resolve(answer);
      });
      this.socket.write(`PUB ${subject} ${reply} ${Buffer.byteLength(body)}\r\n${body}\r\n`);
    });
  }

  close(): void {
    this.socket.destroy();
  }

  private read(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const eol = this.buffer.indexOf("\r\n");
      if (eol < 0) return;
      const line = this.buffer.subarray(0, eol).toString();
      if (line.startsWith("MSG ")) {
        // MSG <subject> <sid> [reply] <size>
        const parts = line.split(" ");
        const size = Number(parts.at(-1));
        if (this.buffer.length < eol + 2 + size + 2) return;
        const body = this.buffer.subarray(eol + 2, eol + 2 + size).toString();
        this.buffer = this.buffer.subarray(eol + 2 + size + 2);
        this.waiting.get(parts[1] ?? "")?.(body);
        continue;
      }
      this.buffer = this.buffer.subarray(eol + 2);
      if (line === "PING") this.socket.write("PONG\r\n");
      else if (line === "PONG") this.pong?.();
    }
  }
}

async function json(server: NatsServerHandle, path: string): Promise<Record<string, unknown>> {
  const response = await fetch(`http://127.0.0.1:${server.monitorPort}${path}`, {
    signal: AbortSignal.timeout(2_000),
  });
  return (await response.json()) as Record<string, unknown>;
}

interface Route {
  remote_name: string;
  did_solicit: boolean;
  port: number;
}

async function routes(server: NatsServerHandle): Promise<Route[]> {
  return ((await json(server, "/routez"))["routes"] as Route[] | undefined) ?? [];
}

async function peersOf(server: NatsServerHandle): Promise<string[]> {
  return [...new Set((await routes(server)).map((r) => r.remote_name))].sort();
}

interface Meta {
  leader?: string;
  replicas?: Array<{ name: string; current: boolean; offline?: boolean }>;
}

async function meta(server: NatsServerHandle): Promise<Meta> {
  return ((await json(server, "/jsz"))["meta_cluster"] as Meta | undefined) ?? {};
}

/** The stream's state as one server holds it. */
async function streamState(
  server: NatsServerHandle,
  stream: string,
): Promise<{ messages: number; last_seq: number } | undefined> {
  const jsz = await json(server, "/jsz?streams=true");
  const accounts =
    (jsz["account_details"] as
      | Array<{
          stream_detail?: Array<{ name: string; state: { messages: number; last_seq: number } }>;
        }>
      | undefined) ?? [];
  for (const account of accounts) {
    const found = account.stream_detail?.find((s) => s.name === stream);
    if (found !== undefined) return found.state;
  }
  return undefined;
}

describe("startNatsCluster({ proxied: true })", () => {
  it("partitions one server away from the majority and heals it back", async () => {
    await using cluster = await startNatsCluster({ nodes: 3, proxied: true });
    expect(cluster.links.map((l) => l.name)).toEqual([
      "n1->n2",
      "n1->n3",
      "n2->n1",
      "n2->n3",
      "n3->n1",
      "n3->n2",
    ]);
    expect(cluster.link("n1", "n2").name).toBe("n1->n2");
    expect(() => cluster.link("n1", "n9")).toThrow(/no link n1->n9/);

    // Every route connection runs through a link proxy. Each connection shows up in the /routez of
    // both its ends (2.10 pools several per peer), so with no connection bypassing the proxies the
    // route ends number twice the proxies' open connections. Servers did try to dial peers they
    // learned of by gossip: the sink refused those.
    await waitFor(
      async () => {
        let ends = 0;
        for (const server of cluster.servers) ends += (await routes(server)).length;
        const proxied = cluster.links.reduce((n, l) => n + l.stats().open, 0);
        return ends > 0 && ends === 2 * proxied;
      },
      { timeoutMs: 5_000, message: "route connections bypass the link proxies" },
    );

    const app1 = await cluster.client("app-1");
    expect(await cluster.client("app-1")).toBe(app1);
    expect(app1.links.map((l) => l.name)).toEqual(["app-1->n1", "app-1->n2", "app-1->n3"]);
    await expect(cluster.client("n1")).rejects.toThrow(/cannot name a client/);

    const [first] = cluster.servers;
    if (first === undefined) throw new Error("no server");
    const metaLeader = (await meta(first)).leader ?? "";
    const writer = await WireClient.open(app1.urls[0] ?? "");
    try {
      const created = await writer.request(
        "$JS.API.STREAM.CREATE.P",
        JSON.stringify({ name: "P", subjects: ["p.>"], num_replicas: 3, storage: "file" }),
        5_000,
      );
      const streamLeader =
        (JSON.parse(created ?? "{}") as { cluster?: { leader?: string } }).cluster?.leader ?? "";
      // Leave out a server that leads neither the meta group nor the stream, so the majority
      // keeps both leaders and keeps acknowledging at once.
      const minority = cluster.servers.find(
        (s) => s.name !== metaLeader && s.name !== streamLeader,
      );
      if (minority === undefined) throw new Error(`leaders: ${metaLeader}, ${streamLeader}`);
      const majority = cluster.servers.filter((s) => s !== minority);
      const majorityIndex = cluster.servers.indexOf(majority[0] as NatsServerHandle);
      const minorityIndex = cluster.servers.indexOf(minority);
      writer.close();

      const app2 = await cluster.client("app-2");
      const toMajority = await WireClient.open(app1.urls[majorityIndex] ?? "");
      const toMinority = await WireClient.open(app2.urls[minorityIndex] ?? "");
      let acked = 0;
      const publish = async (client: WireClient, timeoutMs: number): Promise<boolean> => {
        const answer = await client.request(`p.${acked}`, `value ${acked}`, timeoutMs);
        const ok = answer !== undefined && !answer.includes('"error"');
        if (ok) acked++;
        return ok;
      };
      // A stream just created may take a moment to elect its leader and be known to every
      // server: the first publish is tried until it is acknowledged.
      await waitFor(() => publish(toMajority, 2_000), {
        timeoutMs: 15_000,
        message: "the new stream acknowledged no publish",
      });

      cluster.partition([
        [minority.name, "app-2"],
        [...majority.map((s) => s.name), "app-1"],
      ]);
      // Server links across the groups are cut both ways; client links only where they cross.
      for (const peer of majority) {
        expect(cluster.link(minority.name, peer.name).isCut).toBe(true);
        expect(cluster.link(peer.name, minority.name).isCut).toBe(true);
        expect(cluster.link("app-2", peer.name).isCut).toBe(true);
        expect(cluster.link("app-1", peer.name).isCut).toBe(false);
      }
      expect(cluster.link("app-1", minority.name).isCut).toBe(true);
      expect(cluster.link("app-2", minority.name).isCut).toBe(false);
      expect(cluster.link(majority[0]?.name ?? "", majority[1]?.name ?? "").isCut).toBe(false);

      // The minority loses every route and stays without: gossip cannot route around the cut.
      await waitFor(async () => (await peersOf(minority)).length === 0, {
        timeoutMs: 15_000,
        message: `${minority.name} kept routes across the partition`,
      });
      for (const server of majority) {
        const others = majority.filter((s) => s !== server).map((s) => s.name);
        await waitFor(async () => (await peersOf(server)).join() === others.join(), {
          timeoutMs: 15_000,
          message: `${server.name} kept its route to ${minority.name}`,
        });
      }
      // It loses the meta leader (a lone server cannot elect one), while the majority keeps its own.
      await waitFor(async () => ((await meta(minority)).leader ?? "") === "", {
        timeoutMs: 15_000,
        message: `${minority.name} still follows a meta leader`,
      });
      expect((await meta(majority[0] as NatsServerHandle)).leader).toBe(metaLeader);

      // The majority keeps acknowledging R3 writes; the minority acknowledges none.
      for (let i = 0; i < 10; i++) expect(await publish(toMajority, 5_000)).toBe(true);
      expect(await publish(toMinority, 1_000)).toBe(false);
      expect(await peersOf(minority)).toEqual([]);

      cluster.heal();
      expect(cluster.links.some((l) => l.isCut)).toBe(false);
      // It rejoins the meta group: it follows a leader that counts it current. (The leader may
      // have changed: the minority campaigned alone with rising terms.)
      await waitFor(
        async () => {
          if ((await peersOf(minority)).length !== 2) return false;
          const leaderName = (await meta(minority)).leader ?? "";
          const leader = cluster.servers.find((s) => s.name === leaderName);
          if (leader === undefined) return false;
          const view = await meta(leader);
          if (view.leader !== leaderName) return false;
          return (
            leader === minority ||
            view.replicas?.find((r) => r.name === minority.name)?.current === true
          );
        },
        { timeoutMs: 20_000, message: `${minority.name} did not rejoin the meta group` },
      );
      // And its copy of the stream catches up with every acknowledged write.
      const reference = await streamState(majority[0] as NatsServerHandle, "P");
      expect(reference?.messages).toBeGreaterThanOrEqual(acked);
      await waitFor(
        async () => (await streamState(minority, "P"))?.last_seq === reference?.last_seq,
        { timeoutMs: 20_000, message: `${minority.name} did not catch up on stream P` },
      );
      expect(await publish(toMinority, 5_000)).toBe(true);
      toMajority.close();
      toMinority.close();
    } finally {
      writer.close();
    }
  });

  it("rejects partitions of unknown names and outside proxied clusters", async () => {
    await using plain = await startNatsCluster({ nodes: 1, jetstream: false });
    expect(plain.links).toEqual([]);
    expect(() => plain.partition([["n1"]])).toThrow(/proxied: true/);
    expect(() => plain.link("n1", "n2")).toThrow(/proxied: true/);
    await expect(plain.client("app")).rejects.toThrow(/proxied: true/);

    await using proxied = await startNatsCluster({ nodes: 1, jetstream: false, proxied: true });
    expect(() => proxied.partition([["n1"], ["app-9"]])).toThrow(/neither a server nor a client/);
    expect(() => proxied.partition([["n1"], ["n1"]])).toThrow(/twice/);
    const app = await proxied.client("app");
    proxied.partition([["n1"], ["app"]], { mode: "reset" });
    expect(proxied.link("app", "n1").isCut).toBe(true);
    // A cut client link: the client's connection is reset at once.
    const refused = await new Promise<string>((resolve) => {
      const socket = connect({ host: "127.0.0.1", port: app.links[0]?.port ?? 0 });
      socket.on("error", () => undefined);
      socket.on("close", () => resolve("closed"));
    });
    expect(refused).toBe("closed");
    proxied.heal();
    const client = await WireClient.open(app.url);
    expect(await client.request("nobody.listens", "x", 200)).toBeUndefined();
    client.close();
  });
});
