// Prints the test run's totals as one plain line ("tests: N passed, N failed, N skipped") from
// vitest's JSON report, so any CI that reads closing lines sees the counts. Exits 1 if any failed.
import { readFileSync } from "node:fs";

const path = process.argv[2] ?? ".vitest-results.json";
let report;
try {
  report = JSON.parse(readFileSync(path, "utf8"));
} catch (error) {
  console.error(
    `test-summary: cannot read ${path}: ${error instanceof Error ? error.message : String(error)}`,
  );
  process.exit(1);
}
const passed = report.numPassedTests ?? 0;
const failed = report.numFailedTests ?? 0;
const skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
