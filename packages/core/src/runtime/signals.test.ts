import { describe, expect, it } from "vitest";
import { createEmbeddedNetwork } from "../adapters/embedded/index.js";
import { manualClock } from "../ports/index.js";
import { flush } from "../test-support/cluster.js";
import { createNode } from "./node.js";
import { handleSignals } from "./signals.js";

describe("handleSignals", () => {
  it("stops the node on the first signal and forces on the second", async () => {
    const node = createNode({
      transport: createEmbeddedNetwork().transport(),
      clock: manualClock(),
    });
    await node.start();
    const stopped: unknown[] = [];
    let forced = 0;
    const before = process.listenerCount("SIGUSR2");
    {
      using _signals = handleSignals(node, {
        signals: ["SIGUSR2"],
        onStopped: (error) => stopped.push(error),
        onForce: () => forced++,
      });
      expect(process.listenerCount("SIGUSR2")).toBe(before + 1);
      process.emit("SIGUSR2");
      process.emit("SIGUSR2");
      await flush();
      expect(node.state).toBe("stopped");
      expect(stopped).toEqual([undefined]);
      expect(forced).toBe(1);
    }
    expect(process.listenerCount("SIGUSR2")).toBe(before);
  });
});
