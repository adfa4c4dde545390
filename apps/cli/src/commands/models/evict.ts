import { Args, Flags } from "@oclif/core";

import { BaseCommand } from "../../lib/base-command.js";

export default class ModelsEvict extends BaseCommand {
  static override summary = "Remove a staged model (or all of them) from local storage.";
  static override description =
    "Removes one staged model, named as `kitt-agent models list` shows it or by its absolute path, or with --all every staged model and staging leftover. The same checks as the server's cleanup_storage command apply: nothing outside model_storage_dir is ever removed.";
  static override examples = ["<%= config.bin %> models evict hf/Qwen/Qwen2.5-7B-Instruct", "<%= config.bin %> models evict --all"];
  static override args = {
    name: Args.string({ description: "The model, relative to model_storage_dir (as listed) or absolute." }),
  };
  static override flags = {
    all: Flags.boolean({ summary: "Evict every staged model." }),
    json: Flags.boolean({ summary: "Print the outcome as one JSON document." }),
  };

  async run(): Promise<void> {
    const { args, flags } = await this.parse(ModelsEvict);
    const { UsageError } = await import("@kitt/protocol");
    if (Boolean(flags.all) === (args.name !== undefined)) throw new UsageError("name one model to evict, or use --all");
    const { loadCliConfig } = await import("../../lib/config.js");
    const { evictAll, evictModel, openStore, refuseWhileDaemonRuns } = await import("../../lib/models.js");
    const { config } = await loadCliConfig(flags.config);
    await refuseWhileDaemonRuns(config);
    const store = await openStore(config);
    if (flags.all) {
      const r = await evictAll(store);
      if (flags.json) this.printJson(r);
      else {
        this.out(`Evicted ${r.removed.length} item(s), ${(r.freed_bytes / 1024 ** 3).toFixed(2)} GiB freed.`);
        for (const f of r.failed) this.note(`failed: ${f}`);
      }
      if (r.failed.length > 0) this.exit(1);
      return;
    }
    const r = await evictModel(store, args.name as string);
    if (flags.json) this.printJson(r);
    else this.out(`Evicted ${r.removed} (${(r.freed_bytes / 1024 ** 3).toFixed(2)} GiB freed).`);
  }
}
