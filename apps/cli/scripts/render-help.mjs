// Renders every help page of kitt-agent with oclif itself, at 80 columns, into
// dist/help.json (run by `build` after tsc). `kitt-agent --help` and
// `kitt-agent COMMAND --help` print these pages without loading oclif, whose
// import is most of their start-up time. Keys: "" (the root), each command id
// and each topic, words separated by spaces ("engines start"). Each page is
// what `kitt-agent ... --help` prints through oclif, run here as a child.
import { execFile } from "node:child_process";
import { writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = fileURLToPath(new URL("../bin/run.js", import.meta.url));
const { Config } = await import("@oclif/core");
const config = await Config.load(root);

const keys = new Set([""]);
for (const command of config.commands) if (!command.hidden) keys.add(command.id.split(/[: ]/).join(" "));
for (const topic of config.topics) if (!topic.hidden) keys.add(topic.name.split(/[: ]/).join(" "));

const env = { ...process.env, OCLIF_COLUMNS: "80", KITT_AGENT_NO_FAST_PATH: "1", HOME: tmpdir() };
delete env.NO_COLOR;
function render(key) {
  const argv = [...(key === "" ? [] : key.split(" ")), "--help"];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [bin, ...argv], { env, cwd: root, timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`kitt-agent ${argv.join(" ")}: ${err.message} ${stderr}`));
      else resolve(stdout);
    });
  });
}

const pages = {};
const list = [...keys].sort();
for (let i = 0; i < list.length; i += 4) {
  const batch = list.slice(i, i + 4);
  const texts = await Promise.all(batch.map(render));
  batch.forEach((key, j) => (pages[key] = texts[j]));
}
// The VERSION line names the platform and Node version: filled in when printed.
const platform = `${process.platform}-${process.arch} node-${process.version}`;
for (const key of Object.keys(pages)) pages[key] = pages[key].split(platform).join("{{platform}}");
writeFileSync(new URL("../dist/help.json", import.meta.url), `${JSON.stringify({ columns: 80, pages }, null, 1)}\n`);
process.stdout.write(`render-help: ${Object.keys(pages).length} help pages -> dist/help.json\n`);
