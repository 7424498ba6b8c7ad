/**
 * A fake Kubernetes API server for tests: just enough of apps/v1 Deployments' `scale`
 * subresource (GET, PUT, merge-patch PATCH) with real `resourceVersion` semantics, bearer-token
 * authentication, injectable faults and a record of every request. No cluster runs in CI, and a
 * mocked client would not show what goes over the wire.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

/** One request the fake received. */
export interface RecordedRequest {
  readonly method: string;
  readonly path: string;
  readonly query: Readonly<Record<string, string>>;
  readonly contentType: string | undefined;
  readonly authorization: string | undefined;
  /** Parsed JSON body, the raw text when it is not JSON, undefined when empty. */
  readonly body: unknown;
}

/** Which requests a fault applies to. */
export interface FaultMatch {
  readonly method?: "GET" | "PUT" | "PATCH";
  readonly deployment?: string;
}

/** A fault to inject; each applies to the next `times` matching requests (default 1). */
export type FakeKubeFault =
  /** Answers with a Kubernetes `Status` of this code (403, 404, 409, 429, 500 …). */
  | { readonly type: "status"; readonly status: number; readonly retryAfterSeconds?: number }
  /** Another writer changes the replicas just before this request is served. */
  | { readonly type: "external-write"; readonly replicas: number }
  /** Waits before serving the request normally. */
  | { readonly type: "delay"; readonly ms: number }
  /** Answers with exactly this body, whatever it is. */
  | {
      readonly type: "raw";
      readonly status: number;
      readonly contentType: string;
      readonly body: string;
    };

/** A running fake API server. */
export interface FakeKube extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  readonly url: string;
  readonly token: string;
  /** Every request received, in order. */
  readonly requests: RecordedRequest[];
  /** A KubeConfig pointing at the fake with its bearer token (or another one, to test 401). */
  kubeConfig(options?: { namespace?: string; token?: string }): KubeConfig;
  /** Creates or overwrites a Deployment; bumps its resourceVersion. */
  setDeployment(namespace: string, name: string, replicas: number): void;
  /** A Deployment's state, or undefined when it does not exist. */
  deployment(
    namespace: string,
    name: string,
  ): { readonly replicas: number; readonly resourceVersion: string } | undefined;
  /** Adds a fault for the next `times` requests matching `match`. */
  inject(fault: FakeKubeFault, options?: { times?: number; match?: FaultMatch }): void;
  close(): Promise<void>;
}

interface Deployment {
  replicas: number;
  resourceVersion: number;
}

interface PendingFault {
  readonly fault: FakeKubeFault;
  readonly match: FaultMatch;
  left: number;
}

const SCALE_PATH = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)\/scale$/;

/**
 * Starts a fake API server on a free loopback port.
 *
 * @example
 * await using kube = await startFakeKube();
 * kube.setDeployment("default", "orders", 2);
 * const config = kube.kubeConfig();
 */
