import http from "node:http";
import https from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { createFakeApp } from "./fake-app.js";
import { FaultInjector, type FloodResult } from "./fake-faults.js";
import type {
  AgentRecord,
  Command,
  FakeAgent,
  FakeKittServerOptions,
  FaultOptions,
  LogLine,
  RecordedHeartbeat,
  RecordedRegistration,
  RecordedRequest,
  RecordedResult,
  RecordedStatus,
  RequestMatch,
  TestRow,
} from "./fake-server-types.js";
import { FakeStore, type QueueTestInput } from "./fake-store.js";

function viewAgent(agent: AgentRecord): FakeAgent {
  return {
    id: agent.id,
    name: agent.name,
    token: agent.token,
    registration: agent.registration,
    settings: { ...agent.settings },
  };
}

/** A running fake KITT server. Create it with `startFakeKittServer`. */
export class FakeKittServer {
  readonly host: string;
  readonly protocol: "http" | "https";
  private listener: http.Server | null = null;
  private readonly sockets = new Set<Socket>();
  private boundPort: number;
  private closed = false;
  private adminTokenValue: string | null;
  private readonly store: FakeStore;
  private readonly faults = new FaultInjector();
  private readonly app;

  private constructor(private readonly options: FakeKittServerOptions) {
    this.host = options.host ?? "127.0.0.1";
    this.protocol = options.tls ? "https" : "http";
    this.boundPort = options.port ?? 0;
    this.adminTokenValue = options.adminToken ?? null;
    this.store = new FakeStore(options.now ?? (() => new Date()));
    for (const { name, token } of options.agents ?? []) this.store.provisionAgent(name, token);
    this.app = createFakeApp({
      store: this.store,
      faults: this.faults,
      adminToken: () => this.adminTokenValue,
      onRequest: options.onRequest,
    });
  }

  static async start(options: FakeKittServerOptions = {}): Promise<FakeKittServer> {
    const server = new FakeKittServer(options);
    await server.listen();
    return server;
  }

  /** e.g. "http://127.0.0.1:43121" (no trailing slash). */
  get url(): string {
    const host = this.host.includes(":") ? `[${this.host}]` : this.host;
    return `${this.protocol}://${host}:${this.boundPort}`;
  }

  get port(): number {
    return this.boundPort;
  }

  get isUp(): boolean {
    return this.listener !== null;
  }

  private async listen(): Promise<void> {
    const tls = this.options.tls;
    const listener = tls
      ? https.createServer(
          {
            cert: tls.cert,
            key: tls.key,
            ca: tls.ca,
            requestCert: tls.requestCert ?? true,
            rejectUnauthorized: tls.rejectUnauthorized ?? tls.requestCert ?? true,
          },
          this.app,
        )
      : http.createServer(this.app);
    listener.on("connection", (socket: Socket) => {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      listener.once("error", reject);
      listener.listen(this.boundPort, this.host, () => {
        listener.off("error", reject);
        resolve();
      });
    });
    this.boundPort = (listener.address() as AddressInfo).port;
    this.listener = listener;
  }

