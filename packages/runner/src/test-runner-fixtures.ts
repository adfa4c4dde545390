/**
 * Test fixtures for the job runner: a resolver over real directories (a
 * "share" copied into a staging dir), a reporter that records what it is
 * told, and the fake `kitt` benchmark CLI as a shell script.
 */
import { cp, mkdir, readdir, rm, stat, writeFile } from "node:fs/promises";
import { basename, join } from "node:path";

import type { ResultReport, StatusUpdate } from "@kitt/protocol";

import type { EvictOptions, ModelResolver, Reporter, ResolveOptions, StagedModel } from "./job-types.js";
import { writeScript } from "./test-processes.js";

export class DirResolver implements ModelResolver {
  readonly calls: string[] = [];
  readonly users = new Map<string, number>();
  /** When set, resolve() waits until this promise settles (or the job is cancelled). */
  hold: Promise<void> | undefined;

  constructor(
    readonly shareDir: string,
    readonly stageDir: string,
  ) {}

  async resolve(modelPath: string, { onLog, signal }: ResolveOptions): Promise<StagedModel> {
    this.calls.push(`resolve ${modelPath}`);
    if (this.hold !== undefined) {
      await Promise.race([
        this.hold,
        new Promise<never>((_, reject) => {
          if (signal.aborted) reject(signal.reason);
          signal.addEventListener("abort", () => reject(signal.reason as Error), { once: true });
        }),
      ]);
    }
    if (!modelPath.includes("/")) {
      // A registry name (`qwen2.5:7b`): the engine pulls it, nothing is staged.
      return { localPath: modelPath, staged: false, release: () => {} };
    }
    try {
      await stat(modelPath);
    } catch {
      throw new Error(`model not found: ${modelPath}`);
    }
    const localPath = join(this.stageDir, basename(modelPath));
    onLog(`Copying ${modelPath} to ${localPath}`);
    await mkdir(this.stageDir, { recursive: true });
    await cp(modelPath, localPath, { recursive: true });
    onLog("Copy complete");
    this.users.set(modelPath, (this.users.get(modelPath) ?? 0) + 1);
    return {
      localPath,
      release: () => {
        this.calls.push(`release ${modelPath}`);
        this.users.set(modelPath, (this.users.get(modelPath) ?? 1) - 1);
      },
    };
  }

  async evict(modelPath: string, { onLog }: EvictOptions): Promise<void> {
    this.calls.push(`evict ${modelPath}`);
    await rm(join(this.stageDir, basename(modelPath)), { recursive: true, force: true });
    onLog(`Removed ${basename(modelPath)}`);
  }

  async cleanupAll({ onLog }: EvictOptions): Promise<void> {
    this.calls.push("cleanupAll");
    const names = await readdir(this.stageDir).catch(() => []);
    for (const name of names) await rm(join(this.stageDir, name), { recursive: true, force: true });
    onLog(`Removed ${names.length} model(s)`);
  }

  async staged(): Promise<string[]> {
    return (await readdir(this.stageDir).catch(() => [])).sort();
  }
}

export type ReportEvent =
  | { kind: "status"; testId: string; update: StatusUpdate }
  | { kind: "log"; testId: string; line: string }
  | { kind: "result"; report: ResultReport };

export class RecordingReporter implements Reporter {
  readonly events: ReportEvent[] = [];

  status(testId: string, update: StatusUpdate): void {
    this.events.push({ kind: "status", testId, update });
  }
  log(testId: string, line: string): void {
    this.events.push({ kind: "log", testId, line });
  }
  result(_testId: string, report: ResultReport): void {
    this.events.push({ kind: "result", report });
  }

  statuses(testId: string): StatusUpdate[] {
    return this.events.flatMap((e) => (e.kind === "status" && e.testId === testId ? [e.update] : []));
  }
  lines(testId: string): string[] {
    return this.events.flatMap((e) => (e.kind === "log" && e.testId === testId ? [e.line] : []));
  }
  results(commandId?: string): ResultReport[] {
    return this.events.flatMap((e) => (e.kind === "result" && (commandId === undefined || e.report.command_id === commandId) ? [e.report] : []));
  }
  /** The non-log events as short strings, in order: `status t1 running`, `result c1 completed`. */
  trail(): string[] {
    return this.events.flatMap((e) =>
      e.kind === "status" ? [`status ${e.testId} ${e.update.status}`] : e.kind === "result" ? [`result ${e.report.command_id} ${e.report.status}`] : [],
    );
  }
}

/**
 * The fake `kitt` CLI. It parses the arguments the agent passes, proves the
 * model was staged (prints its config.json), prints a CR progress bar and a
 * stderr line, writes metrics.json and records its output dir. Behaviour is
 * steered by the environment: FAKE_EXIT, FAKE_METRICS (raw file content),
 * FAKE_GATE (a file to wait for), FAKE_RECORD (a file to append the suite to).
 */
export async function writeFakeKitt(binDir: string, name = "kitt"): Promise<string> {
  await mkdir(binDir, { recursive: true });
  return writeScript(
    binDir,
    name,
    `while [ $# -gt 0 ]; do
  case "$1" in
    run) shift ;;
    -m) M=$2; shift 2 ;;
    -e) E=$2; shift 2 ;;
    -s) S=$2; shift 2 ;;
    -o) O=$2; shift 2 ;;
    --mode) MODE=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 64 ;;
  esac
done
[ -n "$FAKE_RECORD" ] && echo "$S $O" >> "$FAKE_RECORD"
echo "model=$M engine=$E suite=$S mode=$MODE"
echo "config: $(cat "$M/config.json")"
if [ -n "$FAKE_GATE" ]; then
  sleep 1000 &
  echo "grandchild $!"
  while [ ! -e "$FAKE_GATE" ]; do sleep 0.02; done
fi
printf 'loading 50%%\\rloading 100%%\\n'
echo "a warning" >&2
if [ -n "$FAKE_METRICS" ]; then printf '%s' "$FAKE_METRICS" > "$O/metrics.json"; else echo '{"throughput_tps": 42.5, "suite": "'$S'"}' > "$O/metrics.json"; fi
exit \${FAKE_EXIT:-0}`,
  );
}

/** Under `root`: a share holding one model (`<share>/<model>/config.json`) and a bin dir with the fake `kitt`. */
export async function shareWithFakeKitt(root: string, model = "Qwen-0.5B"): Promise<{ share: string; binDir: string; modelPath: string }> {
  const share = join(root, "share");
  const modelPath = join(share, model);
  await mkdir(modelPath, { recursive: true });
  await writeFile(join(modelPath, "config.json"), "{}");
  const binDir = join(root, "bin");
  await writeFakeKitt(binDir);
  return { share, binDir, modelPath };
}
