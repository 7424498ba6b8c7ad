import { ServiceBroker } from "moleculer";

/** A Moleculer pair for the side-by-side run: local calls on one broker, or two brokers over NATS. */
export interface MoleculerPeer extends AsyncDisposable {
  call(payload: object): Promise<unknown>;
}

const echoService = {
  name: "echo",
  actions: {
    echo(ctx: { params: unknown }): unknown {
      return ctx.params;
    },
  },
};

/** One broker calling its own service (Moleculer's "local call"). */
export async function moleculerLocal(): Promise<MoleculerPeer> {
  const broker = new ServiceBroker({ nodeID: "local", logger: false });
  broker.createService(echoService);
  await broker.start();
  return {
    call: (payload) => broker.call("echo.echo", payload),
    [Symbol.asyncDispose]: () => broker.stop(),
  };
}

/** Two brokers in this process on the same NATS server: the caller has no local instance. */
export async function moleculerNats(url: string): Promise<MoleculerPeer> {
  const server = new ServiceBroker({
    nodeID: "m-server",
    logger: false,
    transporter: { type: "NATS", options: { url } },
  });
  server.createService(echoService);
  const client = new ServiceBroker({
    nodeID: "m-client",
    logger: false,
    transporter: { type: "NATS", options: { url } },
  });
  await server.start();
  await client.start();
  await client.waitForServices(["echo"], 10_000);
  return {
    call: (payload) => client.call("echo.echo", payload),
    [Symbol.asyncDispose]: async () => {
      await client.stop();
      await server.stop();
    },
  };
}
