import { open } from "node:fs/promises";
import type { Readable } from "node:stream";

import { UsageError } from "@kitt/protocol";

/** A token is a short secret; anything longer is the wrong file. */
const MAX_TOKEN_BYTES = 4096;

export interface TokenInput {
  /** `--token`: the value itself, or `-` to read it from stdin. */
  token?: string;
  /** `--token-file`: a file holding the token (one line). */
  tokenFile?: string;
  /** KITT_AGENT_TOKEN: used when neither flag is given. */
  envToken?: string;
  stdin?: Readable;
}

/** The token from one line of text: surrounding whitespace dropped; one line only, no control characters. */
function oneLine(text: string, from: string): string {
  const lines = text.split(/\r?\n/).filter((l) => l.trim() !== "");
  if (lines.length === 0) throw new UsageError(`${from}: no token in it`);
  if (lines.length > 1) throw new UsageError(`${from}: holds more than one line; put only the token in it`);
  const token = (lines[0] as string).trim();
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(token)) throw new UsageError(`${from}: the token holds a control character`);
  return token;
}

/** The first line of stdin (an interactive user types it and presses Enter, a pipe ends it), at most 4 KiB. */
async function firstLineOf(stdin: Readable): Promise<string> {
  let text = "";
  for await (const chunk of stdin) {
    text += typeof chunk === "string" ? chunk : (chunk as Buffer).toString("utf8");
    if (text.length > MAX_TOKEN_BYTES) throw new UsageError(`--token -: stdin gave more than ${MAX_TOKEN_BYTES} bytes before a newline`);
    const eol = text.indexOf("\n");
    if (eol !== -1) return text.slice(0, eol);
  }
  return text;
}

async function readTokenFile(path: string): Promise<string> {
  let text: string;
  try {
    const fh = await open(path, "r");
    try {
      if (!(await fh.stat()).isFile()) throw new UsageError(`--token-file ${path}: not a regular file`);
      const buf = Buffer.alloc(MAX_TOKEN_BYTES + 1);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      if (bytesRead > MAX_TOKEN_BYTES) throw new UsageError(`--token-file ${path}: larger than ${MAX_TOKEN_BYTES} bytes, not a token`);
      text = buf.subarray(0, bytesRead).toString("utf8");
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--token-file ${path}: not a readable file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  return oneLine(text, `--token-file ${path}`);
}

/**
 * The agent token from where init was told to take it, so that it need not
 * be on the command line (where `ps` shows it to every user): `--token-file`,
 * `--token -` (stdin) or KITT_AGENT_TOKEN; `--token <value>` still works.
 * Undefined when none is given.
 */
export async function readTokenInput(input: TokenInput): Promise<string | undefined> {
  if (input.token !== undefined && input.tokenFile !== undefined) throw new UsageError("use either --token or --token-file, not both");
  if (input.tokenFile !== undefined) return readTokenFile(input.tokenFile);
  if (input.token === "-") {
    if (input.stdin === undefined) throw new UsageError("--token -: no stdin to read the token from");
    return oneLine(await firstLineOf(input.stdin), "--token - (stdin)");
  }
  return input.token ?? (input.envToken === undefined || input.envToken === "" ? undefined : input.envToken);
}
