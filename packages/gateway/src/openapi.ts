import type { StandardJSONSchemaV1, StandardSchemaV1 } from "@standard-schema/spec";
import { ERROR_CODES, type Schema } from "@strata/core";
import { takesBody, type ResolvedRoute } from "./routes.js";

/** An OpenAPI 3.1 document (plain JSON). */
export type OpenApiDocument = Record<string, unknown>;

type Json = Record<string, unknown>;

/** OpenAPI 3.1 schemas are JSON Schema 2020-12. */
const DIALECT = "https://json-schema.org/draft/2020-12/schema";

/** Component names allowed by OpenAPI: `^[a-zA-Z0-9.\-_]+$`. */
function componentName(text: string): string {
  return text.replace(/[^A-Za-z0-9._-]/g, "_");
}

function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * The JSON Schema of one side of a Standard Schema, when the library implements Standard JSON
 * Schema (zod 4 does). Anything else is documented as `{}` (any value) with a note saying why,
 * rather than failing the whole document.
 */
function exportSchema(schema: Schema, io: "input" | "output"): Json {
  const props = schema["~standard"] as StandardSchemaV1.Props & {
    readonly jsonSchema?: Partial<StandardJSONSchemaV1.Converter>;
  };
  const converter = props.jsonSchema;
  if (converter === undefined || typeof converter[io] !== "function") {
    return {
      description: `schema not exportable: the ${props.vendor} schema does not implement Standard JSON Schema`,
    };
  }
  try {
    const out: unknown = converter[io]?.({ target: "draft-2020-12" });
    // A round trip through JSON gives a plain tree this module owns and may rewrite.
    const copy: unknown = JSON.parse(JSON.stringify(out));
    if (isObject(copy)) return copy;
    return { description: "schema not exportable: the converter returned no object" };
  } catch (error) {
    const why = error instanceof Error ? error.message.slice(0, 200) : "conversion failed";
    return { description: `schema not exportable: ${why}` };
  }
}

/** JSON Pointer token (RFC 6901) to text. */
function unescapePointer(token: string): string {
  return token.replaceAll("~1", "/").replaceAll("~0", "~");
}

/**
 * Moves a schema into `components.schemas` under `name`. Its `$defs` become components of their
 * own and every local `$ref` is rewritten to point there: inside an OpenAPI document, `#` is the
 * document's root, not the schema's, so `#/$defs/X` would otherwise resolve to nothing.
 */
function adopt(schema: Json, name: string, components: Json): Json {
  const defs = isObject(schema["$defs"]) ? schema["$defs"] : {};
  delete schema["$defs"];
  delete schema["$schema"];
  const defNames = new Map<string, string>();
  for (const key of Object.keys(defs)) defNames.set(key, componentName(`${name}.${key}`));
  const target = (ref: string): string => {
    if (ref === "#") return `#/components/schemas/${name}`;
    const match = /^#\/\$defs\/([^/]+)(.*)$/.exec(ref);
    if (match !== null) {
      const def = defNames.get(unescapePointer(match[1] ?? ""));
      if (def !== undefined) return `#/components/schemas/${def}${match[2] ?? ""}`;
    }
    if (ref.startsWith("#/")) return `#/components/schemas/${name}${ref.slice(1)}`;
    return ref;
  };
  const rewrite = (node: unknown): void => {
    if (Array.isArray(node)) {
      for (const item of node) rewrite(item);
      return;
    }
    if (!isObject(node)) return;
    for (const [key, value] of Object.entries(node)) {
      if (key === "$ref" && typeof value === "string") node[key] = target(value);
      else rewrite(value);
    }
  };
  rewrite(schema);
  components[name] = schema;
  for (const [key, def] of Object.entries(defs)) {
    if (!isObject(def)) continue;
    delete def["$schema"];
    rewrite(def);
    components[defNames.get(key) as string] = def;
  }
  return schema;
}

const PROBLEM_SCHEMA: Json = {
  type: "object",
  description: "An RFC 9457 problem, with the Strata error code",
  properties: {
    type: { type: "string", format: "uri" },
    title: { type: "string" },
    status: { type: "integer", minimum: 400, maximum: 599 },
    detail: { type: "string" },
    instance: { type: "string", description: "the request id (also the x-request-id header)" },
    code: { type: "string", enum: [...ERROR_CODES] },
    issues: {
      type: "array",
      description: "for INVALID_ARGUMENT: the fields that are wrong",
      items: {
        type: "object",
        properties: { path: { type: "string" }, message: { type: "string" } },
        required: ["path", "message"],
      },
    },
    reason: { type: "string", description: "for UNAUTHENTICATED: the check that failed" },
  },
  required: ["type", "title", "status", "detail", "instance", "code"],
};

const PROBLEM_RESPONSES: Readonly<Record<string, string>> = {
  "400": "The request is malformed or its input is invalid",
  "401": "No valid bearer token",
  "403": "Not permitted by policy",
  "404": "No such route, or the resource was not found",
  "405": "The path does not take this method",
  "413": "The body is larger than the gateway accepts",
  "415": "The body is not application/json",
  "429": "Over the client's rate limit (see Retry-After)",
  "500": "Internal error",
  "503": "The service (or the identity provider) is unavailable",
  "504": "The call did not complete in time",
};

