import { watch, type FSWatcher } from "node:fs";
import { readFile, readdir } from "node:fs/promises";
import { join } from "node:path";
import * as cedar from "@cedar-policy/cedar-wasm/nodejs";
import {
  StrataError,
  silentLogger,
  systemClock,
  type AuthorizationDecision,
  type AuthorizationRequest,
  type Authorizer,
  type Clock,
  type Logger,
  type Principal,
} from "@strata/core";

/** Where an action's resource comes from: an entity type and the input field holding its id. */
export interface CedarResource {
  readonly type: string;
  readonly field: string;
}

/** Options of {@link createCedarAuthorizer}. */
export interface CedarAuthorizerOptions {
  /** A folder of `*.cedar` files; reloaded when they change (unless `watch` is false). */
  readonly dir?: string;
  /** Or the policies as text. */
  readonly policies?: string;
  /**
   * The resource of each action (`"service.action"`), from a declared input field; an action not
   * listed has the resource `Service::"<service>"`. With `dir`, also read from `resources.json`.
   */
  readonly resources?: Readonly<Record<string, CedarResource>>;
  /** Reload on file changes; default true with `dir`. */
  readonly watch?: boolean;
  readonly logger?: Logger;
  readonly clock?: Clock;
}

/** A Cedar authorizer: the node's `authorizer`, plus reloading and counts. */
export interface CedarAuthorizer extends Authorizer, AsyncDisposable {
  /** Loads the policies again; a set that does not parse is refused and the old one kept. */
  reload(): Promise<void>;
  /** How many policy sets were loaded so far (1 after creation). */
  readonly version: number;
  /** Decisions so far, and denials by reason. */
  stats(): { allowed: number; denied: number; denials: Record<string, number> };
  close(): Promise<void>;
}

interface Loaded {
  readonly id: string;
  readonly resources: Readonly<Record<string, CedarResource>>;
}

type CedarValue = cedar.CedarValueJson;

/** Authorizers created in this process (their preparsed policy sets share one table). */
let instances = 0;

/**
 * Authorization with Cedar policies, asked for every call. The request is:
 * - principal `User::"<sub>"` (claims as attributes, `roles`/`groups` claims as `Role` parents),
 *   `Workload::"<spiffe id>"`, `Node::"<id>"`, or `Anonymous::"anonymous"` when nothing
 *   authenticated the caller;
 * - action `Action::"<service>.<action>"`;
 * - resource from a declared input field, else `Service::"<service>"`;
 * - context `{ time (epoch seconds), callerNode, workload? }` (`workload`: the SPIFFE ID a
 *   signed call envelope proved; absent for in-process and unsigned calls).
 * Cedar denies by default: without a permit, a call is denied; a forbid always wins.
 */
