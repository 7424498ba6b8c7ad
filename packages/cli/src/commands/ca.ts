import { isStrataError } from "@strata/core";
import { initCa, issueWorkloadCertificate, writeIssued } from "@strata/security";
import { parse, positiveInt } from "../args.js";
import { EXIT, UsageError, type Io } from "../io.js";

export const CA_HELP = `usage: strata ca init --dir <dir> --trust-domain <domain>
       strata ca issue --dir <dir> --namespace <ns> --service <name> --out <dir> [--hours <n>]

The built-in certificate authority for workload identity.

  init    creates a root and an intermediate CA (ECDSA P-256) in <dir>; private keys are
          written readable by their owner only; an existing CA is never overwritten
  issue   issues a short-lived certificate (default 24 hours) whose URI SAN is the workload's
          SPIFFE ID, spiffe://<trust-domain>/ns/<ns>/svc/<name>, and writes cert.pem,
          chain.pem and key.pem (owner-only) to --out

  -h, --help   this text`;

export async function caCommand(argv: readonly string[], io: Io): Promise<number> {
  const { values, positionals } = parse(argv, {
    dir: { type: "string" },
    "trust-domain": { type: "string" },
    namespace: { type: "string" },
    service: { type: "string" },
    out: { type: "string" },
    hours: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.out.write(`${CA_HELP}\n`);
    return EXIT.ok;
  }
  const [sub, ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0] as string}"`);
  const dir = values.dir;
  if (sub !== "init" && sub !== "issue") {
    throw new UsageError(
      sub === undefined ? "missing ca command (init or issue)" : `unknown ca command "${sub}"`,
    );
  }
  if (dir === undefined) throw new UsageError("needs --dir <dir>");
  try {
    if (sub === "init") {
      const trustDomain = values["trust-domain"];
      if (trustDomain === undefined) throw new UsageError("needs --trust-domain <domain>");
      await initCa({ dir, trustDomain });
      io.out.write(
        `created a CA for ${trustDomain} in ${dir} (root.pem, intermediate.pem; keys owner-only)\n`,
      );
      return EXIT.ok;
    }
    const { namespace, service, out } = values;
    if (namespace === undefined || service === undefined || out === undefined) {
      throw new UsageError("needs --namespace, --service and --out");
    }
    const issued = await issueWorkloadCertificate({
      dir,
      namespace,
      service,
      validityHours: positiveInt("hours", values.hours, 24, 24 * 90),
    });
    await writeIssued(out, issued);
    io.out.write(
      `issued ${issued.spiffeId}, valid until ${issued.notAfter.toISOString()}, in ${out}\n`,
    );
    return EXIT.ok;
  } catch (error) {
    if (isStrataError(error, "INVALID_ARGUMENT") || isStrataError(error, "NOT_FOUND")) {
      throw new UsageError(error.message);
    }
    throw error;
  }
}
