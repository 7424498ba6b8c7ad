/**
 * The Kubernetes actuator: scales one Deployment per service through the Deployment's `scale`
 * subresource (`/apis/apps/v1/namespaces/{ns}/deployments/{name}/scale`).
 *
 * It talks to the API server with `@kubernetes/client-node`, the official client maintained by
 * Kubernetes SIG API Machinery: it reads kubeconfig files and in-cluster service-account
 * credentials (token rotation, exec plugins, client certificates) exactly as kubectl does, which
 * is the part worth not writing ourselves. The 1.x line is used because 2.x depends on an HTTP
 * stack that needs Node 22, and Strata supports Node 20; the object-parameter API used here is the
 * same in both lines.
 *
 * Writes are a `replace` (PUT) of the Scale object carrying the `resourceVersion` just read, not
 * a merge patch: the actuator reads the scale anyway (to skip the write when nothing changes), and
 * sending the version it read makes "read, compare, write" one optimistic transaction. If anyone
 * else (kubectl, an HPA, a second autoscaler) changed the scale in between, the API server answers
 * 409 Conflict and the actuator re-reads, compares again and retries, instead of silently
 * overwriting a change it never saw. A merge patch would always win and so could never notice.
 */
import {
  ApiException,
  AppsV1Api,
  KubeConfig,
  Observable,
  type ConfigurationOptions,
  type V1Scale,
} from "@kubernetes/client-node";
import { StrataError, isStrataError, systemClock, type Clock, type ErrorCode } from "@strata/core";
import type { Actuator } from "../types.js";

/** Where the cluster's address and credentials come from. */
export type KubeConnection =
  /** A KubeConfig the caller built (tests point one at a fake API server). */
  | { readonly type: "config"; readonly config: KubeConfig }
  /** A kubeconfig file, optionally with a context other than its current one. */
  | { readonly type: "file"; readonly path: string; readonly context?: string }
  /** The pod's service account (token and CA mounted under /var/run/secrets). */
  | { readonly type: "in-cluster" }
  /** What kubectl does: `$KUBECONFIG`, then `~/.kube/config`, then the in-cluster account. */
  | { readonly type: "default" };

/** Something the actuator did, for logs and metrics. */
export type KubernetesActuatorEvent =
  | {
      readonly type: "scaled";
      readonly service: string;
      readonly deployment: string;
      readonly from: number;
      readonly to: number;
    }
  | {
      readonly type: "unchanged";
      readonly service: string;
      readonly deployment: string;
      readonly replicas: number;
    }
  | {
      readonly type: "conflict";
      readonly service: string;
      readonly deployment: string;
      /** 1 for the first conflict of this `scale` call. */
      readonly attempt: number;
      /** Jittered wait before re-reading (ms). */
      readonly retryInMs: number;
    };

/** Options for {@link createKubernetesActuator}. */
export interface KubernetesActuatorOptions {
  /** Default `{ type: "default" }`. */
  readonly connection?: KubeConnection;
  /** Namespace of the Deployments. Default: the kubeconfig context's namespace, else `default`. */
  readonly namespace?: string;
  /**
   * Deployment name for each service: a table (services not in it keep their own name) or a
   * function. Default: the service name itself.
   */
  readonly deployments?: Readonly<Record<string, string>> | ((service: string) => string);
  /** Recorded as the field manager of every write (`managedFields`). Default `strata-autoscale`. */
  readonly fieldManager?: string;
  /** Deadline for each HTTP request to the API server (ms). Default 10 000. */
  readonly requestTimeoutMs?: number;
  /** Conflicts tolerated in one `scale` call; the next one fails with `ABORTED`. Default 5. */
  readonly maxConflicts?: number;
  /** Base of the jittered exponential wait after a conflict (ms). Default 100, capped at 2 s. */
  readonly conflictBackoffMs?: number;
  /** Timers and jitter. Default `systemClock()`. */
  readonly clock?: Clock;
  /** Called synchronously for each event; exceptions it throws are swallowed. */
  readonly onEvent?: (event: KubernetesActuatorEvent) => void;
}

