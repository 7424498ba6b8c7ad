import {
  StrataError,
  type ActionInput,
  type ContractInfo,
  type RateLimitOptions,
  type ServiceContract,
  type ServiceContractSpec,
} from "@strata/core";

/** HTTP methods a route may use. */
export type HttpMethod = "GET" | "POST" | "PUT" | "PATCH" | "DELETE";

const METHODS: ReadonlySet<string> = new Set(["GET", "POST", "PUT", "PATCH", "DELETE"]);

/** What a route's `input` builder sees of a request. Headers are left out on purpose. */
export interface RouteRequest {
  /** Path parameters (`/v1/records/:recordId` → `{ recordId }`). */
  readonly params: Readonly<Record<string, string>>;
  /** The query string; a repeated key gives an array. */
  readonly query: Readonly<Record<string, string | string[]>>;
  /** The parsed JSON body, or undefined when there is none. */
  readonly body: unknown;
}

/** Whether a route needs a verified token, or also serves anonymous callers. */
export type RouteAuth = "required" | "optional";

/** One HTTP route mapped to one action of a service contract (untyped form). */
export interface GatewayRoute {
  readonly method: HttpMethod;
  /** Path with `:name` parameters, starting with a version segment by convention (`/v1/...`). */
  readonly path: string;
  readonly contract: ContractInfo;
  readonly action: string;
  /**
   * `required` (default): a request without a valid bearer token is refused with 401.
   * `optional`: one without a token is passed on as anonymous (the callee's policies decide); a
   * token that is present must still verify.
   */
  readonly auth?: RouteAuth;
  /** This route's own per-client limit, instead of the gateway's; `false` for none. */
  readonly rateLimit?: RateLimitOptions | false;
  /**
   * Builds the action input from the request. Default: path parameters over the query for GET
   * and DELETE; path parameters over the JSON body (an object) for POST, PUT and PATCH.
   */
  readonly input?: (request: RouteRequest) => unknown;
  /** The call's time budget (ms); default the gateway's `timeoutMs`. */
  readonly timeoutMs?: number;
  /** Status of a successful answer; default 200 (204 when the action returns nothing). */
  readonly successStatus?: 200 | 201 | 202;
  /** For the OpenAPI document. */
  readonly summary?: string;
  readonly description?: string;
}

/** A route typed from its contract: the action name and the input builder are checked. */
export type RouteSpec<S extends ServiceContractSpec, A extends keyof S["actions"] & string> = Omit<
  GatewayRoute,
  "contract" | "action" | "input"
> & {
  readonly contract: ServiceContract<S>;
  readonly action: A;
  readonly input?: (request: RouteRequest) => ActionInput<S["actions"][A]>;
};

/**
 * Declares a route with its action name and input builder checked against the contract.
 *
 * @example
 * route({ method: "GET", path: "/v1/records/:recordId", contract: records, action: "get" })
 */
export function route<S extends ServiceContractSpec, A extends keyof S["actions"] & string>(
  spec: RouteSpec<S, A>,
): GatewayRoute {
  return spec;
}

/** A route after its configuration was checked. */
export interface ResolvedRoute extends GatewayRoute {
  readonly auth: RouteAuth;
  /** Names of the path parameters, in order. */
  readonly params: readonly string[];
  /** The path in OpenAPI form (`/v1/records/{recordId}`). */
  readonly openapiPath: string;
  /** The semver range calls are routed with: `^<contract version>`. */
  readonly range: string;
  readonly operationId: string;
}

/** Paths the gateway serves itself. */
export const RESERVED_PATHS: ReadonlySet<string> = new Set([
  "/openapi.json",
  "/healthz",
  "/readyz",
]);

