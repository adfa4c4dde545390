import { Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class ModelsList extends BaseCommand {
  static override summary = "List the models staged in local storage.";
  static override description =
    "Shows each staged model (relative to model_storage_dir) with its size, last use and whether a job uses it, and the space used and free. While the daemon runs the list comes from it (it owns the storage then).";
  static override examples = ["<%= config.bin %> models list", "<%= config.bin %> models list --json"];
  static override flags = {
    json: Flags.boolean({ summary: "Print one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(ModelsList);
    const { loadCliConfig } = await import("../../lib/config.js");
    const { daemonRuns, formatModels, listModels, listModelsFromDaemon, openStore } = await import("../../lib/models.js");
    const { config } = await loadCliConfig(flags.config);
    const usage = (await daemonRuns(config)) ? await listModelsFromDaemon(config) : await listModels(await openStore(config));
    if (flags.json) this.printJson(usage);
    else this.out(formatModels(usage));
  }
}
