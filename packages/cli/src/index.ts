/** The `strata` command-line tool, callable in-process for tests and scripts. */
export { HELP, main } from "./main.js";
export { EXIT, UsageError } from "./io.js";
export type { Io } from "./io.js";
