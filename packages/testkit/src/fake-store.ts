import { createHash } from "node:crypto";
import { gzipSync } from "node:zlib";
import { hexId, sqlTimestamp } from "./ids.js";
import type {
  AgentRecord,
  Command,
  LogLine,
  RecordedHeartbeat,
  RecordedRegistration,
  RecordedRequest,
  RecordedResult,
  RecordedStatus,
  TestRow,
} from "./fake-server-types.js";

/** The settings every agent starts with, byte for byte as the real server sends them. */
export const DEFAULT_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  auto_cleanup: "true",
  heartbeat_interval_s: "30",
  kitt_image: "",
  model_share_mount: "",
  model_share_source: "",
  model_storage_dir: "~/.kitt/models",
});

export interface QueueTestInput {
  agent_name?: string;
  agent_id?: string;
  model_path: string;
  engine_name: string;
  suite_name: string;
  benchmark_name?: string;
  engine_mode?: string;
  profile_id?: string;
}

/** Thrown by store operations; routes map it to `{"error": message}` with `status`. */
export class FakeStoreError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = "FakeStoreError";
  }
}

interface TestEntry {
  row: TestRow;
  seq: number;
  type: string;
  extraPayload: Record<string, unknown>;
}

/**
 * The fake server's whole state: what the real server keeps in its database,
 * plus what tests want to inspect afterwards. Routes and test helpers both go
 * through it so that a test sees exactly what the agent saw.
 */
export class FakeStore {
  readonly agents = new Map<string, AgentRecord>();
  readonly requests: RecordedRequest[] = [];
  readonly registrations: RecordedRegistration[] = [];
  readonly heartbeats: RecordedHeartbeat[] = [];
  readonly results: RecordedResult[] = [];
  readonly dispatched: Command[] = [];
  private readonly tests = new Map<string, TestEntry>();
  private readonly logs = new Map<string, LogLine[]>();
  private readonly statusLog = new Map<string, RecordedStatus[]>();
  private seq = 0;
  private readonly listeners = new Set<() => void>();
  agentPackage: { data: Buffer; filename: string };
  /** What `kitt-agent build` downloads; null answers 404 on both build-context routes. */
  buildContext: Buffer | null = null;
  /** undefined: the true digest of buildContext; a string: served instead (tampering); null: the digest route answers 404. */
  buildContextDigestOverride: string | null | undefined = undefined;

  constructor(private readonly now: () => Date) {
    this.agentPackage = {
      data: gzipSync(Buffer.from("kitt-agent fake package\n")),
      filename: "kitt-agent-0.0.0-fake.tar.gz",
    };
  }

  /** Called by the app when a request arrives and when its response ends, so waiters can re-check. */
  notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  timestamp(): string {
    return sqlTimestamp(this.now());
  }

  agentByName(name: string): AgentRecord | undefined {
    for (const agent of this.agents.values()) if (agent.name === name) return agent;
    return undefined;
  }

  /** Real-server lookup for agent URLs: the id first, then the name as a fallback. */
  resolveAgent(idOrName: string): AgentRecord | undefined {
    return this.agents.get(idOrName) ?? this.agentByName(idOrName);
  }

  createAgent(name: string, token: string | null, provisioned: boolean): AgentRecord {
    const agent: AgentRecord = {
      id: hexId(),
      name,
      token,
      provisioned,
      registration: null,
      settings: { ...DEFAULT_SETTINGS },
      lastHeartbeat: null,
    };
    this.agents.set(agent.id, agent);
    return agent;
  }

  provisionAgent(name: string, token: string): AgentRecord {
    const existing = this.agentByName(name);
    if (existing) {
      existing.token = token;
      existing.provisioned = true;
      return existing;
    }
    return this.createAgent(name, token, true);
  }

  requireAgent(ref: { agent_name?: string; agent_id?: string }): AgentRecord {
    const agent =
      ref.agent_id !== undefined ? this.agents.get(ref.agent_id) : ref.agent_name !== undefined ? this.agentByName(ref.agent_name) : undefined;
    if (!agent) throw new FakeStoreError(404, "Agent not found");
    return agent;
  }

  setSettings(agent: AgentRecord, values: Record<string, string | number | boolean>): void {
    for (const [key, value] of Object.entries(values)) {
      // The real server stores str(value): Python booleans print as "True"/"False".
      agent.settings[key] = typeof value === "boolean" ? (value ? "True" : "False") : String(value);
    }
  }

  queueTest(input: QueueTestInput): TestRow {
    const agent = this.requireAgent(input);
    const id = hexId();
    return this.addTest(agent, id, hexId(), "run_test", {
      model_path: input.model_path,
      engine_name: input.engine_name,
      benchmark_name: input.benchmark_name ?? "throughput",
      suite_name: input.suite_name,
      engine_mode: input.engine_mode ?? "docker",
      profile_id: input.profile_id ?? "",
    });
  }

  /** A test row the heartbeat never hands out (its command goes to the agent's local API instead). */
  createTest(input: QueueTestInput): TestRow {
    const row = this.queueTest(input);
    const entry = this.tests.get(row.id) as TestEntry;
    entry.row.status = "dispatched";
    return { ...entry.row };
  }

