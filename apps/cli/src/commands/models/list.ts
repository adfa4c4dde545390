import { Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class ModelsList extends BaseCommand {
  static override summary = "List the models staged in local storage.";
  static override description =
    "Shows each staged model (relative to model_storage_dir) with its size and last use, and the space used and free. Runs only while the daemon does not (it owns the storage while it runs; `kitt-agent status` shows its storage summary).";
  static override examples = ["<%= config.bin %> models list", "<%= config.bin %> models list --json"];
  static override flags = {
    json: Flags.boolean({ summary: "Print one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ModelsList);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { formatModels, listModels, openStore, refuseWhileDaemonRuns } = await import("../../lib/models.js");
    const { config } = await loadCliConfig(flags.config);
    await refuseWhileDaemonRuns(config);
    const usage = await listModels(await openStore(config));
    if (flags.json) this.printJson(usage);
    else this.out(formatModels(usage));
  }
}
