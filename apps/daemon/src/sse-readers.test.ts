import { rm, writeFile } from "node:fs/promises";
import { type ClientRequest, request } from "node:http";
import { join } from "node:path";

import { useTempDir, writeFloodBenchmark } from "@kitt/testkit";
import { afterEach, expect, it } from "vitest";

import { MODEL, TOKEN, closeWorld, makeWorld, type World } from "./test-agent.js";
import { agentReady, killProcessTree, spawnAgent } from "./test-spawn.js";

const tempDir = useTempDir(afterEach);
const worlds: World[] = [];
const pids: number[] = [];
const requests: ClientRequest[] = [];
afterEach(async () => {
  for (const r of requests.splice(0)) r.destroy();
  for (const pid of pids.splice(0)) killProcessTree(pid);
  await Promise.all(worlds.splice(0).map(closeWorld));
});

const LINES = 20_000;
const auth = { authorization: `Bearer ${TOKEN}` };

interface Seen {
  lines: string[];
  dropped: number;
}

function reader(url: string, commandId: string, full: boolean): Promise<{ opened: Promise<void>; lines: Promise<Seen> }> {
  return new Promise((resolveOuter, reject) => {
    let resolveOpened!: () => void;
    const opened = new Promise<void>((r) => (resolveOpened = r));
    const lines = new Promise<Seen>((resolveLines) => {
      const req = request(`${url}/api/logs/${commandId}`, { headers: auth }, (res) => {
        if (res.statusCode !== 200) reject(new Error(`SSE answered ${res.statusCode}`));
        resolveOpened();
        // Only the checker decodes what it receives; the others just take it off the socket.
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => {
          if (full) chunks.push(c);
        });
        res.on("end", () => {
          const seen: Seen = { lines: [], dropped: 0 };
          for (const e of Buffer.concat(chunks).toString("utf8").split("\n\n")) {
            const data = () => JSON.parse(e.slice(e.indexOf("data: ") + 6)) as { line: string; count: number };
            if (e.includes("event: log")) seen.lines.push(data().line);
            else if (e.includes("event: dropped")) seen.dropped += data().count;
          }
          resolveLines(seen);
        });
      });
      req.once("error", reject);
      requests.push(req);
      req.end();
    });
    resolveOuter({ opened, lines });
  });
}

/** Runs the flood job with `extra` readers besides the one that checks every line; returns the child's own time. */
async function floodJob(url: string, go: string, id: string, extra: number): Promise<number> {
  await rm(go, { force: true });
  const res = await fetch(`${url}/api/commands`, {
    method: "POST",
    headers: { ...auth, "content-type": "application/json" },
    body: JSON.stringify({ command_id: id, test_id: `t-${id}`, type: "run_test", payload: { model_path: MODEL, engine_name: "vllm", suite_name: "quick" } }),
  });
  expect(res.status).toBe(202);
  const checker = await reader(url, id, true);
  const others = await Promise.all(Array.from({ length: extra }, () => reader(url, id, false)));
  await Promise.all([checker.opened, ...others.map((o) => o.opened)]);
  await writeFile(go, "");
  const { lines, dropped } = await checker.lines;
  await Promise.all(others.map((o) => o.lines));
  // In order, and whatever a reader missed (a reader that falls behind skips ahead) it was told of.
  const numbers = lines.filter((l) => l.startsWith("line ")).map((l) => Number(l.slice(5)));
  expect(numbers.every((n, i) => i === 0 || n > (numbers[i - 1] ?? 0))).toBe(true);
  expect(numbers.length + dropped).toBe(LINES);
  // A lone reader keeps most of the flood. It is told of what it skips: on a loaded 2-core machine a
  // 20,000-line flood in ~250 ms left it 2,100-5,400 lines behind in eight runs (it reads over HTTP
  // from another process); a reader that comes after the lines were written reads them all from disk.
  if (extra === 0) expect(dropped).toBeLessThan(LINES / 3);
  return Number(/^child_ms (\d+)$/.exec(lines.find((l) => l.startsWith("child_ms ")) ?? "")?.[1]);
}

it("200 SSE readers do not slow a 20,000-line job down: the producer never waits on readers", async () => {
  const dir = await tempDir();
  // The job's stdout blocks whenever the agent falls behind reading it: its own run time is the slowdown.
  const { path, go } = await writeFloodBenchmark(join(dir, "flood"), LINES);
  const w = await makeWorld(dir, {}, { benchmark_command: path });
  worlds.push(w);
  const configPath = join(dir, "config.json");
  await writeFile(configPath, JSON.stringify(w.config));
  const child = spawnAgent(configPath);
  pids.push(child.pid!);
  const url = await agentReady(child);

  // Alternate the two cases and keep each one's best: the machine is shared, the ratio is what counts.
  const alone: number[] = [];
  const crowded: number[] = [];
  for (let round = 0; round < 3; round++) {
    alone.push(await floodJob(url, go, `alone-${round}`, 0));
    crowded.push(await floodJob(url, go, `crowd-${round}`, 200));
  }
  const ratio = Math.min(...crowded) / Math.max(1, Math.min(...alone));
  process.stdout.write(`child ms alone ${alone.join(", ")}; with 200 readers ${crowded.join(", ")}; ratio ${ratio.toFixed(2)}\n`);
  // Before readers pulled from the ring, 500 readers made this job 8x slower; on two shared cores the
  // best-of-three ratio wanders between about 0.7 and 1.6 now, so the bar sits well above that and far below 8.
  expect(ratio).toBeLessThan(2.5);
  process.kill(child.pid!, "SIGTERM");
  await new Promise((r) => child.once("exit", r));
}, 120_000);
