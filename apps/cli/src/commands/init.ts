import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Init extends BaseCommand {
  static override summary = "Write agent.yaml for a KITT server (and set up mTLS).";
  static override description = `Writes agent.yaml (mode 0600, atomically) with the server URL, token, agent name and storage paths. Refuses to replace an existing file unless --force is given.

The token: --token - reads it from stdin (the first line), --token-file from a file, and without either flag it comes from KITT_AGENT_TOKEN. --token <value> works too, but every user of the host can read it in \`ps\` while init runs.

mTLS: --tls-cert/--tls-key/--tls-ca record certificate files you already have (the key must match the certificate); --ca-cert/--ca-key (the KITT CA) issue a fresh client certificate (CN = agent name) into ~/.kitt/certs/; for an https server with neither, a key and a certificate signing request are created there for you to get signed.

--force never leaves a key that does not match its certificate. Without TLS flags it keeps the pair already in place (the one agent.yaml names, else ~/.kitt/certs/agent.pem and agent-key.pem) and tls.ca, byte for byte; a key still waiting for its certificate is kept and gets a new signing request; a pair in place that does not match is refused (naming both files). Only --ca-cert/--ca-key replace key and certificate, always together.`;

  static override examples = [
    "<%= config.bin %> init --server http://kitt:8080 --token-file ~/kitt-token",
    "printf '%s\\n' \"$TOKEN\" | <%= config.bin %> init --server http://kitt:8080 --token - --json",
    "KITT_AGENT_TOKEN=s3cret <%= config.bin %> init --server https://kitt:8080 --ca-cert ca.pem --ca-key ca-key.pem",
    "<%= config.bin %> init --server https://kitt:8080 --tls-cert agent.pem --tls-key agent-key.pem --tls-ca ca.pem --force",
    "<%= config.bin %> init --server http://kitt:8080 --host 127.0.0.1 --port 9090",
    "<%= config.bin %> init --server http://kitt:8080 --model-dir /data/models --share-source nas:/volume1/models --share-mount /mnt/models",
  ];

  static override flags = {
    server: Flags.string({ summary: "KITT server URL (http or https).", required: true }),
    token: Flags.string({
      summary: "Bearer token of this agent, or - to read it from stdin (a value here is visible in `ps`).",
      description: "A value given here is visible to every user of this host in `ps` while init runs: prefer --token - (stdin), --token-file or KITT_AGENT_TOKEN.",
    }),
    "token-file": Flags.string({ summary: "Read the token from this file (one line; keeps it out of `ps`)." }),
    name: Flags.string({ summary: "Agent name (default: the host name)." }),
    host: Flags.string({
      summary: "Address the agent's own API binds (default 0.0.0.0: all interfaces; 127.0.0.1: this host only).",
      description: "An IP address (IPv4 or IPv6) or a host name; written to agent.yaml as host.",
    }),
    port: Flags.integer({ summary: "Port of the agent's own API.", default: 8090, min: 1, max: 65535 }),
    "model-dir": Flags.string({ summary: "Local model storage directory (default ~/.kitt/models)." }),
    "share-source": Flags.string({ summary: "NFS share source, e.g. nas:/volume1/models." }),
    "share-mount": Flags.string({ summary: "Where the NFS share is mounted locally." }),
    force: Flags.boolean({ summary: "Overwrite an existing agent.yaml; keeps a matching key and certificate (and tls.ca) unless --ca-cert/--ca-key replace both." }),
    json: Flags.boolean({ summary: "Print what was written (token masked) as one JSON document." }),
    "tls-cert": Flags.string({ summary: "Existing client certificate (PEM).", helpGroup: "MTLS" }),
    "tls-key": Flags.string({ summary: "Existing client key (PEM).", helpGroup: "MTLS" }),
    "tls-ca": Flags.string({ summary: "CA certificate that signed the server's certificate.", helpGroup: "MTLS" }),
    "ca-cert": Flags.string({ summary: "KITT CA certificate: issue a client certificate with it.", helpGroup: "MTLS" }),
    "ca-key": Flags.string({ summary: "KITT CA private key (used once, never copied).", helpGroup: "MTLS" }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Init);
    const { resolveConfigPath } = await import("@kitt/protocol");
    const { initAgent } = await import("../lib/init.js");
    const { formatInitResult, initResultJson } = await import("../lib/init-format.js");
    const result = await initAgent({
      configPath: resolveConfigPath(flags.config),
      server: flags.server,
      token: flags.token,
      tokenFile: flags["token-file"],
      envToken: process.env.KITT_AGENT_TOKEN,
      ...(flags.token === "-" ? { stdin: process.stdin } : {}),
      name: flags.name,
      host: flags.host,
      port: flags.port,
      modelDir: flags["model-dir"],
      shareSource: flags["share-source"],
      shareMount: flags["share-mount"],
      force: flags.force,
      tlsCert: flags["tls-cert"],
      tlsKey: flags["tls-key"],
      tlsCa: flags["tls-ca"],
      caCert: flags["ca-cert"],
      caKey: flags["ca-key"],
    });
    if (flags.json) this.printJson(initResultJson(result));
    else this.out(formatInitResult(result));
  }
}
