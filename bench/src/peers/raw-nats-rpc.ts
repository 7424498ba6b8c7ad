import { connect, type NatsConnection } from "@nats-io/transport-node";
import { Packr } from "msgpackr";

/** The floor: raw nats.js in its fastest request/reply form, with the same MessagePack payload. */
export interface RawNatsPeer extends AsyncDisposable {
  call(payload: object): Promise<unknown>;
}

/**
 * Muxed request/reply: one wildcard reply subscription per connection, a reply subject per call,
 * no per-call subscription or timer (nats.js `request()` creates more per call; it is not the
 * floor's best form).
 */
export async function rawNats(url: string): Promise<RawNatsPeer> {
  const packr = new Packr({ useRecords: false });
  const server: NatsConnection = await connect({ servers: url });
  server.subscribe("bench.echo", {
    callback: (_err, msg) => {
      // Decode and re-encode, as any RPC server must.
      msg.respond(packr.pack(packr.unpack(msg.data)));
    },
  });
  await server.flush();
  const client: NatsConnection = await connect({ servers: url });
  const waiting = new Map<number, (value: unknown) => void>();
  const prefix = "bench.reply.";
  client.subscribe(`${prefix}*`, {
    callback: (_err, msg) => {
      const id = Number(msg.subject.slice(prefix.length));
      const resolve = waiting.get(id);
      if (resolve === undefined) return;
      waiting.delete(id);
      resolve(packr.unpack(msg.data));
    },
  });
  await client.flush();
  let next = 0;
  return {
    call: (payload) =>
      new Promise((resolve) => {
        const id = next++;
        waiting.set(id, resolve);
        client.publish("bench.echo", packr.pack(payload), { reply: prefix + id });
      }),
    [Symbol.asyncDispose]: async () => {
      await client.close();
      await server.close();
    },
  };
}
