import { Flags } from "@oclif/core";

import { BaseCommand } from "../lib/base-command.js";

export default class Hardware extends BaseCommand {
  static override summary = "Show what this agent registers as (GPUs, CPU, RAM, storage, fingerprint).";
  static override description = `Detects the hardware the way the daemon does before it registers: GPUs through NVML (KITT_NVML_PATH names another libnvidia-ml), else nvidia-smi; CPU, RAM, storage, CUDA and driver versions, environment type and the fingerprint.

--json prints the registration fields with their wire names, hardware_details as an object, and gpus: a live reading per GPU.`;

  static override examples = ["<%= config.bin %> hardware", "<%= config.bin %> hardware --json", "KITT_NVML_PATH=/opt/nvidia/libnvidia-ml.so.1 <%= config.bin %> hardware"];

  static override flags = {
    json: Flags.boolean({ summary: "Print one JSON document." }),
  };

  async run(): Promise<void> {
    const { flags } = await this.parse(Hardware);
    const { formatHardware, hardwareReport } = await import("../lib/hardware.js");
    const report = await hardwareReport();
    if (flags.json) this.printJson(report);
    else this.out(formatHardware(report));
  }
}
