import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { writeAgentConfig } from "@kitt/protocol";
import { startFakeKittServer, useTempDir, writeFakeBenchmark, writeFakeModel, writeTestPki } from "@kitt/testkit";

import { backgroundCleanup, cliEnv, runCli, startCliBackground } from "./test-cli.js";
import { closedPort } from "./test-daemon.js";

const tempDir = useTempDir(afterEach);
const { servers, children, strays } = backgroundCleanup(afterEach);

const AGENT = "gpu-mtls";
const TOKEN = "mtls-token-0123456789";
const MODEL = "/data/models/hf/Qwen/Qwen2.5-0.5B-Instruct";

describe("status / logs / test stop against a real daemon serving mTLS", () => {
  it("present the certificate init issued and pin the daemon to it; another certificate is refused", async () => {
    const home = await tempDir();
    const env = cliEnv(home);
    const pki = await writeTestPki(join(home, "pki"));
    const server = await startFakeKittServer({
      tls: { cert: await readFile(pki.serverCert, "utf8"), key: await readFile(pki.serverKey, "utf8"), ca: await readFile(pki.caCert, "utf8") },
      agents: [{ name: AGENT, token: TOKEN }],
    });
    servers.push(server);
    const port = await closedPort();
    const init = await runCli(
      ["init", "--server", server.url, "--token", TOKEN, "--name", AGENT, "--port", String(port), "--ca-cert", pki.caCert, "--ca-key", pki.caKey],
      env,
    );
    expect(init.stderr).toBe("");
    expect(init.code).toBe(0);

    // The daemon serves its API with the issued pair and requires client certificates from the CA.
    const certs = join(home, ".kitt", "certs");
    const tls = { cert: join(certs, "agent.pem"), key: join(certs, "agent-key.pem"), ca: join(certs, "ca.pem") };
    await writeFakeModel(join(home, "share", "hf", "Qwen", "Qwen2.5-0.5B-Instruct"));
    const benchmark = await writeFakeBenchmark(join(home, "bench"), { lines: 3, grandchild: true, sleepSeconds: 300 });
    const storage = { model_storage_dir: join(home, "models"), model_share_mount: join(home, "share"), model_share_source: "nas:/volume1/models" };
    const base = { server_url: server.url, token: TOKEN, name: AGENT, host: "127.0.0.1", port, ...storage, benchmark_command: benchmark, execution: "host" as const, cancel_grace_s: 2 };
    await writeAgentConfig(join(home, ".kitt", "agent.yaml"), { ...base, tls });
    server.setSettings(AGENT, storage);
    const row = server.queueTest({ agent_name: AGENT, model_path: MODEL, engine_name: "vllm", suite_name: "quick" });
    const agent = await startCliBackground(["start"], env, /running; local API on https:/);
    children.push(agent);
    await server.waitFor(() => server.logLines(row.id).some((l) => /grandchild \d+/.test(l)), 30_000);
    strays.push(Number(/grandchild (\d+)/.exec(server.logLines(row.id).join("\n"))?.[1]));

    const status = await runCli(["status", "--json"], env);
    expect(status.stderr).toBe("");
    expect(status.code).toBe(0);
    const doc = JSON.parse(status.stdout) as { daemon: { url: string; running: boolean; status: { running: boolean; name: string } } };
    expect(doc.daemon).toMatchObject({ url: `https://127.0.0.1:${port}`, running: true, status: { running: true, name: AGENT } });

    const commandId = server.getTest(row.id)?.command_id ?? "";
    const logs = await runCli(["logs", commandId], env);
    expect(logs.stderr).toBe("");
    expect(logs.code).toBe(0);
    expect(logs.stdout).toContain("[3/3] benchmark step 3");

    const stop = await runCli(["test", "stop", row.id], env);
    expect(stop.code).toBe(0);
    expect(stop.stdout).toMatch(/^daemon +DONE +cancel accepted/m);

    // Same CA, so the daemon would accept this client certificate, but the daemon does not present it: refused.
    const other = join(home, "other.yaml");
    await writeAgentConfig(other, { ...base, tls: { cert: pki.clientCert, key: pki.clientKey, ca: pki.caCert } });
    const pinned = await runCli(["status", "--json", "--config", other], env);
    // Something answers on the port but is not to be trusted: status says error (exit 1), not "not running".
    expect(pinned.code).toBe(1);
    const refused = JSON.parse(pinned.stdout) as { state: string; daemon: { running: boolean; error?: string } };
    expect(refused.state).toBe("error");
    expect(refused.daemon.running).toBe(false);
    expect(refused.daemon.error).toBe(`the daemon presented a certificate other than tls.cert (${pki.clientCert}): refusing to talk to it`);
    // Without tls.ca the chain is not checked, but the pin still is.
    await writeAgentConfig(other, { ...base, tls: { cert: pki.clientCert, key: pki.clientKey } });
    const noCa = await runCli(["logs", commandId, "--config", other], env);
    expect(noCa.code).toBe(1);
    expect(noCa.stderr).toBe(`Error: the daemon presented a certificate other than tls.cert (${pki.clientCert}): refusing to talk to it\n`);

    const stopped = await runCli(["stop", "--json"], env);
    expect(stopped.stderr).toBe("");
    expect(stopped.code).toBe(0);
    expect(JSON.parse(stopped.stdout)).toEqual({ pid: agent.child.pid, stopped: true, seconds: expect.any(Number) });
    expect(await agent.exit).toBe(0);
  });
});
