import path from "node:path";
import { realpath, stat } from "node:fs/promises";
import { reason } from "./errors.js";
import { pathParts } from "./path-guard.js";
import { scanSource, treeDifferences } from "./source-scan.js";
import type { Located } from "./staged-lookup.js";

/** What comparing a staged copy with its share entry found; `line` is for the job's log. */
export type ShareDrift =
  | { kind: "same" }
  | { kind: "changed"; line: string }
  | { kind: "unchecked"; line: string | undefined };

export interface ShareCheck {
  /** Share mount; empty: no share, nothing to compare with. */
  mount: string;
  /** Whether the share is usable now, without mounting it. */
  available: () => Promise<boolean>;
  timeoutMs: number;
}

/**
 * Compare a complete staged copy with the share entry its manifest names
 * (size and mtime of every file), when the share is reachable, within
 * `timeoutMs` (a hung NFS server must not hold the job; the stat then left
 * running finishes in the background). Never throws.
 */
export async function driftFromShare(model: Located, check: ShareCheck): Promise<ShareDrift> {
  if (check.mount === "") return { kind: "unchecked", line: undefined };
  const name = model.manifest.source;
  const unchecked = (why: string): ShareDrift => ({ kind: "unchecked", line: `using the staged copy of ${name} unchecked: ${why}` });
  const compare = async (): Promise<ShareDrift> => {
    if (!(await check.available())) return unchecked(`the share ${check.mount} is not reachable`);
    const source = path.join(check.mount, ...pathParts(name));
    let isFile: boolean;
    try {
      isFile = (await stat(source)).isFile();
    } catch {
      return unchecked(`it is no longer on the share ${check.mount}`);
    }
    const match = { source, real: await realpath(source), rel: name, isFile };
    const tree = await scanSource(source, match, await realpath(check.mount), () => {});
    const differ = treeDifferences(model.manifest, tree);
    if (differ === 0) return { kind: "same" };
    const count = Number.isFinite(differ) ? `${differ} file(s) differ` : "a file became a directory or back";
    return { kind: "changed", line: `${name} changed on the share since it was staged (${count}): updating the local copy` };
  };
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ShareDrift>((resolve) => {
    timer = setTimeout(() => resolve(unchecked(`comparing it with the share took over ${check.timeoutMs / 1000} s`)), check.timeoutMs);
    timer.unref();
  });
  try {
    return await Promise.race([compare().catch((err: unknown) => unchecked(`comparing it with the share failed: ${reason(err)}`)), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