/** Per-call options of the Kubernetes actuator's methods. */
export interface KubernetesCallOptions {
  readonly signal?: AbortSignal;
}

/** An {@link Actuator} backed by Kubernetes Deployments; calls also accept an `AbortSignal`. */
export interface KubernetesActuator extends Actuator {
  readonly name: "kubernetes";
  readonly namespace: string;
  /** The Deployment that serves `service` (after the mapping). */
  deploymentFor(service: string): string;
  /** The Deployment's desired replicas (`spec.replicas` of its scale subresource). */
  replicas(service: string, options?: KubernetesCallOptions): Promise<number>;
  /**
   * Sets the Deployment's desired replicas to exactly `replicas`. No write when it already has
   * that many. Resolves when the API server accepted the change, not when pods are ready.
   */
  scale(service: string, replicas: number, options?: KubernetesCallOptions): Promise<void>;
}

/** The RBAC rule the actuator's service account needs, quoted in permission errors. */
export const KUBERNETES_ACTUATOR_RBAC_RULE =
  'apiGroups: ["apps"], resources: ["deployments/scale"], verbs: ["get", "update", "patch"]';

const DEFAULT_FIELD_MANAGER = "strata-autoscale";
const DEFAULT_TIMEOUT_MS = 10_000;
const DEFAULT_MAX_CONFLICTS = 5;
const DEFAULT_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 2_000;
/** Upper bound of `spec.replicas` (int32 in the API). */
const MAX_REPLICAS = 2_147_483_647;
const MAX_MESSAGE = 300;

// DNS-1123 subdomain (Deployment names) and label (namespaces), as the API server validates them.
const SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * Creates an actuator that scales Kubernetes Deployments through their scale subresource.
 *
 * @example
 * const actuator = createKubernetesActuator({
 *   connection: { type: "in-cluster" },
 *   namespace: "shop",
 *   deployments: { orders: "orders-service" },
 * });
 * await actuator.scale("orders", 4);
 */