const SEGMENT = /^[A-Za-z0-9._~-]+$/;
const PARAM = /^:[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Array.isArray without its narrowing (which turns a readonly array type into any[]). */
function isList(value: unknown): boolean {
  return Array.isArray(value);
}

function invalid(message: string): StrataError {
  return new StrataError("INVALID_ARGUMENT", `gateway: ${message}`);
}

/**
 * Checks every route and derives what serving and the OpenAPI document need. Refuses unknown
 * methods, malformed paths, actions the contract lacks, duplicates (also ones that differ only
 * in parameter names, which the router could not tell apart) and the gateway's own paths.
 */
export function resolveRoutes(routes: readonly GatewayRoute[], timeoutMs: number): ResolvedRoute[] {
  if (!isList(routes) || routes.length === 0) {
    throw invalid("routes must be a non-empty array");
  }
  const seen = new Map<string, string>();
  const operationIds = new Set<string>();
  return routes.map((r, index) => {
    const where = `route ${index} (${String(r.method)} ${String(r.path)})`;
    if (!METHODS.has(r.method)) {
      throw invalid(`${where}: method must be one of ${[...METHODS].join(", ")}`);
    }
    if (typeof r.path !== "string" || !r.path.startsWith("/") || r.path.length > 512) {
      throw invalid(`${where}: path must start with "/"`);
    }
    if (RESERVED_PATHS.has(r.path)) {
      throw invalid(`${where}: ${r.path} is served by the gateway itself`);
    }
    const segments: string[] = r.path.slice(1).split("/");
    const params: string[] = [];
    for (const segment of segments) {
      if (PARAM.test(segment)) {
        const name = segment.slice(1);
        if (params.includes(name)) throw invalid(`${where}: parameter :${name} appears twice`);
        params.push(name);
      } else if (!SEGMENT.test(segment)) {
        throw invalid(
          `${where}: each path segment must be letters, digits, ".", "_", "~", "-" or a :parameter`,
        );
      }
    }
    const contract = r.contract;
    if (
      typeof contract !== "object" ||
      contract === null ||
      typeof contract.name !== "string" ||
      typeof contract.actions !== "object"
    ) {
      throw invalid(`${where}: contract must be a service contract (defineService)`);
    }
    if (!Object.hasOwn(contract.actions, r.action)) {
      throw invalid(
        `${where}: service ${contract.name} has no action "${String(r.action)}" (it has ${Object.keys(contract.actions).join(", ")})`,
      );
    }
    const auth = r.auth ?? "required";
    if (auth !== "required" && auth !== "optional") {
      throw invalid(`${where}: auth must be "required" or "optional"`);
    }
    if (r.input !== undefined && typeof r.input !== "function") {
      throw invalid(`${where}: input must be a function of { params, query, body }`);
    }
    if (r.rateLimit !== undefined && r.rateLimit !== false) checkRate(r.rateLimit, where);
    const budget = r.timeoutMs ?? timeoutMs;
    if (!Number.isFinite(budget) || budget <= 0) {
      throw invalid(`${where}: timeoutMs must be a positive number of milliseconds`);
    }
    if (
      r.successStatus !== undefined &&
      r.successStatus !== 200 &&
      r.successStatus !== 201 &&
      r.successStatus !== 202
    ) {
      throw invalid(`${where}: successStatus must be 200, 201 or 202`);
    }
    // Parameter names do not matter to the router: /a/:x and /a/:y are the same route.
    const shape = `${r.method} ${segments.map((s) => (s.startsWith(":") ? ":" : s)).join("/")}`;
    const previous = seen.get(shape);
    if (previous !== undefined) throw invalid(`${where} duplicates ${previous}`);
    seen.set(shape, where);
    const openapiPath = `/${segments.map((s) => (s.startsWith(":") ? `{${s.slice(1)}}` : s)).join("/")}`;
    let operationId = `${r.method.toLowerCase()}_${segments
      .map((s) => s.replace(/^:/, "by_").replace(/[^A-Za-z0-9_]/g, "_"))
      .join("_")}`;
    while (operationIds.has(operationId)) operationId += "_";
    operationIds.add(operationId);
    return {
      ...r,
      auth,
      params,
      openapiPath,
      range: `^${contract.version}`,
      operationId,
    };
  });
}

/** Checks a rate limit: a positive rate and a burst of at least one request. */
export function checkRate(rate: RateLimitOptions, where: string): void {
  if (typeof rate !== "object" || rate === null)
    throw invalid(`${where}: rateLimit must be an object`);
  if (!Number.isFinite(rate.perSecond) || rate.perSecond <= 0) {
    throw invalid(`${where}: rateLimit.perSecond must be a positive number`);
  }
  if (rate.burst !== undefined && (!Number.isFinite(rate.burst) || rate.burst < 1)) {
    throw invalid(`${where}: rateLimit.burst must be at least 1`);
  }
  if (rate.maxKeys !== undefined && (!Number.isInteger(rate.maxKeys) || rate.maxKeys < 1)) {
    throw invalid(`${where}: rateLimit.maxKeys must be a positive integer`);
  }
}

const BODY_METHODS: ReadonlySet<HttpMethod> = new Set(["POST", "PUT", "PATCH"]);

/** True when the route's method carries a JSON body. */
export function takesBody(method: HttpMethod): boolean {
  return BODY_METHODS.has(method);
}

/**
 * The default input of a request: path parameters win over query and body fields of the same
 * name, so a client cannot aim a request at one resource in the path and another in the body.
 */
export function defaultInput(route: ResolvedRoute, request: RouteRequest): unknown {
  if (!takesBody(route.method)) return { ...request.query, ...request.params };
  const body = request.body;
  if (body === undefined || body === null) return { ...request.params };
  if (typeof body !== "object" || Array.isArray(body)) {
    if (route.params.length === 0) return body;
    throw new StrataError("INVALID_ARGUMENT", "the request body must be a JSON object");
  }
  return { ...(body as Record<string, unknown>), ...request.params };
}
