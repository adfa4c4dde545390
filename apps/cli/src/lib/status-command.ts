import { formatStatus, statusReport } from "./status.js";

export interface StatusCommandIo {
  out(text: string): void;
  note(text: string): void;
  json(value: unknown): void;
}

/**
 * `kitt-agent status`, whether oclif runs it or the fast path does: prints
 * the report (or one JSON document) and returns the exit code (0 serving,
 * 1 in error, 3 not running or not configured).
 */
export async function runStatusCommand(options: { json: boolean; config: string | undefined }, io: StatusCommandIo): Promise<number> {
  const { report, warnings, exitCode } = await statusReport(options.config, async () => {
    // No unit file and no enable link: said without loading the service commands (and child_process).
    const files = await import("./service-files.js");
    const dir = { unitDir: files.unitDirFrom(process.env) };
    if (files.nothingInstalled(dir)) return files.notInstalled(dir);
    const { serviceDeps, serviceState } = await import("./service.js");
    return serviceState(serviceDeps());
  });
  for (const w of warnings) io.note(`warning: ${w}`);
  if (options.json) io.json(report);
  else io.out(formatStatus(report));
  return exitCode;
}