  queueCommand(agentName: string, type: string, payload: Record<string, unknown> = {}): Command {
    const agent = this.requireAgent({ agent_name: agentName });
    const commandId = hexId();
    const cleanup = type === "cleanup_storage";
    // cleanup_storage reuses the command id as the test id, as the real server does.
    const testId = cleanup ? commandId : hexId();
    const str = (key: string, fallback: string): string => {
      const value = payload[key];
      return typeof value === "string" ? value : fallback;
    };
    const base = {
      model_path: str("model_path", cleanup ? "__cleanup__" : ""),
      engine_name: str("engine_name", cleanup ? "cleanup" : ""),
      benchmark_name: str("benchmark_name", cleanup ? "cleanup_storage" : ""),
      suite_name: str("suite_name", "quick"),
      engine_mode: str("engine_mode", "docker"),
      profile_id: str("profile_id", ""),
    };
    const extra: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(payload)) if (!(key in base)) extra[key] = value;
    if (type !== "run_test" && !cleanup && !("runtime_config" in extra)) extra.runtime_config = {};
    this.addTest(agent, testId, commandId, type, base, extra);
    return this.commandFor(this.tests.get(testId) as TestEntry);
  }

  private addTest(
    agent: AgentRecord,
    id: string,
    commandId: string,
    type: string,
    fields: Pick<TestRow, "model_path" | "engine_name" | "benchmark_name" | "suite_name" | "engine_mode" | "profile_id">,
    extraPayload: Record<string, unknown> = {},
  ): TestRow {
    const row: TestRow = {
      id,
      agent_id: agent.id,
      ...fields,
      status: "queued",
      command_id: commandId,
      created_at: this.timestamp(),
      started_at: null,
      completed_at: null,
      result_id: null,
      error: null,
    };
    this.tests.set(id, { row, seq: this.seq++, type, extraPayload });
    this.logs.set(id, []);
    this.statusLog.set(id, []);
    return { ...row };
  }

  private commandFor(entry: TestEntry): Command {
    const { row } = entry;
    return {
      command_id: row.command_id,
      test_id: row.id,
      type: entry.type,
      payload: {
        model_path: row.model_path,
        engine_name: row.engine_name,
        benchmark_name: row.benchmark_name,
        suite_name: row.suite_name,
        engine_mode: row.engine_mode,
        profile_id: row.profile_id,
        ...entry.extraPayload,
      },
    };
  }

  /** Hands out at most one command: the oldest still queued, marked dispatched on the way out. */
  takeNextCommand(agent: AgentRecord): Command[] {
    let oldest: TestEntry | undefined;
    for (const entry of this.tests.values()) {
      if (entry.row.agent_id !== agent.id || entry.row.status !== "queued") continue;
      if (!oldest || entry.seq < oldest.seq) oldest = entry;
    }
    if (!oldest) return [];
    oldest.row.status = "dispatched";
    const command = this.commandFor(oldest);
    this.dispatched.push(command);
    return [command];
  }

  getTest(id: string): TestRow | undefined {
    const entry = this.tests.get(id);
    return entry ? { ...entry.row } : undefined;
  }

  requireTest(id: string): TestEntry {
    const entry = this.tests.get(id);
    if (!entry) throw new FakeStoreError(404, "Quick test not found");
    return entry;
  }

  listTests(filter: { agentName?: string; status?: string }): Array<TestRow & { agent_name: string }> {
    const entries = [...this.tests.values()].sort((a, b) => b.seq - a.seq);
    const items: Array<TestRow & { agent_name: string }> = [];
    for (const { row } of entries) {
      const agentName = this.agents.get(row.agent_id)?.name ?? "";
      if (filter.agentName !== undefined && agentName !== filter.agentName) continue;
      if (filter.status !== undefined && row.status !== filter.status) continue;
      items.push({ ...row, agent_name: agentName });
    }
    return items;
  }

  appendLog(testId: string, line: string): void {
    this.requireTest(testId);
    (this.logs.get(testId) as LogLine[]).push({ line, created_at: this.timestamp() });
  }

  logLines(testId: string): LogLine[] {
    return [...(this.logs.get(testId) ?? [])];
  }

  setStatus(testId: string, status: string, error: string | null): void {
    const { row } = this.requireTest(testId);
    row.status = status;
    if (status === "running") row.started_at = this.timestamp();
    else row.completed_at = this.timestamp();
    if (status === "failed") row.error = error ?? "";
    (this.statusLog.get(testId) as RecordedStatus[]).push({ status, error });
  }

  statuses(testId: string): RecordedStatus[] {
    return [...(this.statusLog.get(testId) ?? [])];
  }

  recordResult(agent: AgentRecord, body: Record<string, unknown>): void {
    this.results.push({ agentId: agent.id, body });
    const commandId = body.command_id;
    if (typeof commandId !== "string" || body.result_data === undefined || body.result_data === null) return;
    for (const { row } of this.tests.values()) {
      if (row.command_id === commandId && row.agent_id === agent.id) row.result_id = hexId();
    }
  }

  /** The true digest of the build context, whatever the route is told to serve; undefined when there is none. */
  buildContextDigest(): { sha256: string } | undefined {
    if (this.buildContext === null) return undefined;
    return { sha256: createHash("sha256").update(this.buildContext).digest("hex") };
  }

  /** What the digest route serves: the override, else the true digest; undefined answers 404. */
  servedBuildContextDigest(): { sha256: string } | undefined {
    if (this.buildContextDigestOverride === null) return undefined;
    if (this.buildContextDigestOverride !== undefined) return { sha256: this.buildContextDigestOverride };
    return this.buildContextDigest();
  }

  packageDigest(): { filename: string; sha256: string } {
    return {
      filename: this.agentPackage.filename,
      sha256: createHash("sha256").update(this.agentPackage.data).digest("hex"),
    };
  }
}
