import { runOnHost, type HostProbe } from "./host.js";
import { succeeded } from "./run-command.js";

export type SmiRow = Record<string, string | undefined>;

export type SmiQuery = { ok: true; rows: SmiRow[] } | { ok: false; message: string; missing: boolean };

/**
 * Parses `--format=csv,noheader,nounits` output. Values nvidia-smi cannot
 * give come bracketed ("[N/A]", "[Not Supported]", "[GPU is lost]") and
 * become undefined. Lines with the wrong number of columns are skipped.
 */
export function parseSmiCsv(text: string, fields: readonly string[]): SmiRow[] {
  const rows: SmiRow[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const cells = line.split(",").map((cell) => cell.trim());
    if (cells.length !== fields.length) continue;
    const row: SmiRow = {};
    fields.forEach((field, i) => {
      const cell = cells[i] ?? "";
      row[field] = cell === "" || cell.startsWith("[") || cell === "N/A" ? undefined : cell;
    });
    rows.push(row);
  }
  return rows;
}

/**
 * `nvidia-smi --query-gpu=<fields>`. Fields named in `optional` are dropped
 * and the query retried once when nvidia-smi rejects the first one (old
 * drivers refuse fields they do not know, such as compute_cap before r510).
 */
export async function querySmi(
  host: HostProbe,
  fields: readonly string[],
  options: { optional?: readonly string[]; timeoutMs?: number } = {},
): Promise<SmiQuery> {
  const attempt = async (list: readonly string[]): Promise<SmiQuery> => {
    const result = await runOnHost(
      host,
      "nvidia-smi",
      [`--query-gpu=${list.join(",")}`, "--format=csv,noheader,nounits"],
      options.timeoutMs,
    );
    if (succeeded(result)) return { ok: true, rows: parseSmiCsv(result.stdout, list) };
    return {
      ok: false,
      message: result.message ?? "nvidia-smi failed",
      missing: result.failure === "not-found",
    };
  };
  const first = await attempt(fields);
  const optional = options.optional ?? [];
  if (first.ok || first.missing || optional.length === 0 || /timed out/.test(first.message)) return first;
  return attempt(fields.filter((field) => !optional.includes(field)));
}

/** A number from a CSV cell, or undefined. */
export function smiNumber(cell: string | undefined): number | undefined {
  if (cell === undefined) return undefined;
  const value = Number(cell);
  return Number.isFinite(value) ? value : undefined;
}
