import type { AgentConfig } from "@kitt/protocol";

/** The address the daemon can be dialled on from this host: loopback when it listens on every interface. */
export function daemonHost(config: Pick<AgentConfig, "host">): string {
  const host = config.host.trim();
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]" ? "127.0.0.1" : host.replace(/^\[(.*)\]$/, "$1");
}

/** http(s)://<host>:<port>: https when agent.yaml has a certificate and key (the daemon serves mTLS with them). */
export function daemonUrl(config: Pick<AgentConfig, "port" | "host" | "tls">): string {
  const host = daemonHost(config);
  const scheme = config.tls.cert !== undefined && config.tls.key !== undefined ? "https" : "http";
  return `${scheme}://${host.includes(":") ? `[${host}]` : host}:${config.port}`;
}
