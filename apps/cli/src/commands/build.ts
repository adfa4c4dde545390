import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Build extends BaseCommand {
  static override summary = "Build the KITT Docker image on this host from the server's build context.";
  static override description = `Downloads the build context from the KITT server (/api/v1/agent/build-context, a .tar.gz whose root folder is kitt-build-context/) and checks its SHA-256 against /api/v1/agent/build-context/sha256: the digest is mandatory, so a missing digest or a mismatch aborts before anything is unpacked or built. Every archive entry is checked (only files, directories and symlinks that stay inside kitt-build-context/; bounded size and count), then docker/web/Dockerfile is built with kitt-build-context/ as the context and tagged --tag, else kitt_image from agent.yaml, else kitt:latest; kitt:latest is always tagged too.

Build output goes to stderr; the image id, its architecture and its tags to stdout. The Docker engine is the one of DOCKER_HOST (default /var/run/docker.sock).`;

  static override examples = [
    "<%= config.bin %> build",
    "<%= config.bin %> build --tag registry.local:5000/kitt:1.7 --no-cache",
    "<%= config.bin %> build --server https://kitt:8080 --json",
  ];

  static override flags = {
    tag: Flags.string({ summary: "Tag of the image (default: kitt_image from agent.yaml, else kitt:latest); kitt:latest is tagged too." }),
    server: Flags.string({ summary: "KITT server URL instead of agent.yaml's server_url (agent.yaml is then optional)." }),
    "no-cache": Flags.boolean({ summary: "Build without Docker's layer cache." }),
    json: Flags.boolean({ summary: "Print { image_id, tags, architecture, context_sha256 } as one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Build);
    const { buildFromServer } = await import("../lib/build.js");
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    try {
      const built = await buildFromServer({
        configPath: flags.config,
        server: flags.server,
        tag: flags.tag,
        noCache: flags["no-cache"],
        onProgress: (line) => this.note(line),
        signal: controller.signal,
      });
      if (flags.json) {
        this.printJson({ image_id: built.imageId, tags: built.tags, architecture: built.architecture, context_sha256: built.contextSha256 });
        return;
      }
      const [first] = built.tags;
      this.out(`Built ${first} (${built.imageId.slice(0, "sha256:".length + 12)}), architecture ${built.architecture}`);
      for (const tag of built.tags) this.out(`Tagged ${tag}`);
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
}
