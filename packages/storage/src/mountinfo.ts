import { readFile } from "node:fs/promises";

/** The kernel escapes space, tab, newline and backslash in mountinfo as octal. */
function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Mount points listed in a /proc/<pid>/mountinfo text (5th field of each line). */
export function parseMountPoints(text: string): string[] {
  const points: string[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const point = fields[4];
    if (fields.length >= 10 && point !== undefined && point.startsWith("/")) points.push(unescapeMountField(point));
  }
  return points;
}

/** Mount points from `file`, or undefined when it cannot be read (not Linux, no /proc). */
export async function readMountPoints(file: string): Promise<string[] | undefined> {
  try {
    return parseMountPoints(await readFile(file, "utf8"));
  } catch {
    return undefined;
  }
}