  /** Stops listening and destroys every open connection, as a crashed server would. The port is kept. */
  async down(): Promise<void> {
    const listener = this.listener;
    if (!listener) return;
    this.listener = null;
    this.faults.cancelTimers();
    const closed = new Promise<void>((resolve) => listener.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Listens again on the same port after down(). State (agents, tests, records) is kept. */
  async up(): Promise<void> {
    if (this.closed) throw new Error("fake KITT server is closed");
    if (this.listener) return;
    await this.listen();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.faults.clear();
    await this.down();
  }

  // --- provisioning and queueing -------------------------------------------------

  provisionAgent(name: string, token: string): FakeAgent {
    return viewAgent(this.store.provisionAgent(name, token));
  }

  agent(nameOrId: string): FakeAgent | undefined {
    const agent = this.store.resolveAgent(nameOrId);
    return agent ? viewAgent(agent) : undefined;
  }

  agents(): FakeAgent[] {
    return [...this.store.agents.values()].map(viewAgent);
  }

  /** Queues a run_test for an agent (by agent_name or agent_id) and returns the new row. */
  queueTest(input: QueueTestInput): TestRow {
    return this.store.queueTest(input);
  }

  /** A test row that is never dispatched by heartbeat: for commands posted to the agent's local API. */
  createTest(input: QueueTestInput): TestRow {
    return this.store.createTest(input);
  }

  /** Queues any command type (cleanup_storage, start_engine, ...); returns it as it will be sent. */
  queueCommand(agentName: string, type: string, payload: Record<string, unknown> = {}): Command {
    return this.store.queueCommand(agentName, type, payload);
  }

  /** Sets settings as the web UI would: booleans become "True"/"False", numbers strings. */
  setSettings(agentName: string, values: Record<string, string | number | boolean>): void {
    this.store.setSettings(this.store.requireAgent({ agent_name: agentName }), values);
  }

  setAgentPackage(data: Buffer, filename: string): void {
    this.store.agentPackage = { data: Buffer.from(data), filename };
  }

  packageDigest(): { filename: string; sha256: string } {
    return this.store.packageDigest();
  }

  /** The build context (`.tar.gz` bytes) `kitt-agent build` downloads; null makes both build-context routes answer 404. */
  setBuildContext(data: Buffer | null): void {
    this.store.buildContext = data === null ? null : Buffer.from(data);
  }

  /**
   * What `/api/v1/agent/build-context/sha256` serves: undefined (the default)
   * the true digest, a string that digest instead (a tampered context), null
   * a 404 (no digest published).
   */
  setBuildContextDigest(sha256: string | null | undefined): void {
    this.store.buildContextDigestOverride = sha256;
  }

  /** The true digest of the build context set, undefined when none is. */
  buildContextDigest(): { sha256: string } | undefined {
    return this.store.buildContextDigest();
  }

  setAdminToken(token: string | null): void {
    this.adminTokenValue = token;
  }

  // --- inspection ------------------------------------------------------------------

  getTest(testId: string): TestRow | undefined {
    return this.store.getTest(testId);
  }

  tests(filter: { agentName?: string; status?: string } = {}): TestRow[] {
    return this.store.listTests(filter).map(({ agent_name: _name, ...row }) => row);
  }

  logLines(testId: string): string[] {
    return this.store.logLines(testId).map((entry) => entry.line);
  }

  logEntries(testId: string): LogLine[] {
    return this.store.logLines(testId);
  }

  statuses(testId: string): string[] {
    return this.store.statuses(testId).map((entry) => entry.status);
  }

  statusUpdates(testId: string): RecordedStatus[] {
    return this.store.statuses(testId);
  }

  get requests(): readonly RecordedRequest[] {
    return this.store.requests;
  }

  get registrations(): readonly RecordedRegistration[] {
    return this.store.registrations;
  }

  get heartbeats(): readonly RecordedHeartbeat[] {
    return this.store.heartbeats;
  }

  get results(): readonly RecordedResult[] {
    return this.store.results;
  }

  /** Every command handed out, in order. */
  get dispatched(): readonly Command[] {
    return this.store.dispatched;
  }

  /**
   * Resolves once `condition` holds, re-checking whenever a request arrives and
   * whenever a response finishes (or is dropped):
   * e.g. `await server.waitFor(() => server.heartbeats.length >= 2)`.
   * Event-driven, so tests need no sleeps; rejects after timeoutMs.
   */
  waitFor(condition: () => boolean, timeoutMs = 5000): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        unsubscribe();
        if (error) reject(error);
        else resolve();
      };
      const timer = setTimeout(() => finish(new Error(`fake KITT server: condition not met within ${timeoutMs} ms`)), timeoutMs);
      const unsubscribe = this.store.subscribe(() => {
        try {
          if (condition()) finish();
        } catch (error) {
          finish(error as Error);
        }
      });
    });
  }

  /** Forgets recorded requests/registrations/heartbeats/results (state such as tests is kept). */
  clearRecords(): void {
    for (const list of [this.store.requests, this.store.registrations, this.store.heartbeats, this.store.results]) {
      list.length = 0;
    }
  }

  // --- fault injection -------------------------------------------------------------

  /**
   * Answers the next n matching requests with `status` and `body` (JSON unless a
   * string/Buffer) without running the route; `options.headers` adds response headers.
   */
  failNext(n: number, status: number, body?: unknown, options?: FaultOptions): void {
    this.faults.failNext(n, status, body, options);
  }

  /** Destroys the socket of the next n matching requests without answering. */
  dropNext(n: number, match?: RequestMatch): void {
    this.faults.dropNext(n, match);
  }

  /** Answers the next n matching requests with a `bytes`-long body (see FaultInjector.floodNext). */
  floodNext(n: number, bytes: number, options?: RequestMatch & { contentLength?: boolean }): FloodResult {
    return this.faults.floodNext(n, bytes, options);
  }

  /** Delays the next n matching requests by ms before handling them. */
  delayNext(n: number, ms: number, match?: RequestMatch): void {
    this.faults.delayNext(n, ms, match);
  }

  /** Delays every request from now on (until clearFaults). */
  delayAll(ms: number, match?: RequestMatch): void {
    this.faults.delayNext(Infinity, ms, match);
  }

  clearFaults(): void {
    this.faults.clear();
  }
}

/** Starts a fake KITT server on 127.0.0.1 (ephemeral port unless `port` is given). */
export function startFakeKittServer(options: FakeKittServerOptions = {}): Promise<FakeKittServer> {
  return FakeKittServer.start(options);
}
