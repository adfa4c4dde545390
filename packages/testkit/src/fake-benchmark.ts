/**
 * A stand-in for the KITT benchmark CLI (`kitt run -m <model> -e <engine>
 * -s <suite> -o <out> [--mode <mode>]`), written as a real executable shell
 * script so that agents run it exactly as they run the real one: its own
 * process, stdout/stderr lines, an exit code, metrics.json in the output dir.
 */
import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

export interface FakeBenchmarkOptions {
  /** File name (default `kitt`). */
  name?: string;
  /** Progress lines printed to stdout (default 5). */
  lines?: number;
  /** Also print one line to stderr. */
  stderrLine?: boolean;
  /** Seconds to sleep after the lines (e.g. to be cancelled meanwhile). */
  sleepSeconds?: number;
  /** Start a grandchild (`sleep`) in the background and print its pid as `grandchild <pid>`. */
  grandchild?: boolean;
  /** Exit code (default 0). */
  exitCode?: number;
  /** Ignore SIGTERM (the benchmark and what it starts), so only SIGKILL stops it. */
  ignoreSigterm?: boolean;
  /** Written to <out>/metrics.json when the exit code is 0 (default a small object; null for none). */
  metrics?: Record<string, unknown> | null;
  /**
   * A hostile benchmark: leaves this at <out>/metrics.json instead (when the
   * exit code is 0): raw text, a symbolic or hard link to another file, or a FIFO.
   */
  metricsFile?: { text: string } | { symlinkTo: string } | { hardLinkTo: string } | { fifo: true };
}

function metricsCommand(options: FakeBenchmarkOptions): string {
  const file = options.metricsFile;
  const target = '"$out/metrics.json"';
  if (file === undefined) {
    const metrics = options.metrics === undefined ? { throughput_tokens_per_s: 1234.5, ttft_ms_p50: 42 } : options.metrics;
    return metrics === null ? "" : `printf '%s' ${shellQuote(JSON.stringify(metrics))} > ${target}`;
  }
  if ("text" in file) return `printf '%s' ${shellQuote(file.text)} > ${target}`;
  if ("symlinkTo" in file) return `ln -s ${shellQuote(file.symlinkTo)} ${target}`;
  if ("hardLinkTo" in file) return `ln ${shellQuote(file.hardLinkTo)} ${target}`;
  return `mkfifo ${target}`;
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, "'\\''")}'`;
}

/** Writes the fake benchmark into `dir` and returns its absolute path. */
export async function writeFakeBenchmark(dir: string, options: FakeBenchmarkOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, options.name ?? "kitt");
  const metrics = metricsCommand(options);
  const exitCode = options.exitCode ?? 0;
  const script = `#!/bin/sh
# Fake KITT benchmark CLI for tests and the demo (not the real benchmark).
${options.ignoreSigterm === true ? "trap '' TERM" : ""}
[ "$1" = "run" ] || { echo "usage: kitt run -m MODEL -e ENGINE -s SUITE -o OUT [--mode MODE]" >&2; exit 2; }
shift
model= engine= suite= out= mode=
while [ $# -gt 0 ]; do
  case "$1" in
    -m) model=$2; shift 2 ;;
    -e) engine=$2; shift 2 ;;
    -s) suite=$2; shift 2 ;;
    -o) out=$2; shift 2 ;;
    --mode) mode=$2; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$model" ] && [ -n "$engine" ] && [ -n "$suite" ] && [ -n "$out" ] || { echo "missing arguments" >&2; exit 2; }
echo "kitt (fake) run: model=$model engine=$engine suite=$suite mode=$mode"
${options.grandchild === true ? 'sleep 300 &\necho "grandchild $!"' : ""}
i=1
while [ $i -le ${options.lines ?? 5} ]; do
  echo "[$i/${options.lines ?? 5}] benchmark step $i"
  i=$((i + 1))
done
${options.stderrLine === true ? 'echo "a warning on stderr" >&2' : ""}
${options.sleepSeconds !== undefined ? `sleep ${options.sleepSeconds}` : ""}
${exitCode === 0 && metrics !== "" ? `mkdir -p "$out" && ${metrics}` : ""}
echo "done (exit ${exitCode})"
exit ${exitCode}
`;
  await writeFile(path, script);
  await chmod(path, 0o755);
  return path;
}

export interface FakeModelOptions {
  /** Weight shards (default 2). */
  shards?: number;
  /** Bytes per shard (default 64 KiB). */
  shardBytes?: number;
}

/** A model directory like a Hugging Face snapshot: config files and weight shards of pseudo-random bytes. */
export async function writeFakeModel(dir: string, options: FakeModelOptions = {}): Promise<string> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "config.json"), JSON.stringify({ architectures: ["FakeForCausalLM"], hidden_size: 64 }));
  await writeFile(join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0" }));
  const shards = options.shards ?? 2;
  const size = options.shardBytes ?? 64 * 1024;
  for (let i = 1; i <= shards; i++) {
    const buf = Buffer.alloc(size);
    let x = i * 2654435761;
    for (let j = 0; j < size; j++) {
      x = (x * 1103515245 + 12345) >>> 0;
      buf[j] = x >>> 24;
    }
    await writeFile(join(dir, `model-${String(i).padStart(5, "0")}-of-${String(shards).padStart(5, "0")}.safetensors`), buf);
  }
  return dir;
}
