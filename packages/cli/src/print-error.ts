import type { StrataError } from "@strata/core";
import type { Io } from "./io.js";

/** Prints a Strata error readably: `error: CODE: message`, then field issues or details. */
export function printError(io: Io, error: StrataError): void {
  io.err.write(`error: ${error.code}: ${error.message}\n`);
  const issues = error.details["issues"];
  if (Array.isArray(issues)) {
    for (const issue of issues as Array<{ path?: unknown; message?: unknown }>) {
      io.err.write(`  ${String(issue.path)}: ${String(issue.message)}\n`);
    }
    return;
  }
  const details = Object.entries(error.details);
  if (details.length > 0) io.err.write(`  details: ${JSON.stringify(error.details)}\n`);
}
