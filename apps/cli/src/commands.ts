import Build from "./commands/build.js";
import Engines from "./commands/engines/index.js";
import EnginesInstall from "./commands/engines/install.js";
import EnginesStart from "./commands/engines/start.js";
import EnginesStop from "./commands/engines/stop.js";
import Hardware from "./commands/hardware.js";
import Init from "./commands/init.js";
import Logs from "./commands/logs.js";
import ModelsEvict from "./commands/models/evict.js";
import ModelsList from "./commands/models/list.js";
import ModelsStage from "./commands/models/stage.js";
import Preflight from "./commands/preflight.js";
import ServiceInstall from "./commands/service/install.js";
import ServiceStatus from "./commands/service/status.js";
import ServiceUninstall from "./commands/service/uninstall.js";
import Start from "./commands/start.js";
import Status from "./commands/status.js";
import Stop from "./commands/stop.js";
import TestList from "./commands/test/list.js";
import TestStop from "./commands/test/stop.js";
import Update from "./commands/update.js";

/**
 * The explicit command list (oclif's "explicit" strategy): no directory scan
 * at start-up. Command modules import only @oclif/core and load their work
 * lazily inside run(), so importing all of them here stays cheap.
 */
export const COMMANDS = {
  build: Build,
  engines: Engines,
  "engines:install": EnginesInstall,
  "engines:start": EnginesStart,
  "engines:stop": EnginesStop,
  hardware: Hardware,
  init: Init,
  logs: Logs,
  "models:evict": ModelsEvict,
  "models:list": ModelsList,
  "models:stage": ModelsStage,
  preflight: Preflight,
  "service:install": ServiceInstall,
  "service:status": ServiceStatus,
  "service:uninstall": ServiceUninstall,
  start: Start,
  status: Status,
  stop: Stop,
  "test:list": TestList,
  "test:stop": TestStop,
  update: Update,
};
