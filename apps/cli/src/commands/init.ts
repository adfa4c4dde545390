import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Init extends BaseCommand {
  static override summary = "Write agent.yaml for a KITT server (and set up mTLS).";
  static override description = `Writes agent.yaml (mode 0600, atomically) with the server URL, token, agent name and storage paths. Refuses to replace an existing file unless --force is given.

mTLS: --tls-cert/--tls-key/--tls-ca record certificate files you already have; --ca-cert/--ca-key (the KITT CA) issue a fresh client certificate (CN = agent name) into ~/.kitt/certs/; for an https server with neither, a key and a certificate signing request are created there for you to get signed.`;

  static override examples = [
    "<%= config.bin %> init --server http://kitt:8080 --token s3cret",
    "<%= config.bin %> init --server http://kitt:8080 --token s3cret --json",
    "<%= config.bin %> init --server https://kitt:8080 --token s3cret --ca-cert ca.pem --ca-key ca-key.pem",
    "<%= config.bin %> init --server https://kitt:8080 --tls-cert agent.pem --tls-key agent-key.pem --tls-ca ca.pem --force",
    "<%= config.bin %> init --server http://kitt:8080 --model-dir /data/models --share-source nas:/volume1/models --share-mount /mnt/models",
  ];

  static override flags = {
    server: Flags.string({ summary: "KITT server URL (http or https).", required: true }),
    token: Flags.string({ summary: "Bearer token of this agent.", env: "KITT_AGENT_TOKEN" }),
    name: Flags.string({ summary: "Agent name (default: the host name)." }),
    port: Flags.integer({ summary: "Port of the agent's own API.", default: 8090, min: 1, max: 65535 }),
    "model-dir": Flags.string({ summary: "Local model storage directory (default ~/.kitt/models)." }),
    "share-source": Flags.string({ summary: "NFS share source, e.g. nas:/volume1/models." }),
    "share-mount": Flags.string({ summary: "Where the NFS share is mounted locally." }),
    force: Flags.boolean({ summary: "Overwrite an existing agent.yaml (and certificates)." }),
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
      name: flags.name,
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