export function createKubernetesActuator(
  options: KubernetesActuatorOptions = {},
): KubernetesActuator {
  const kubeConfig = loadKubeConfig(options.connection ?? { type: "default" });
  const namespace = options.namespace ?? contextNamespace(kubeConfig) ?? "default";
  if (!LABEL.test(namespace) || namespace.length > 63) {
    throw new StrataError("INVALID_ARGUMENT", `invalid Kubernetes namespace "${namespace}"`);
  }
  const api = kubeConfig.makeApiClient(AppsV1Api);
  const clock = options.clock ?? systemClock();
  const fieldManager = options.fieldManager ?? DEFAULT_FIELD_MANAGER;
  const timeoutMs = positive(options.requestTimeoutMs, DEFAULT_TIMEOUT_MS, "requestTimeoutMs");
  const maxConflicts = positive(options.maxConflicts, DEFAULT_MAX_CONFLICTS, "maxConflicts");
  const backoffMs = positive(options.conflictBackoffMs, DEFAULT_BACKOFF_MS, "conflictBackoffMs");
  const mapping = options.deployments;

  const emit = (event: KubernetesActuatorEvent): void => {
    try {
      options.onEvent?.(event);
    } catch {
      // An observer's failure must not turn a successful scale into a failed one.
    }
  };

  const deploymentFor = (service: string): string => {
    const name =
      typeof mapping === "function"
        ? mapping(service)
        : mapping !== undefined && Object.hasOwn(mapping, service)
          ? mapping[service]
          : service;
    if (typeof name !== "string" || name.length > 253 || !SUBDOMAIN.test(name)) {
      throw new StrataError(
        "INVALID_ARGUMENT",
        `service "${service}" maps to "${String(name)}", which is not a valid Deployment name; ` +
          "map it with the `deployments` option",
        { details: { service } },
      );
    }
    return name;
  };

  /** Runs one API request under the per-request deadline and the caller's signal. */
  const request = async <T>(
    call: (config: ConfigurationOptions) => Promise<T>,
    target: Target,
    signal: AbortSignal | undefined,
  ): Promise<T> => {
    if (signal?.aborted === true) {
      throw new StrataError("CANCELLED", `scaling ${describe(target)} was cancelled`, {
        cause: signal.reason,
        details: detailsOf(target),
      });
    }
    const controller = new AbortController();
    let timedOut = false;
    const timer = clock.setTimer(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = (): void => controller.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      return await call(withSignal(controller.signal));
    } catch (error) {
      if (timedOut) {
        throw new StrataError(
          "DEADLINE_EXCEEDED",
          `Kubernetes API did not answer within ${timeoutMs} ms (${describe(target)})`,
          { retryable: true, cause: error, details: detailsOf(target) },
        );
      }
      // Read through a function: the compiler narrowed `aborted` to false above the await.
      if (isAborted(signal)) {
        throw new StrataError("CANCELLED", `scaling ${describe(target)} was cancelled`, {
          cause: error,
          details: detailsOf(target),
        });
      }
      throw mapError(error, target);
    } finally {
      timer.clear();
      signal?.removeEventListener("abort", onAbort);
    }
  };

  const read = async (target: Target, signal: AbortSignal | undefined): Promise<ScaleState> => {
    const scale = await request(
      (config) => api.readNamespacedDeploymentScale({ name: target.deployment, namespace }, config),
      target,
      signal,
    );
    return parseScale(scale, target);
  };

  const sleep = (ms: number, target: Target, signal: AbortSignal | undefined): Promise<void> =>
    new Promise((resolve, reject) => {
      const cancelled = (): StrataError =>
        new StrataError("CANCELLED", `scaling ${describe(target)} was cancelled`, {
          cause: signal?.reason,
          details: detailsOf(target),
        });
      if (signal?.aborted === true) {
        reject(cancelled());
        return;
      }
      const onAbort = (): void => {
        timer.clear();
        reject(cancelled());
      };
      const timer = clock.setTimer(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, ms);
      signal?.addEventListener("abort", onAbort, { once: true });
    });

  return {
    name: "kubernetes",
    namespace,
    deploymentFor,

    async replicas(service, callOptions = {}) {
      const target = { service, deployment: deploymentFor(service), namespace };
      return (await read(target, callOptions.signal)).replicas;
    },

    async scale(service, replicas, callOptions = {}) {
      if (!Number.isSafeInteger(replicas) || replicas < 0 || replicas > MAX_REPLICAS) {
        throw new StrataError(
          "INVALID_ARGUMENT",
          `replicas must be a whole number from 0 to ${MAX_REPLICAS}, got ${replicas}`,
          { details: { service } },
        );
      }
      const target = { service, deployment: deploymentFor(service), namespace };
      const signal = callOptions.signal;
      for (let conflicts = 0; ;) {
        const current = await read(target, signal);
        if (current.replicas === replicas) {
          emit({ type: "unchanged", service, deployment: target.deployment, replicas });
          return;
        }
        const body: V1Scale = {
          apiVersion: "autoscaling/v1",
          kind: "Scale",
          metadata: {
            name: target.deployment,
            namespace,
            resourceVersion: current.resourceVersion,
          },
          spec: { replicas },
        };
        try {
          await request(
            (config) =>
              api.replaceNamespacedDeploymentScale(
                { name: target.deployment, namespace, body, fieldManager },
                config,
              ),
            target,
            signal,
          );
          emit({
            type: "scaled",
            service,
            deployment: target.deployment,
            from: current.replicas,
            to: replicas,
          });
          return;
        } catch (error) {
          if (!isStrataError(error) || error.details["status"] !== 409) throw error;
          conflicts++;
          if (conflicts >= maxConflicts) {
            throw new StrataError(
              "ABORTED",
              `scaling ${describe(target)} to ${replicas} gave up after ${conflicts} conflicts: ` +
                "something else keeps changing its replicas (an HPA or another autoscaler?)",
              { retryable: true, cause: error, details: { ...detailsOf(target), conflicts } },
            );
          }
          // Full jitter: concurrent writers that collided once should not collide again.
          const ceiling = Math.min(MAX_BACKOFF_MS, backoffMs * 2 ** (conflicts - 1));
          const retryInMs = Math.floor(clock.random() * ceiling);
          emit({
            type: "conflict",
            service,
            deployment: target.deployment,
            attempt: conflicts,
            retryInMs,
          });
          await sleep(retryInMs, target, signal);
        }
      }
    },
  };
}

