import { createHash } from "node:crypto";
import { connect, createServer, type Server, type Socket } from "node:net";
import { seededRandom } from "@strata/core";
import { afterEach, describe, expect, it } from "vitest";
import { freePort, startTcpProxy, waitFor, type TcpProxy } from "./index.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

/** A TCP server started for one test and closed after it. */
async function listen(onConnection: (socket: Socket) => void): Promise<{
  port: number;
  server: Server;
  sockets: Set<Socket>;
}> {
  const sockets = new Set<Socket>();
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    sockets.add(socket);
    socket.on("error", () => undefined);
    socket.on("close", () => sockets.delete(socket));
    onConnection(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const address = server.address();
  if (address === null || typeof address !== "object") throw new Error("no port");
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  );
  return { port: address.port, server, sockets };
}

/** Echoes every byte back and half-closes when the client does. */
const echoServer = () => listen((socket) => socket.pipe(socket));

async function proxyTo(port: number, extra: Partial<Parameters<typeof startTcpProxy>[0]> = {}) {
  const proxy = await startTcpProxy({ target: { port }, name: "test", ...extra });
  cleanups.push(() => proxy.close());
  return proxy;
}

/** A client connection to the proxy, recording what it receives and how it ended. */
async function client(proxy: TcpProxy, options: { allowHalfOpen?: boolean } = {}) {
  const socket = connect({
    host: "127.0.0.1",
    port: proxy.port,
    allowHalfOpen: options.allowHalfOpen ?? false,
  });
  cleanups.push(() => void socket.destroy());
  const state = {
    socket,
    chunks: [] as Buffer[],
    received: 0,
    ended: false,
    closed: false,
    error: undefined as Error | undefined,
    data: () => Buffer.concat(state.chunks),
  };
  socket.on("data", (chunk: Buffer) => {
    state.chunks.push(chunk);
    state.received += chunk.length;
  });
  socket.on("end", () => (state.ended = true));
  socket.on("error", (error) => (state.error = error));
  socket.on("close", () => (state.closed = true));
  // A connection reset on arrival may fail before "connect": the state records it either way.
  await new Promise<void>((resolve) => {
    socket.once("connect", resolve);
    socket.once("close", resolve);
  });
  return state;
}

function randomBytes(length: number, seed: number): Buffer {
  const random = seededRandom(seed);
  const bytes = Buffer.alloc(length);
  for (let i = 0; i < length; i++) bytes[i] = Math.floor(random() * 256);
  return bytes;
}

const sha = (b: Buffer): string => createHash("sha256").update(b).digest("hex");

/** Holds for `ms`: only for asserting that something does NOT happen, never to synchronise. */
async function staysTrue(condition: () => boolean, ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    if (!condition()) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return condition();
}

