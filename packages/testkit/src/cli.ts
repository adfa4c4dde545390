import { readFile } from "node:fs/promises";
import { parseArgs } from "node:util";
import { startFakeKittServer, type FakeKittServer } from "./fake-server.js";
import type { FakeServerTlsOptions, RequestLogEntry } from "./fake-server-types.js";
import { writeTestPki } from "./pki.js";

export interface CliOptions {
  host: string;
  port: number;
  tlsDir: string | null;
  agents: Array<{ name: string; token: string }>;
  adminToken: string | null;
}

/** A bad flag: reported as one line and exit code 2. */
export class CliUsageError extends Error {
  override name = "CliUsageError";
}

export const USAGE = `Usage: kitt-fake-server [--port N] [--host ADDR] [--tls-dir DIR] [--agent NAME:TOKEN ...] [--admin-token TOKEN]

  --port N             port to listen on (0 = any free port; default 18080)
  --host ADDR          address to bind (default 127.0.0.1)
  --tls-dir DIR        write a throw-away CA, server and client certificates into DIR and serve HTTPS with mTLS
  --agent NAME:TOKEN   provision an agent bound to TOKEN (repeatable); unknown names register on first use
  --admin-token TOKEN  quicktest create/logs/status demand this token (the real server's admin-token mode)
  --help               show this help

Prints the server URL on stdout, one line per request on stderr, and runs until SIGINT/SIGTERM.
`;

export function parseCliArgs(argv: string[]): CliOptions | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        port: { type: "string" },
        host: { type: "string" },
        "tls-dir": { type: "string" },
        agent: { type: "string", multiple: true },
        "admin-token": { type: "string" },
        help: { type: "boolean" },
      },
    }));
  } catch (error) {
    // parseArgs' own messages are one line and name the flag.
    throw new CliUsageError((error as Error).message);
  }
  if (values.help) return "help";
  const portText = values.port ?? "18080";
  if (!/^\d+$/.test(portText) || Number(portText) > 65535) {
    throw new CliUsageError(`--port must be an integer 0-65535, got "${portText}"`);
  }
  const host = values.host ?? "127.0.0.1";
  if (host.trim() === "") throw new CliUsageError("--host must not be empty");
  const tlsDir = values["tls-dir"] ?? null;
  if (tlsDir !== null && tlsDir.trim() === "") throw new CliUsageError("--tls-dir must not be empty");
  const adminToken = values["admin-token"] ?? null;
  if (adminToken === "") throw new CliUsageError("--admin-token must not be empty");
  const agents = (values.agent ?? []).map((spec) => {
    const colon = spec.indexOf(":");
    const name = colon >= 0 ? spec.slice(0, colon) : "";
    const token = colon >= 0 ? spec.slice(colon + 1) : "";
    if (name === "" || token === "") throw new CliUsageError(`--agent must be NAME:TOKEN, got "${spec}"`);
    return { name, token };
  });
  return { host, port: Number(portText), tlsDir, agents, adminToken };
}

const ERRNO_TEXT: Record<string, string> = {
  EADDRINUSE: "address already in use",
  EACCES: "permission denied",
  EADDRNOTAVAIL: "address not available on this machine",
  ENOTFOUND: "unknown host",
};

function formatRequest(entry: RequestLogEntry): string {
  const outcome = entry.status === null ? "dropped" : String(entry.status);
  return `${entry.method} ${entry.url} ${outcome} ${entry.durationMs}ms${entry.fault ? ` (injected ${entry.fault})` : ""}`;
}

export interface CliIo {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
  /** Where SIGINT/SIGTERM arrive; the process by default. */
  signals: NodeJS.EventEmitter;
}

/** Runs the CLI until SIGINT/SIGTERM; resolves to the exit code. */
export async function main(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, signals: process }): Promise<number> {
  let options: CliOptions | "help";
  try {
    options = parseCliArgs(argv);
  } catch (error) {
    if (!(error instanceof CliUsageError)) throw error;
    io.stderr.write(`kitt-fake-server: ${error.message} (see --help)\n`);
    return 2;
  }
  if (options === "help") {
    io.stdout.write(USAGE);
    return 0;
  }

  let tls: FakeServerTlsOptions | undefined;
  let server: FakeKittServer;
  try {
    if (options.tlsDir !== null) {
      const paths = await writeTestPki(options.tlsDir);
      tls = {
        cert: await readFile(paths.serverCert, "utf8"),
        key: await readFile(paths.serverKey, "utf8"),
        ca: await readFile(paths.caCert, "utf8"),
      };
      io.stderr.write(
        `mTLS: curl --cacert ${paths.caCert} --cert ${paths.clientCert} --key ${paths.clientKey} <URL>/api/v1/health\n`,
      );
    }
    server = await startFakeKittServer({
      host: options.host,
      port: options.port,
      tls,
      agents: options.agents,
      adminToken: options.adminToken ?? undefined,
      onRequest: (entry) => io.stderr.write(`${formatRequest(entry)}\n`),
    });
  } catch (error) {
    const err = error as NodeJS.ErrnoException;
    const where = options.tlsDir !== null && err.syscall !== "listen" ? `prepare --tls-dir ${options.tlsDir}` : `listen on ${options.host}:${options.port}`;
    const reason = (err.code !== undefined ? ERRNO_TEXT[err.code] : undefined) ?? err.code ?? err.message;
    io.stderr.write(`kitt-fake-server: cannot ${where}: ${reason}\n`);
    return 1;
  }

  io.stdout.write(`${server.url}\n`);
  io.stderr.write(`kitt-fake-server listening on ${server.url} (Ctrl-C to stop)\n`);
  await new Promise<void>((resolve) => {
    const stop = (): void => {
      io.signals.off("SIGINT", stop);
      io.signals.off("SIGTERM", stop);
      resolve();
    };
    io.signals.on("SIGINT", stop);
    io.signals.on("SIGTERM", stop);
  });
  await server.close();
  return 0;
}
