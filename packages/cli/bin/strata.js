#!/usr/bin/env node
// The `strata` command. The code lives in dist/ (built by the workspace's `prepare` script).
import { main } from "../dist/main.js";

process.exitCode = await main(process.argv.slice(2));