interface Target {
  readonly service: string;
  readonly deployment: string;
  readonly namespace: string;
}

interface ScaleState {
  readonly replicas: number;
  readonly resourceVersion: string;
}

function loadKubeConfig(connection: KubeConnection): KubeConfig {
  if (connection.type === "config") return connection.config;
  const config = new KubeConfig();
  try {
    switch (connection.type) {
      case "file":
        config.loadFromFile(connection.path);
        if (connection.context !== undefined) config.setCurrentContext(connection.context);
        break;
      case "in-cluster":
        config.loadFromCluster();
        break;
      case "default":
        config.loadFromDefault();
        break;
    }
  } catch (error) {
    throw new StrataError(
      "FAILED_PRECONDITION",
      `cannot load the Kubernetes configuration (${connection.type})`,
      { cause: error },
    );
  }
  if (config.getCurrentCluster() === null) {
    throw new StrataError(
      "FAILED_PRECONDITION",
      `the Kubernetes configuration (${connection.type}) names no current cluster`,
    );
  }
  return config;
}

function contextNamespace(config: KubeConfig): string | undefined {
  const namespace = config.getContextObject(config.getCurrentContext())?.namespace;
  return typeof namespace === "string" && namespace !== "" ? namespace : undefined;
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) {
    throw new StrataError("INVALID_ARGUMENT", `${name} must be a positive number, got ${value}`);
  }
  return value;
}

/** Request options that attach `signal` to the underlying fetch. */
function withSignal(signal: AbortSignal): ConfigurationOptions {
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(signal);
          return new Observable(Promise.resolve(context));
        },
        post: (context) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: "append",
  };
}

function isAborted(signal: AbortSignal | undefined): boolean {
  return signal?.aborted === true;
}

function describe(target: Target): string {
  return `deployment ${target.namespace}/${target.deployment}`;
}

function detailsOf(target: Target): Record<string, unknown> {
  return { service: target.service, namespace: target.namespace, deployment: target.deployment };
}

/** Checks what the API server sent: a hostile or broken proxy must not scale to nonsense. */
function parseScale(scale: unknown, target: Target): ScaleState {
  const malformed = (what: string): StrataError =>
    new StrataError(
      "INTERNAL",
      `malformed scale of ${describe(target)} from the Kubernetes API: ${what}`,
      { details: detailsOf(target) },
    );
  if (typeof scale !== "object" || scale === null) throw malformed("not an object");
  const { metadata, spec } = scale as { metadata?: unknown; spec?: unknown };
  if (typeof spec !== "object" || spec === null) throw malformed("no spec");
  // autoscaling/v1 ScaleSpec omits `replicas` when it is 0 (omitempty), so absent means zero.
  const replicas = (spec as { replicas?: unknown }).replicas ?? 0;
  if (typeof replicas !== "number" || !Number.isSafeInteger(replicas) || replicas < 0) {
    throw malformed("spec.replicas is not a non-negative integer");
  }
  const resourceVersion =
    typeof metadata === "object" && metadata !== null
      ? (metadata as { resourceVersion?: unknown }).resourceVersion
      : undefined;
  if (typeof resourceVersion !== "string" || resourceVersion === "") {
    throw malformed("no metadata.resourceVersion");
  }
  return { replicas, resourceVersion };
}