export async function createCedarAuthorizer(
  options: CedarAuthorizerOptions,
): Promise<CedarAuthorizer> {
  if ((options.dir === undefined) === (options.policies === undefined)) {
    throw new StrataError("INVALID_ARGUMENT", "give exactly one of dir and policies");
  }
  const logger = options.logger ?? silentLogger;
  const clock = options.clock ?? systemClock();
  let version = 0;
  const instance = ++instances;
  let current: Loaded | undefined;
  let allowed = 0;
  let denied = 0;
  const denials: Record<string, number> = {};

  const load = async (): Promise<Loaded> => {
    const parts: Record<string, string> = {};
    let resources: Record<string, CedarResource> = { ...options.resources };
    if (options.policies !== undefined) {
      splitInto(parts, "inline", options.policies);
    } else {
      const dir = options.dir as string;
      const files = (await readdir(dir)).filter((f) => f.endsWith(".cedar")).sort();
      for (const file of files) splitInto(parts, file, await readFile(join(dir, file), "utf8"));
      const fromFile = await readResources(join(dir, "resources.json"));
      resources = { ...fromFile, ...resources };
    }
    // cedar-wasm keeps preparsed sets in one table per process: the id must be unique across
    // authorizers, or a second authorizer would replace the first one's policies.
    const id = `strata-policies-${instance}-${++version}`;
    const answer = cedar.preparsePolicySet(id, { staticPolicies: parts });
    if (answer.type === "failure") {
      version--;
      throw new StrataError(
        "INVALID_ARGUMENT",
        `policies do not parse: ${answer.errors.map((e) => e.message).join("; ")}`,
      );
    }
    return { id, resources };
  };

  current = await load();
  let watcher: FSWatcher | undefined;
  let timer: { clear(): void } | undefined;
  const reload = async (): Promise<void> => {
    current = await load();
    logger.info({ version }, "policies reloaded");
  };
  if (options.dir !== undefined && options.watch !== false) {
    // Editors write files in several steps: reload once the folder has been quiet for 50 ms.
    watcher = watch(options.dir, () => {
      timer?.clear();
      timer = clock.setTimer(() => {
        reload().catch((error: unknown) =>
          logger.error(
            { err: error instanceof Error ? error.message : String(error) },
            "policy reload refused; the previous policies stay in force",
          ),
        );
      }, 50);
    });
    watcher.unref();
  }

  const deny = (reason: string): AuthorizationDecision => {
    denied++;
    denials[reason] = (denials[reason] ?? 0) + 1;
    return { allowed: false, reason };
  };

  const authorize = (request: AuthorizationRequest): AuthorizationDecision => {
    const loaded = current as Loaded;
    const key = `${request.service}.${request.action}`;
    const declared = loaded.resources[key];
    let resource: cedar.EntityUidJson = { type: "Service", id: request.service };
    if (declared !== undefined) {
      const value =
        typeof request.input === "object" && request.input !== null
          ? (request.input as Record<string, unknown>)[declared.field]
          : undefined;
      if (typeof value !== "string" && typeof value !== "number") {
        return deny(`no resource: input field ${declared.field} is missing`);
      }
      resource = { type: declared.type, id: String(value) };
    }
    const { uid, entities } = principalEntities(request.principal);
    const answer = cedar.statefulIsAuthorized({
      principal: uid,
      action: { type: "Action", id: key },
      resource,
      context: {
        time: Math.floor(clock.now() / 1000),
        callerNode: request.callerNode,
        // The workload a signed envelope proved, also when it vouches for a user: policies can
        // require that users reach an action only through the gateway (`context.workload == …`).
        ...(request.workload === undefined ? {} : { workload: request.workload }),
      },
      preparsedPolicySetId: loaded.id,
      entities,
    });
    if (answer.type === "failure") {
      return deny(`policy evaluation failed: ${answer.errors.map((e) => e.message).join("; ")}`);
    }
    const { decision, diagnostics } = answer.response;
    if (diagnostics.errors.length > 0) {
      logger.warn(
        { errors: diagnostics.errors.map((e) => `${e.policyId}: ${e.error.message}`) },
        "policy errors during evaluation",
      );
    }
    if (decision === "allow") {
      allowed++;
      return { allowed: true };
    }
    return deny(
      diagnostics.reason.length > 0
        ? `forbidden by ${diagnostics.reason.join(", ")}`
        : `no policy permits ${key}`,
    );
  };

  const close = async (): Promise<void> => {
    timer?.clear();
    watcher?.close();
    await Promise.resolve();
  };
  return {
    authorize,
    reload,
    get version() {
      return version;
    },
    stats: () => ({ allowed, denied, denials: { ...denials } }),
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** Splits a file's text into single policies, id `<file>#<n>`. */
function splitInto(parts: Record<string, string>, file: string, text: string): void {
  const answer = cedar.policySetTextToParts(text);
  if (answer.type === "failure") {
    throw new StrataError(
      "INVALID_ARGUMENT",
      `${file} does not parse: ${answer.errors.map((e) => e.message).join("; ")}`,
    );
  }
  answer.policies.forEach((policy, i) => {
    parts[`${file}#${i}`] = policy;
  });
  if (answer.policy_templates.length > 0) {
    throw new StrataError("INVALID_ARGUMENT", `${file}: policy templates are not supported`);
  }
}

async function readResources(path: string): Promise<Record<string, CedarResource>> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch {
    return {};
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new StrataError("INVALID_ARGUMENT", `${path} is not JSON`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new StrataError("INVALID_ARGUMENT", `${path} must map "service.action" to a resource`);
  }
  const out: Record<string, CedarResource> = {};
  for (const [key, r] of Object.entries(value as Record<string, unknown>)) {
    const rr = r as { type?: unknown; field?: unknown } | null;
    if (typeof rr?.type !== "string" || typeof rr.field !== "string") {
      throw new StrataError("INVALID_ARGUMENT", `${path}: ${key} needs a string type and field`);
    }
    out[key] = { type: rr.type, field: rr.field };
  }
  return out;
}

/** The Cedar principal of a Strata principal, with the entities its policies may look at. */
function principalEntities(principal: Principal | undefined): {
  uid: cedar.EntityUidJson;
  entities: cedar.EntityJson[];
} {
  if (principal === undefined) {
    return { uid: { type: "Anonymous", id: "anonymous" }, entities: [] };
  }
  if (principal.kind !== "user") {
    const type = principal.kind === "node" ? "Node" : "Workload";
    const uid = { type, id: principal.id };
    return { uid, entities: [{ uid, attrs: {}, parents: [] }] };
  }
  const uid = { type: "User", id: principal.subject };
  const attrs: Record<string, CedarValue> = {};
  for (const [key, value] of Object.entries(principal.claims)) {
    const converted = toCedar(value, 0);
    if (converted !== undefined) attrs[key] = converted;
  }
  const roles = [principal.claims.roles, principal.claims.groups]
    .flatMap((v): unknown[] => (Array.isArray(v) ? (v as unknown[]) : []))
    .filter((v): v is string => typeof v === "string")
    .slice(0, 64);
  const parents = roles.map((id) => ({ type: "Role", id }));
  return {
    uid,
    entities: [
      { uid, attrs, parents },
      ...parents.map((p) => ({ uid: p, attrs: {}, parents: [] })),
    ],
  };
}

/** Claims as Cedar values: strings, booleans, integers, lists and records of them. */
function toCedar(value: unknown, depth: number): CedarValue | undefined {
  if (depth > 4) return undefined;
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  if (Array.isArray(value)) {
    const items: CedarValue[] = [];
    for (const v of value as unknown[]) {
      const c = toCedar(v, depth + 1);
      if (c === undefined) return undefined;
      items.push(c);
    }
    return items;
  }
  if (typeof value === "object" && value !== null) {
    const out: Record<string, CedarValue> = {};
    for (const [k, v] of Object.entries(value)) {
      const c = toCedar(v, depth + 1);
      if (c !== undefined) out[k] = c;
    }
    return out;
  }
  return undefined;
}
