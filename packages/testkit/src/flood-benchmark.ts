import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface FloodBenchmark {
  /** The script: a benchmark command (`kitt run ... -o OUT` arguments accepted, -o honoured). */
  path: string;
  /** The script waits until this file exists, then prints. */
  go: string;
}

/**
 * A benchmark for load tests: waits for `go`, prints `line 1` ... `line N`
 * one write each (as a chatty benchmark prints), then `child_ms <ms>`, the
 * time the printing took it: its stdout blocks whenever the reader (the
 * agent) falls behind, so that figure is the job's own slowdown. Writes a
 * small metrics.json into `-o`.
 */
export async function writeFloodBenchmark(dir: string, lines: number): Promise<FloodBenchmark> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, "flood-benchmark");
  const go = join(dir, "go");
  await writeFile(
    path,
    `#!/bin/sh
out=
while [ $# -gt 0 ]; do [ "$1" = "-o" ] && out=$2; shift; done
while [ ! -e '${go}' ]; do sleep 0.01; done
start=$(date +%s%N)
i=1
while [ $i -le ${lines} ]; do echo "line $i"; i=$((i + 1)); done
end=$(date +%s%N)
echo "child_ms $(( (end - start) / 1000000 ))"
mkdir -p "$out" && echo '{"ok":1}' > "$out/metrics.json"
`,
  );
  await chmod(path, 0o755);
  return { path, go };
}