function problemResponse(status: string): Json {
  return { $ref: `#/components/responses/Problem${status}` };
}

/** Options of {@link buildOpenApi}. */
export interface OpenApiInfo {
  readonly title: string;
  readonly version: string;
  readonly description?: string;
}

/**
 * The OpenAPI 3.1 document of a gateway's routes: one operation per route, request and response
 * schemas from the contracts (Standard JSON Schema), problem responses, bearer security.
 */
export function buildOpenApi(routes: readonly ResolvedRoute[], info: OpenApiInfo): OpenApiDocument {
  const schemas: Json = { Problem: PROBLEM_SCHEMA };
  const responses: Json = {};
  for (const [status, description] of Object.entries(PROBLEM_RESPONSES)) {
    responses[`Problem${status}`] = {
      description,
      content: { "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } } },
    };
  }
  const paths: Record<string, Json> = {};
  // Contracts shared by several routes are exported once.
  const exported = new Map<string, Json>();
  const schemaOf = (r: ResolvedRoute, io: "input" | "output"): { ref: Json; schema: Json } => {
    const name = componentName(`${r.contract.name}.v${r.contract.version}.${r.action}.${io}`);
    let schema = exported.get(name);
    if (schema === undefined) {
      const action = r.contract.actions[r.action];
      schema = adopt(
        action === undefined ? {} : exportSchema(io === "input" ? action.input : action.output, io),
        name,
        schemas,
      );
      exported.set(name, schema);
    }
    return { ref: { $ref: `#/components/schemas/${name}` }, schema };
  };

  for (const r of routes) {
    const input = schemaOf(r, "input");
    const output = schemaOf(r, "output");
    const properties = isObject(input.schema["properties"]) ? input.schema["properties"] : {};
    const required = Array.isArray(input.schema["required"]) ? input.schema["required"] : [];
    const parameters: Json[] = r.params.map((name) => ({
      name,
      in: "path",
      required: true,
      schema: isObject(properties[name]) ? properties[name] : { type: "string" },
    }));
    const operation: Json = {
      operationId: r.operationId,
      tags: [r.contract.name],
      summary: r.summary ?? `${r.contract.name}.${r.action}`,
      ...(r.description === undefined ? {} : { description: r.description }),
      "x-strata-action": `${r.contract.name}.${r.action}`,
      "x-strata-version": r.range,
      security: r.auth === "required" ? [{ bearer: [] }] : [{}, { bearer: [] }],
    };
    if (takesBody(r.method)) {
      // The body is the input without the fields the path supplies (the path wins over them).
      let body: Json = input.ref;
      if (r.input === undefined && r.params.some((p) => p in properties)) {
        const rest = Object.fromEntries(
          Object.entries(properties).filter(([key]) => !r.params.includes(key)),
        );
        body = {
          ...input.schema,
          properties: rest,
          required: required.filter((key) => !r.params.includes(String(key))),
        };
      }
      operation["requestBody"] = {
        required: r.input !== undefined || !r.params.every((p) => required.includes(p)),
        content: { "application/json": { schema: body } },
      };
    } else if (r.input === undefined) {
      for (const [name, schema] of Object.entries(properties)) {
        if (r.params.includes(name)) continue;
        parameters.push({
          name,
          in: "query",
          required: required.includes(name),
          schema: isObject(schema) ? schema : {},
        });
      }
    }
    if (parameters.length > 0) operation["parameters"] = parameters;
    const status = String(r.successStatus ?? 200);
    const answers: Json = {
      [status]: {
        description: "The action's output",
        content: { "application/json": { schema: output.ref } },
      },
    };
    const problems = ["400", "401", "403", "404", "405", "429", "500", "503", "504"];
    if (takesBody(r.method)) problems.push("413", "415");
    for (const code of problems.sort()) answers[code] = problemResponse(code);
    operation["responses"] = answers;
    const item = (paths[r.openapiPath] ??= {});
    item[r.method.toLowerCase()] = operation;
  }

  paths["/healthz"] = {
    get: {
      operationId: "healthz",
      tags: ["health"],
      summary: "Liveness: the gateway process answers",
      security: [],
      responses: {
        "200": { description: "Alive", content: { "application/json": { schema: HEALTH } } },
      },
    },
  };
  paths["/readyz"] = {
    get: {
      operationId: "readyz",
      tags: ["health"],
      summary: "Readiness: the node runs and every routed service has a ready instance",
      security: [],
      responses: {
        "200": { description: "Ready", content: { "application/json": { schema: HEALTH } } },
        "503": problemResponse("503"),
      },
    },
  };

  return {
    openapi: "3.1.0",
    jsonSchemaDialect: DIALECT,
    info: {
      title: info.title,
      version: info.version,
      ...(info.description === undefined ? {} : { description: info.description }),
    },
    paths,
    components: {
      schemas,
      responses,
      securitySchemes: { bearer: { type: "http", scheme: "bearer" } },
    },
  };
}

const HEALTH: Json = {
  type: "object",
  properties: {
    status: { type: "string" },
    services: { type: "object", additionalProperties: { type: "integer" } },
  },
  required: ["status"],
};
