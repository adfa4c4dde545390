/**
 * Where the Docker engine is: `DOCKER_HOST` (unix:// or tcp://), else the
 * default unix socket. Read from an injected environment so that tests and
 * the daemon decide, not the process's globals.
 */
import { UsageError } from "@kitt/protocol";

export const DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock";

export type DockerEndpoint =
  | { kind: "unix"; socketPath: string; display: string }
  | { kind: "tcp"; host: string; port: number; tls: boolean; display: string };

export function dockerEndpoint(env: NodeJS.ProcessEnv = process.env): DockerEndpoint {
  const raw = (env.DOCKER_HOST ?? "").trim();
  if (raw === "") return { kind: "unix", socketPath: DEFAULT_DOCKER_SOCKET, display: `unix://${DEFAULT_DOCKER_SOCKET}` };
  if (raw.startsWith("unix://")) {
    const socketPath = raw.slice("unix://".length) || DEFAULT_DOCKER_SOCKET;
    if (!socketPath.startsWith("/")) throw new UsageError(`DOCKER_HOST must name an absolute socket path, got ${JSON.stringify(raw)}`);
    return { kind: "unix", socketPath, display: `unix://${socketPath}` };
  }
  if (raw.startsWith("tcp://")) {
    let url: URL;
    try {
      url = new URL(`http://${raw.slice("tcp://".length)}`);
    } catch {
      throw new UsageError(`DOCKER_HOST must look like tcp://host:port, got ${JSON.stringify(raw)}`);
    }
    const tls = env.DOCKER_TLS_VERIFY !== undefined && env.DOCKER_TLS_VERIFY !== "" && env.DOCKER_TLS_VERIFY !== "0";
    const port = url.port === "" ? (tls ? 2376 : 2375) : Number(url.port);
    return { kind: "tcp", host: url.hostname, port, tls, display: raw };
  }
  throw new UsageError(`DOCKER_HOST must start with unix:// or tcp://, got ${JSON.stringify(raw)}`);
}

/** The host path of the engine's socket, to hand to containers that start siblings (undefined over TCP). */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const endpoint = dockerEndpoint(env);
  return endpoint.kind === "unix" ? endpoint.socketPath : undefined;
}
