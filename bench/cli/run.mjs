#!/usr/bin/env node
// Start-up time of the kitt-agent CLI: wall time of `kitt-agent --version`
// and `kitt-agent status` (no daemon running), median of 10 runs each, next
// to bare `node -e ""` measured in the same run as the reference.
//
//   ./dev exec node bench/cli/run.mjs [--runs 10]
//
// Needs a built CLI (./dev turbo run build --filter=@kitt/cli).
import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const bin = fileURLToPath(new URL("../../apps/cli/bin/run.js", import.meta.url));
if (!existsSync(fileURLToPath(new URL("../../apps/cli/dist/main.js", import.meta.url)))) {
  console.error("apps/cli/dist is missing: run ./dev turbo run build --filter=@kitt/cli first");
  process.exit(1);
}
const runsFlag = process.argv.indexOf("--runs");
const runs = runsFlag === -1 ? 10 : Number(process.argv[runsFlag + 1]);

// `status` exits 3 when the daemon is not running: the answer expected here.
function once(args, env, exitCodes = [0]) {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    execFile(process.execPath, args, { env, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err && !exitCodes.includes(err.code)) reject(new Error(`${args.join(" ")}: ${err.message} ${stderr}`));
      else resolve(Number(process.hrtime.bigint() - started) / 1e6);
    });
  });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function freePort() {
  const server = createServer();
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

const home = await mkdtemp(join(tmpdir(), "kitt-bench-cli-"));
try {
  const env = { ...process.env, HOME: home, KITT_AGENT_UNIT_DIR: join(home, "units") };
  for (const key of Object.keys(env)) if (key.startsWith("KITT_AGENT_") && key !== "KITT_AGENT_UNIT_DIR") delete env[key];
  // A port nothing listens on: status reports the daemon as not running.
  await once([bin, "init", "--server", "http://127.0.0.1:9", "--token", "bench-token", "--port", String(await freePort())], env);
  const cases = [
    ["node -e \"\" (reference)", ["-e", ""], [0]],
    ["kitt-agent --version", [bin, "--version"], [0]],
    ["kitt-agent status", [bin, "status"], [3]],
    ["kitt-agent --help", [bin, "--help"], [0]],
    ["kitt-agent status --help", [bin, "status", "--help"], [0]],
  ];
  const results = {};
  for (const [, args, codes] of cases) await once(args, env, codes); // warm the file cache
  for (let i = 0; i < runs; i++) {
    // Interleaved so that load changes on the machine hit every case alike.
    for (const [name, args, codes] of cases) (results[name] ??= []).push(await once(args, env, codes));
  }
  const reference = median(results[cases[0][0]]);
  console.log(`CLI start-up, median of ${runs} runs (node ${process.version}, ${process.platform}-${process.arch})`);
  for (const [name] of cases) {
    const m = median(results[name]);
    console.log(`${name.padEnd(26)} ${m.toFixed(0).padStart(6)} ms  (${(m / reference).toFixed(2)}x bare node, min ${Math.min(...results[name]).toFixed(0)} ms)`);
  }
} finally {
  await rm(home, { recursive: true, force: true });
}