describe("startTcpProxy", () => {
  it("forwards bytes both ways unchanged and passes a half-close through", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port);
    expect(proxy.url).toBe(`127.0.0.1:${proxy.port}`);
    expect(proxy.target).toEqual({ host: "127.0.0.1", port: target.port });
    const c = await client(proxy, { allowHalfOpen: true });
    const payload = randomBytes(64 * 1024, 7);
    c.socket.end(payload);
    await waitFor(() => c.ended, { message: "echo never ended" });
    expect(sha(c.data())).toBe(sha(payload));
    await waitFor(() => proxy.stats().open === 0, { message: "connection not released" });
    expect(proxy.stats()).toMatchObject({
      connections: 1,
      open: 0,
      bytesUp: payload.length,
      bytesDown: payload.length,
      refused: 0,
    });
  });

  it("moves 5 MB through a receiver that stops reading, holding back instead of buffering", async () => {
    let receiver: Socket | undefined;
    const received: Buffer[] = [];
    const target = await listen((socket) => {
      receiver = socket;
      socket.pause();
      socket.on("data", (chunk: Buffer) => received.push(chunk));
    });
    const proxy = await proxyTo(target.port);
    const c = await client(proxy);
    const payload = randomBytes(5 * 1024 * 1024, 11);
    c.socket.write(payload);
    await waitFor(() => receiver !== undefined, { message: "target saw no connection" });
    // The receiver reads nothing: once buffers fill, the proxy must stop reading from the client
    // instead of queueing megabytes in memory. Wait for the delivered count to settle.
    let last = -1;
    await waitFor(
      () => {
        const now = proxy.stats().bytesUp;
        const settled = now === last && now > 0;
        last = now;
        return settled;
      },
      { intervalMs: 150, message: "delivery never settled" },
    );
    // Ignoring backpressure would hand all 5 MB to the upstream socket's memory at once.
    expect(proxy.stats().bytesUp).toBeLessThan(payload.length);
    receiver?.resume();
    await waitFor(() => received.reduce((n, b) => n + b.length, 0) === payload.length, {
      message: "not everything arrived",
    });
    expect(sha(Buffer.concat(received))).toBe(sha(payload));
    // And back the other way.
    receiver?.write(payload);
    await waitFor(() => c.received === payload.length, { message: "not everything came back" });
    expect(sha(c.data())).toBe(sha(payload));
  });

  it("black hole: forwards nothing either way, accepts new connections, resets them on heal", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port);
    const before = await client(proxy);
    before.socket.write("ping");
    await waitFor(() => before.received === 4);

    proxy.cut();
    expect(proxy.isCut).toBe(true);
    before.socket.write("lost?");
    const during = await client(proxy); // accepted...
    during.socket.write("hello?");
    // ...but nothing reaches the target or comes back (a negative: observed for a while).
    expect(
      await staysTrue(() => before.received === 4 && during.received === 0 && !before.closed, 300),
    ).toBe(true);
    expect(target.sockets.size).toBe(1);
    expect(proxy.stats().bytesUp).toBe(4);

    proxy.heal();
    expect(proxy.isCut).toBe(false);
    await waitFor(() => before.closed && during.closed, { message: "cut connections survived" });
    expect(before.received).toBe(4);
    const after = await client(proxy);
    after.socket.write("again");
    await waitFor(() => after.data().toString() === "again", { message: "healed link is dead" });
  });

  it("reset: destroys open connections and resets new ones until healed", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port);
    const open = await client(proxy);
    proxy.cut("reset");
    await waitFor(() => open.closed, { message: "open connection survived a reset cut" });
    await waitFor(() => target.sockets.size === 0, { message: "target side survived" });

    const refused = await client(proxy);
    await waitFor(() => refused.closed, { message: "a new connection was not reset" });
    expect(refused.received).toBe(0);
    expect(target.sockets.size).toBe(0);
    expect(proxy.stats().refused).toBe(1);

    proxy.heal();
    const after = await client(proxy);
    after.socket.write("back");
    await waitFor(() => after.data().toString() === "back");
  });

  it("switches a cut from black hole to reset", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port);
    const c = await client(proxy);
    proxy.cut("blackhole");
    proxy.cut("reset");
    await waitFor(() => c.closed, { message: "held connection survived the reset" });
  });

  it("adds latency per chunk in each direction (a lower bound only)", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port);
    proxy.set({ delayMs: 60 });
    expect(proxy.faults).toEqual({ delayMs: 60, jitterMs: 0, loss: 0 });
    const c = await client(proxy);
    const start = performance.now();
    c.socket.write("x");
    await waitFor(() => c.received === 1, { intervalMs: 1 });
    // 60 ms up and 60 ms down.
    expect(performance.now() - start).toBeGreaterThanOrEqual(119);

    proxy.clear();
    expect(proxy.faults).toEqual({ delayMs: 0, jitterMs: 0, loss: 0 });
    expect(() => proxy.set({ loss: 1.5 })).toThrow(RangeError);
    expect(() => proxy.set({ delayMs: -1 })).toThrow(RangeError);
  });

  it("keeps order within a connection under jitter", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port, { seed: 3 });
    proxy.set({ delayMs: 4, jitterMs: 4 });
    const c = await client(proxy);
    const lines = Array.from({ length: 200 }, (_, i) => `line ${i}\n`);
    let i = 0;
    // Write in separate ticks so the proxy sees many chunks.
    await new Promise<void>((resolve) => {
      const next = (): void => {
        if (i === lines.length) return resolve();
        c.socket.write(lines[i++] ?? "");
        setImmediate(next);
      };
      next();
    });
    const expected = lines.join("");
    await waitFor(() => c.received === expected.length, { message: "lines missing" });
    expect(c.data().toString()).toBe(expected);
  });

  it("loss holds chunks for a retransmission timeout and still delivers everything in order", async () => {
    const target = await echoServer();
    // Scripted: the first chunk read is "lost", then nothing more.
    let draws = 0;
    const proxy = await proxyTo(target.port, { random: () => (draws++ === 0 ? 0 : 0.99) });
    proxy.set({ loss: 0.5 });
    const c = await client(proxy);
    const start = performance.now();
    c.socket.write("first ");
    c.socket.write("second ");
    c.socket.write("third");
    await waitFor(() => c.data().toString() === "first second third", {
      message: "lost chunks were never delivered",
    });
    expect(performance.now() - start).toBeGreaterThanOrEqual(199);

    const random = seededRandom(5);
    const lossy = await proxyTo(target.port, { random });
    lossy.set({ loss: 0.2 });
    const d = await client(lossy);
    const payload = randomBytes(256 * 1024, 13);
    d.socket.write(payload);
    await waitFor(() => d.received === payload.length, { timeoutMs: 20_000 });
    expect(sha(d.data())).toBe(sha(payload));
  });

  it("closes the client cleanly when the target refuses", async () => {
    const port = await freePort();
    const proxy = await proxyTo(port);
    const c = await client(proxy);
    await waitFor(() => c.closed, { message: "client left open" });
    expect(c.ended).toBe(true);
    expect(c.error).toBeUndefined();
    await waitFor(() => proxy.stats().open === 0);
  });

  it("survives garbage and resets from either side", async () => {
    const target = await echoServer();
    const proxy = await proxyTo(target.port);
    for (let round = 0; round < 5; round++) {
      const c = await client(proxy);
      c.socket.write(randomBytes(100_000, round));
      c.socket.resetAndDestroy();
    }
    // A target that resets whoever talks to it.
    const rude = await listen((socket) => socket.once("data", () => socket.resetAndDestroy()));
    const toRude = await proxyTo(rude.port);
    const victim = await client(toRude);
    victim.socket.write("hello");
    await waitFor(() => victim.closed, { message: "reset from the target not passed on" });
    expect(victim.error).toMatchObject({ code: "ECONNRESET" });

    await waitFor(() => proxy.stats().open === 0 && toRude.stats().open === 0);
    const fine = await client(proxy);
    fine.socket.write("still here");
    await waitFor(() => fine.data().toString() === "still here");
  });

  it("close() destroys connections and frees the port", async () => {
    const target = await echoServer();
    const proxy = await startTcpProxy({ target: { port: target.port } });
    const c = await client(proxy);
    await proxy.close();
    await waitFor(() => c.closed, { message: "connection survived close()" });
    await waitFor(() => target.sockets.size === 0, { message: "target side survived close()" });
    const again = createServer();
    await new Promise<void>((resolve, reject) => {
      again.once("error", reject);
      again.listen(proxy.port, "127.0.0.1", resolve);
    });
    await new Promise<void>((resolve) => again.close(() => resolve()));
  });

  it("an aborted signal closes the proxy", async () => {
    const target = await echoServer();
    const controller = new AbortController();
    const proxy = await startTcpProxy({ target: { port: target.port }, signal: controller.signal });
    controller.abort();
    await expect(
      new Promise((resolve, reject) => {
        const socket = connect({ host: "127.0.0.1", port: proxy.port });
        socket.once("connect", () => {
          socket.destroy();
          resolve("connected");
        });
        socket.once("error", reject);
      }),
    ).rejects.toMatchObject({ code: "ECONNREFUSED" });
    await expect(
      startTcpProxy({ target: { port: target.port }, signal: AbortSignal.abort() }),
    ).rejects.toThrow();
  });
});
