#!/usr/bin/env node
// The kitt-agent entry point: everything, including the exit code, is decided in dist/main.js.
import { main } from "../dist/main.js";

process.exitCode = await main(process.argv.slice(2));
