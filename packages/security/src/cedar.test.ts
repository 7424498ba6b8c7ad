import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  createEmbeddedNetwork,
  createNode,
  defineService,
  isStrataError,
  type Logger,
  type Principal,
} from "@strata/core";
import { waitFor } from "@strata/test-harness";
import { afterEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { createCedarAuthorizer, type CedarAuthorizer } from "./cedar.js";
import { runPolicyTests } from "./policy-test.js";

const POLICIES = `
// Nurses read any record; patients read their own; nobody reads a sealed one.
permit (principal in Role::"nurse", action == Action::"records.get", resource);
permit (principal, action == Action::"records.get", resource)
  when { principal has patientId && resource == Record::"p-1" && principal.patientId == "p-1" };
forbid (principal, action, resource == Record::"sealed");
// The catalog is public.
permit (principal, action == Action::"catalog.list", resource);
`;

const RESOURCES = { "records.get": { type: "Record", field: "patientId" } } as const;

const nurse: Principal = { kind: "user", subject: "nina", claims: { roles: ["nurse"] } };
const patient: Principal = { kind: "user", subject: "paul", claims: { patientId: "p-1" } };

const dirs: string[] = [];
const closers: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close();
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function authorizer(
  options: Partial<Parameters<typeof createCedarAuthorizer>[0]> = {},
): Promise<CedarAuthorizer> {
  const a = await createCedarAuthorizer({
    ...(options.dir === undefined ? { policies: POLICIES } : {}),
    resources: RESOURCES,
    ...options,
  });
  closers.push(() => a.close());
  return a;
}

const ask = (a: CedarAuthorizer, principal: Principal | undefined, action: string, input = {}) => {
  const [service, name] = action.split(".") as [string, string];
  return a.authorize({ principal, service, action: name, input, callerNode: "n1" });
};

describe("Cedar authorization", () => {
  it("allows what a policy permits, denies the rest by default, and a forbid always wins", async () => {
    const a = await authorizer();
    expect(await ask(a, nurse, "records.get", { patientId: "p-9" })).toEqual({ allowed: true });
    expect(await ask(a, patient, "records.get", { patientId: "p-1" })).toEqual({ allowed: true });
    const other = await ask(a, patient, "records.get", { patientId: "p-2" });
    expect(other).toMatchObject({ allowed: false, reason: "no policy permits records.get" });
    const sealed = await ask(a, nurse, "records.get", { patientId: "sealed" });
    expect(sealed.allowed).toBe(false);
    expect(sealed.allowed ? "" : sealed.reason).toMatch(/^forbidden by inline#2/);
    expect((await ask(a, undefined, "records.get", { patientId: "p-1" })).allowed).toBe(false);
    expect(await ask(a, undefined, "catalog.list")).toEqual({ allowed: true });
    expect((await ask(a, nurse, "records.delete", { patientId: "p-1" })).allowed).toBe(false);
    // A record action without its declared field names no resource: denied.
    expect(await ask(a, nurse, "records.get", {})).toMatchObject({
      allowed: false,
      reason: "no resource: input field patientId is missing",
    });
    expect(a.stats()).toMatchObject({ allowed: 3, denied: 5 });
  });

  it("sees the workload a signed envelope proved, so users can be required to come through the gateway", async () => {
    const gatewayId = "spiffe://shop.example/ns/prod/svc/gateway";
    const a = await authorizer({
      policies: `permit (principal in Role::"nurse", action == Action::"records.get", resource)
        when { context has workload && context.workload == "${gatewayId}" };`,
    });
    const viaGateway = await a.authorize({
      principal: nurse,
      service: "records",
      action: "get",
      input: { patientId: "p-9" },
      callerNode: "gw-1",
      workload: gatewayId,
    });
    expect(viaGateway).toEqual({ allowed: true });
    const viaOther = await a.authorize({
      principal: nurse,
      service: "records",
      action: "get",
      input: { patientId: "p-9" },
      callerNode: "gw-1",
      workload: "spiffe://shop.example/ns/prod/svc/cart",
    });
    expect(viaOther.allowed).toBe(false);
    expect((await ask(a, nurse, "records.get", { patientId: "p-9" })).allowed).toBe(false);
  });

  it("keeps each authorizer's policies its own within one process", async () => {
    const open = await authorizer({ policies: "permit (principal, action, resource);" });
    const closed = await authorizer({ policies: "" });
    expect((await ask(open, undefined, "catalog.list")).allowed).toBe(true);
    expect((await ask(closed, undefined, "catalog.list")).allowed).toBe(false);
    await open.reload();
    expect((await ask(closed, undefined, "catalog.list")).allowed).toBe(false);
    expect((await ask(open, undefined, "catalog.list")).allowed).toBe(true);
  });

  it("with no policies at all, denies everything", async () => {
    const a = await authorizer({ policies: "" });
    expect((await ask(a, nurse, "catalog.list")).allowed).toBe(false);
  });

  it("is asked for every call a node serves; identity forged in metadata counts for nothing", async () => {
    const records = defineService({
      name: "records",
      version: "1.0.0",
      actions: {
        get: { input: z.object({ patientId: z.string() }), output: z.object({ id: z.string() }) },
      },
    });
    let ran = 0;
    const network = createEmbeddedNetwork();
    const warnings: unknown[] = [];
    const logger: Logger = {
      debug() {},
      info() {},
      warn: (fields) => warnings.push(fields),
      error() {},
      child: () => logger,
    };
    const server = createNode({
      id: "records-node",
      transport: network.transport(),
      services: [records.implement({ get: ({ patientId }) => (ran++, { id: patientId }) })],
      authorizer: await authorizer(),
      logger,
    });
    const client = createNode({ id: "caller", transport: network.transport() });
    await server.start();
    await client.start();
    closers.push(async () => {
      await client.stop({ drainTimeoutMs: 50 });
      await server.stop({ drainTimeoutMs: 50 });
    });
    await client.waitForService("records");
    const error = await client
      .client(records)
      .get({ patientId: "p-1" }, { meta: { principal: "nina", role: "nurse", sub: "nina" } })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStrataError(error, "PERMISSION_DENIED")).toBe(true);
    expect(ran).toBe(0);
    expect(server.stats().denied).toBe(1);
    expect(warnings).toContainEqual(
      expect.objectContaining({ principal: "anonymous", reason: "no policy permits records.get" }),
    );
  });

  it("authorizes the principal a gateway node gives its client, across nodes", async () => {
    const records = defineService({
      name: "records",
      version: "1.0.0",
      actions: {
        get: { input: z.object({ patientId: z.string() }), output: z.object({ id: z.string() }) },
      },
    });
    const network = createEmbeddedNetwork();
    const server = createNode({
      id: "records-2",
      transport: network.transport(),
      services: [records.implement({ get: ({ patientId }) => ({ id: patientId }) })],
      authorizer: await authorizer(),
    });
    const gateway = createNode({ id: "gateway-2", transport: network.transport() });
    await server.start();
    await gateway.start();
    closers.push(async () => {
      await gateway.stop({ drainTimeoutMs: 50 });
      await server.stop({ drainTimeoutMs: 50 });
    });
    await gateway.waitForService("records");
    await expect(
      gateway.client(records, { principal: nurse }).get({ patientId: "p-7" }),
    ).resolves.toEqual({ id: "p-7" });
    await expect(
      gateway.client(records, { principal: patient }).get({ patientId: "p-1" }),
    ).resolves.toEqual({ id: "p-1" });
    const denied = await gateway
      .client(records, { principal: patient })
      .get({ patientId: "p-2" })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(isStrataError(denied, "PERMISSION_DENIED")).toBe(true);
    expect(server.stats()).toMatchObject({ authorized: 2, denied: 1 });
  });

  it("reloads edited policy files without a restart, and keeps the old set when an edit does not parse", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-policies-"));
    dirs.push(dir);
    await writeFile(join(dir, "records.cedar"), POLICIES);
    await writeFile(join(dir, "resources.json"), JSON.stringify(RESOURCES));
    const a = await authorizer({ dir, resources: {} });
    expect((await ask(a, patient, "records.get", { patientId: "p-2" })).allowed).toBe(false);
    await writeFile(
      join(dir, "extra.cedar"),
      'permit (principal == User::"paul", action == Action::"records.get", resource);',
    );
    await waitFor(async () => (await ask(a, patient, "records.get", { patientId: "p-2" })).allowed);
    const version = a.version;
    await writeFile(join(dir, "broken.cedar"), "permit (principal, action, resource"); // no ;
    await expect(a.reload()).rejects.toThrow(/does not parse/);
    expect(a.version).toBe(version);
    expect((await ask(a, patient, "records.get", { patientId: "p-2" })).allowed).toBe(true);
  });

  it("runs a policy folder's test cases", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strata-policy-tests-"));
    dirs.push(dir);
    await writeFile(join(dir, "records.cedar"), POLICIES);
    await writeFile(join(dir, "resources.json"), JSON.stringify(RESOURCES));
    await writeFile(
      join(dir, "records.test.json"),
      JSON.stringify([
        {
          name: "nurse reads",
          principal: nurse,
          action: "records.get",
          input: { patientId: "p-3" },
          expect: "allow",
        },
        {
          name: "anonymous is denied",
          principal: null,
          action: "records.get",
          input: { patientId: "p-1" },
          expect: "deny",
        },
        {
          name: "wrong expectation",
          principal: patient,
          action: "records.get",
          input: { patientId: "p-2" },
          expect: "allow",
        },
      ]),
    );
    const report = await runPolicyTests(dir);
    expect(report.passed).toBe(2);
    expect(report.failed).toEqual([
      {
        file: "records.test.json",
        name: "wrong expectation",
        expected: "allow",
        got: "deny",
        reason: "no policy permits records.get",
      },
    ]);
    await writeFile(
      join(dir, "bad.test.json"),
      JSON.stringify([{ name: "x", action: "nodot", expect: "allow" }]),
    );
    await expect(runPolicyTests(dir)).rejects.toThrow(/service.action/);
  });

  it("refuses unusable configuration", async () => {
    await expect(createCedarAuthorizer({})).rejects.toThrow(/exactly one/);
    await expect(createCedarAuthorizer({ policies: "permit (principal" })).rejects.toThrow(
      /does not parse/,
    );
  });
});
