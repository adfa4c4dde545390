import { Args } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class ModelsStage extends BaseCommand {
  static override summary = "Copy a model from the share into local storage ahead of a benchmark.";
  static override description = `Resolves the model path exactly as a job does (mounting the NFS share when needed) and copies it into model_storage_dir, with a progress bar on a terminal and plain progress lines otherwise. Ctrl-C cancels and leaves no partial model; a copy killed outright is cleaned up by the next command that opens the storage.`;
  static override examples = ["<%= config.bin %> models stage /data/models/hf/Qwen/Qwen2.5-7B-Instruct"];
  static override args = {
    model_path: Args.string({ description: "The model path as the server sends it (its path on the share).", required: true }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ModelsStage);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { openStore, refuseWhileDaemonRuns, stageModel } = await import("../../lib/models.js");
    const { progressBar } = await import("../../lib/progress-bar.js");
    const { config } = await loadCliConfig(flags.config);
    await refuseWhileDaemonRuns(config);
    const store = await openStore(config);
    const tty = process.stderr.isTTY === true;
    const controller = new AbortController();
    const onSignal = (): void => controller.abort();
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
    let barShown = false;
    try {
      const outcome = await stageModel(store, args.model_path, {
        signal: controller.signal,
        // On a terminal the bar replaces the periodic "Copying ..." lines.
        onLog: (line) => {
          if (tty && line.startsWith("Copying ")) return;
          if (barShown) process.stderr.write("\n");
          barShown = false;
          this.note(line);
        },
        ...(tty
          ? {
              onProgress: (p) => {
                process.stderr.write(`\r${progressBar(p, process.stderr.columns ?? 80)}`);
                barShown = true;
              },
            }
          : {}),
      });
      if (barShown) process.stderr.write("\n");
      this.out(outcome.how === "copied" ? `Staged ${args.model_path} at ${outcome.path}.` : `Already staged at ${outcome.path}.`);
    } finally {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    }
  }
}