export async function startFakeKube(options: { token?: string } = {}): Promise<FakeKube> {
  const token = options.token ?? "fake-token";
  const deployments = new Map<string, Deployment>();
  const requests: RecordedRequest[] = [];
  const faults: PendingFault[] = [];
  // One counter for the whole "cluster", as etcd's revision is.
  let revision = 100;
  const key = (namespace: string, name: string): string => `${namespace}/${name}`;

  const setDeployment = (namespace: string, name: string, replicas: number): void => {
    deployments.set(key(namespace, name), { replicas, resourceVersion: ++revision });
  };

  const takeFault = (method: string, deployment: string | undefined): FakeKubeFault | undefined => {
    const index = faults.findIndex(
      (pending) =>
        pending.left > 0 &&
        (pending.match.method === undefined || pending.match.method === method) &&
        (pending.match.deployment === undefined || pending.match.deployment === deployment),
    );
    const pending = faults[index];
    if (pending === undefined) return undefined;
    pending.left--;
    if (pending.left === 0) faults.splice(index, 1);
    return pending.fault;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://fake");
    const text = await readBody(req);
    let body: unknown = undefined;
    if (text !== "") {
      try {
        body = JSON.parse(text);
      } catch {
        body = text;
      }
    }
    const method = req.method ?? "GET";
    requests.push({
      method,
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      contentType: req.headers["content-type"],
      authorization: req.headers.authorization,
      body,
    });

    if (req.headers.authorization !== `Bearer ${token}`) {
      sendStatus(res, 401, "Unauthorized", "Unauthorized");
      return;
    }
    const match = SCALE_PATH.exec(url.pathname);
    if (match === null) {
      sendStatus(res, 404, "NotFound", "the server could not find the requested resource");
      return;
    }
    const namespace = decodeURIComponent(match[1] ?? "");
    const name = decodeURIComponent(match[2] ?? "");

    for (let fault = takeFault(method, name); fault !== undefined;) {
      switch (fault.type) {
        case "status": {
          const reason = REASONS[fault.status] ?? "InternalError";
          if (fault.retryAfterSeconds !== undefined) {
            res.setHeader("retry-after", String(fault.retryAfterSeconds));
          }
          sendStatus(res, fault.status, reason, `injected ${fault.status} (${reason})`);
          return;
        }
        case "raw":
          res.writeHead(fault.status, { "content-type": fault.contentType });
          res.end(fault.body);
          return;
        case "external-write":
          if (deployments.has(key(namespace, name))) {
            setDeployment(namespace, name, fault.replicas);
          }
          break;
        case "delay": {
          const ms = fault.ms;
          await new Promise((resolve) => setTimeout(resolve, ms));
          break;
        }
      }
      fault = takeFault(method, name);
    }

    const deployment = deployments.get(key(namespace, name));
    if (deployment === undefined) {
      sendStatus(res, 404, "NotFound", `deployments.apps "${name}" not found`);
      return;
    }
    switch (method) {
      case "GET":
        sendJson(res, 200, scaleOf(namespace, name, deployment));
        return;
      case "PUT":
      case "PATCH": {
        if (method === "PATCH" && req.headers["content-type"] !== "application/merge-patch+json") {
          sendStatus(res, 415, "UnsupportedMediaType", "only merge patches are served here");
          return;
        }
        const write = parseWrite(body, method === "PUT");
        if (typeof write === "string") {
          sendStatus(res, 422, "Invalid", write);
          return;
        }
        if (write.name !== undefined && write.name !== name) {
          sendStatus(res, 400, "BadRequest", "the name of the object does not match the URL");
          return;
        }
        if (
          write.resourceVersion !== undefined &&
          write.resourceVersion !== String(deployment.resourceVersion)
        ) {
          sendStatus(
            res,
            409,
            "Conflict",
            `Operation cannot be fulfilled on deployments.apps "${name}": the object has been ` +
              "modified; please apply your changes to the latest version and try again",
          );
          return;
        }
        if (write.replicas !== undefined) {
          deployment.replicas = write.replicas;
          deployment.resourceVersion = ++revision;
        }
        sendJson(res, 200, scaleOf(namespace, name, deployment));
        return;
      }
      default:
        sendStatus(res, 405, "MethodNotAllowed", `${method} is not supported`);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) sendStatus(res, 500, "InternalError", "fake failed");
      else res.destroy();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  const close = async (): Promise<void> => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };

  return {
    url,
    token,
    requests,
    kubeConfig(config = {}) {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        // The client only speaks plain HTTP when told to skip TLS verification.
        clusters: [{ name: "fake", server: url, skipTLSVerify: true }],
        users: [{ name: "fake", token: config.token ?? token }],
        contexts: [
          {
            name: "fake",
            cluster: "fake",
            user: "fake",
            ...(config.namespace === undefined ? {} : { namespace: config.namespace }),
          },
        ],
        currentContext: "fake",
      });
      return kc;
    },
    setDeployment,
    deployment(namespace, name) {
      const deployment = deployments.get(key(namespace, name));
      return deployment === undefined
        ? undefined
        : { replicas: deployment.replicas, resourceVersion: String(deployment.resourceVersion) };
    },
    inject(fault, injectOptions = {}) {
      faults.push({ fault, match: injectOptions.match ?? {}, left: injectOptions.times ?? 1 });
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

const REASONS: Readonly<Record<number, string>> = {
  400: "BadRequest",
  401: "Unauthorized",
  403: "Forbidden",
  404: "NotFound",
  409: "Conflict",
  422: "Invalid",
  429: "TooManyRequests",
  500: "InternalError",
  503: "ServiceUnavailable",
};

function scaleOf(namespace: string, name: string, deployment: Deployment): unknown {
  return {
    kind: "Scale",
    apiVersion: "autoscaling/v1",
    metadata: {
      name,
      namespace,
      uid: `uid-${namespace}-${name}`,
      resourceVersion: String(deployment.resourceVersion),
    },
    // Like the real API server: `replicas` is omitted when it is 0 (omitempty).
    spec: deployment.replicas === 0 ? {} : { replicas: deployment.replicas },
    status: { replicas: deployment.replicas, selector: `app=${name}` },
  };
}

function parseWrite(
  body: unknown,
  full: boolean,
): { name?: string; resourceVersion?: string; replicas?: number } | string {
  if (typeof body !== "object" || body === null) return "body is not a JSON object";
  const { metadata, spec, kind } = body as { metadata?: unknown; spec?: unknown; kind?: unknown };
  if (full && kind !== "Scale") return `kind must be Scale, got ${String(kind)}`;
  const meta = (typeof metadata === "object" && metadata !== null ? metadata : {}) as {
    name?: unknown;
    resourceVersion?: unknown;
  };
  const replicas = (typeof spec === "object" && spec !== null ? spec : {}) as {
    replicas?: unknown;
  };
  const value = replicas.replicas ?? (full ? 0 : undefined);
  if (value !== undefined && (!Number.isInteger(value) || (value as number) < 0)) {
    return "spec.replicas: Invalid value: must be greater than or equal to 0";
  }
  return {
    ...(typeof meta.name === "string" ? { name: meta.name } : {}),
    ...(typeof meta.resourceVersion === "string" ? { resourceVersion: meta.resourceVersion } : {}),
    ...(value === undefined ? {} : { replicas: value as number }),
  };
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { "content-type": "application/json" });
  res.end(JSON.stringify(value));
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, {
    kind: "Status",
    apiVersion: "v1",
    status: "Failure",
    message,
    reason,
    code,
  });
}