/** Maps anything the client threw to a StrataError with an actionable message. */
function mapError(error: unknown, target: Target): StrataError {
  if (isStrataError(error)) return error;
  if (error instanceof ApiException) {
    const status = typeof error.code === "number" ? error.code : 0;
    const apiMessage = statusMessage(error.body);
    const details: Record<string, unknown> = { ...detailsOf(target), status };
    const retryAfter = retryAfterMs(error.headers);
    if (retryAfter !== undefined) details["retryAfterMs"] = retryAfter;
    const suffix = apiMessage === undefined ? "" : `: ${apiMessage}`;
    const make = (code: ErrorCode, message: string, retryable?: boolean): StrataError =>
      new StrataError(code, message, {
        cause: error,
        details,
        ...(retryable === undefined ? {} : { retryable }),
      });
    if (status === 401) {
      return make(
        "UNAUTHENTICATED",
        `the Kubernetes API rejected the actuator's credentials (401) for ${describe(target)}; ` +
          "check the kubeconfig user or the service-account token",
      );
    }
    if (status === 403) {
      return make(
        "PERMISSION_DENIED",
        `the Kubernetes API denied access to ${describe(target)}/scale (403); grant the ` +
          `actuator's service account a Role in namespace "${target.namespace}" with the rule ` +
          `{ ${KUBERNETES_ACTUATOR_RBAC_RULE} }`,
      );
    }
    if (status === 404) {
      return make(
        "NOT_FOUND",
        `${describe(target)} does not exist (service "${target.service}"); create it or map the ` +
          "service to an existing Deployment with the `deployments` option",
      );
    }
    if (status === 409) {
      return make("ABORTED", `conflict writing ${describe(target)}${suffix}`, true);
    }
    if (status === 400 || status === 422) {
      return make("INVALID_ARGUMENT", `the Kubernetes API refused the scale${suffix}`);
    }
    if (status === 429 || status >= 500) {
      return make(
        "UNAVAILABLE",
        `the Kubernetes API is unavailable (${status}) for ${describe(target)}${suffix}`,
        true,
      );
    }
    return make("UNKNOWN", `unexpected ${status} from the Kubernetes API${suffix}`);
  }
  if (error instanceof SyntaxError) {
    return new StrataError(
      "INTERNAL",
      `malformed response from the Kubernetes API for ${describe(target)}: not JSON`,
      { cause: error, details: detailsOf(target) },
    );
  }
  const code = (error as { code?: unknown } | null)?.code;
  const type = (error as { type?: unknown } | null)?.type;
  if (type === "system" || (typeof code === "string" && /^E[A-Z]+$/.test(code))) {
    return new StrataError(
      "UNAVAILABLE",
      `cannot reach the Kubernetes API for ${describe(target)}` +
        (typeof code === "string" ? ` (${code})` : ""),
      { retryable: true, cause: error, details: detailsOf(target) },
    );
  }
  return new StrataError(
    "INTERNAL",
    `unexpected failure talking to the Kubernetes API for ${describe(target)}`,
    { cause: error, details: detailsOf(target) },
  );
}

/** The `message` of a Kubernetes `Status` body, shortened; undefined when there is none. */
function statusMessage(body: unknown): string | undefined {
  let value = body;
  if (typeof value === "string") {
    try {
      value = JSON.parse(value);
    } catch {
      return undefined;
    }
  }
  const message = (value as { message?: unknown } | null)?.message;
  if (typeof message !== "string" || message === "") return undefined;
  return message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message;
}

function retryAfterMs(headers: Readonly<Record<string, string>> | undefined): number | undefined {
  const raw = headers?.["retry-after"];
  if (raw === undefined) return undefined;
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 0 ? Math.round(seconds * 1000) : undefined;
}
