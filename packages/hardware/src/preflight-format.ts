import type { PreflightResult } from "./preflight-types.js";

/**
 * The result as a plain-text table (no colours: the CLI decides those):
 *
 *   CHECK              REQUIRED  STATUS  DETAIL
 *   Node.js >= 22.13   yes       PASS    v24.21.0
 *   ...
 *   Preflight failed: 1 required check failed, 2 warnings.
 *
 * Skipped checks show as SKIPPED and are named in the verdict, never counted as passed.
 */
export function formatPreflightTable(result: PreflightResult): string {
  const rows = [
    ["CHECK", "REQUIRED", "STATUS", "DETAIL"],
    ...result.checks.map((c) => [c.name, c.required ? "yes" : "no", c.status.toUpperCase(), c.detail]),
  ];
  const widths = [0, 1, 2].map((col) => Math.max(...rows.map((row) => (row[col] ?? "").length)));
  const lines = rows.map((row) =>
    row.map((cell, col) => (col < 3 ? cell.padEnd(widths[col] ?? 0) : cell)).join("  ").trimEnd(),
  );
  const failed = result.checks.filter((c) => c.status === "fail").length;
  const warned = result.checks.filter((c) => c.status === "warn").length;
  const skipped = result.checks.filter((c) => c.status === "skipped").map((c) => c.id);
  const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? "" : "s"}`;
  const warnings = warned === 0 ? "" : `, ${plural(warned, "warning")}`;
  // Skipped checks did not pass: the verdict says which were not run.
  const notRun = skipped.length === 0 ? "" : ` ${plural(skipped.length, "check")} skipped (not run): ${skipped.join(", ")}.`;
  lines.push(
    "",
    (result.ok
      ? `Preflight passed${warnings === "" ? "." : ` with ${plural(warned, "warning")}.`}`
      : `Preflight failed: ${plural(failed, "required check")} failed${warnings}.`) + notRun,
  );
  return lines.join("\n");
}

/** One JSON document for CI: `{"ok":bool,"checks":[{id,name,required,status,detail}]}`. */
export function formatPreflightJson(result: PreflightResult): string {
  return JSON.stringify({ ok: result.ok, checks: result.checks }, null, 2);
}
