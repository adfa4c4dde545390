import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Preflight extends BaseCommand {
  static override summary = "Check that this machine can run the agent.";
  static override description = `Checks Node.js, Docker and Docker GPU access, the NVIDIA driver, NFS utilities, free disk space in the model directory, that the KITT server answers and accepts agent.yaml's token (an authenticated call without side effects), that the agent port is free, and that the benchmark CLI is installed. Values not given as flags come from agent.yaml when it exists.

Exits 1 when a required check fails (warnings do not). --skip CHECK leaves a check out (shown as SKIPPED, never counted as passed).`;

  static override examples = [
    "<%= config.bin %> preflight",
    "<%= config.bin %> preflight --server https://kitt:8080 --port 8090",
    "<%= config.bin %> preflight --json",
    "<%= config.bin %> preflight --skip docker-gpu --skip nvidia-driver",
  ];

  static override flags = {
    server: Flags.string({ summary: "KITT server URL to check (default: agent.yaml's)." }),
    port: Flags.integer({ summary: "Agent port that must be free (default: agent.yaml's or 8090).", min: 1, max: 65535 }),
    "model-dir": Flags.string({ summary: "Model directory to check for space (default: agent.yaml's)." }),
    insecure: Flags.boolean({ summary: "Do not verify the server's certificate (development only; as start --insecure)." }),
    skip: Flags.string({
      summary: "Do not run this check (repeatable), e.g. docker-gpu and nvidia-driver on a CI runner without a GPU.",
      description: "Check ids: node, docker, docker-gpu, nvidia-driver, nfs, disk, server, port, kitt-image, benchmark-cli. A skipped check shows as SKIPPED and is never counted as passed.",
      multiple: true,
    }),
    json: Flags.boolean({ summary: "Print the result as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Preflight);
    const { preflightFromConfig } = await import("../lib/preflight.js");
    const { result, table, json } = await preflightFromConfig(flags.config, {
      server: flags.server,
      port: flags.port,
      modelDir: flags["model-dir"],
      insecure: flags.insecure,
      skip: flags.skip,
    });
    this.out(flags.json ? json : table);
    if (!result.ok) this.exit(1);
  }
}
