import { randomBytes } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";

import { KittError, type Logger, silentLogger } from "@kitt/protocol";

/**
 * Remembers which command ids were already handed to the dispatcher. The
 * server marks a command dispatched when it sends it, so a second delivery
 * (a proxy retry, a replayed response, a restart) must not start a second run.
 */
export interface CommandStore {
  has(commandId: string): boolean;
  /** Records the id; resolves once it is durable (for stores that persist). */
  add(commandId: string): Promise<void>;
  /** Records several ids with one durable write. */
  addMany(commandIds: readonly string[]): Promise<void>;
}

export const COMMAND_LEDGER_FILE = "heartbeat-commands.json";
export const DEFAULT_LEDGER_LIMIT = 1_000;

interface LedgerFile {
  version: 1;
  ids: string[];
}

/** Process-local store: dedupes within one run only. */
export class MemoryCommandStore implements CommandStore {
  protected ids: string[] = [];
  protected readonly set = new Set<string>();

  constructor(protected readonly limit: number = DEFAULT_LEDGER_LIMIT) {
    if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`ledger limit must be a positive integer, got ${limit}`);
  }

  has(commandId: string): boolean {
    return this.set.has(commandId);
  }

  async add(commandId: string): Promise<void> {
    this.remember(commandId);
  }

  async addMany(commandIds: readonly string[]): Promise<void> {
    for (const id of commandIds) this.remember(id);
  }

  /** Ids in the order they were first seen, oldest first. */
  list(): string[] {
    return [...this.ids];
  }

  protected remember(commandId: string): boolean {
    if (this.set.has(commandId)) return false;
    this.ids.push(commandId);
    this.set.add(commandId);
    // Bounded: a command older than the last `limit` will not come back.
    while (this.ids.length > this.limit) {
      const dropped = this.ids.shift();
      if (dropped !== undefined) this.set.delete(dropped);
    }
    return true;
  }
}

/**
 * A bounded ledger kept in a small JSON file, replaced atomically (temp file,
 * fsync, rename) on every add so a crash leaves either the old or the new
 * list, never half of one.
 */
export class FileCommandStore extends MemoryCommandStore {
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    limit: number,
  ) {
    super(limit);
  }

  /**
   * Loads the ledger. A missing file is an empty ledger; an unreadable or
   * corrupt one is moved aside (`.corrupt`) with a warning rather than
   * stopping the agent.
   */
  static async open(path: string, options: { limit?: number; logger?: Logger } = {}): Promise<FileCommandStore> {
    const logger = options.logger ?? silentLogger;
    const store = new FileCommandStore(path, options.limit ?? DEFAULT_LEDGER_LIMIT);
    let text: string;
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return store;
      throw new KittError(`cannot read command ledger ${path}: ${(err as Error).message}`, { code: "STATE", cause: err });
    }
    const ids = parseLedger(text);
    if (ids === undefined) {
      logger.warn(`command ledger ${path} is corrupt; moved aside to ${path}.corrupt and starting empty`);
      await rename(path, `${path}.corrupt`).catch(() => undefined);
      return store;
    }
    for (const id of ids) store.remember(id);
    return store;
  }

  /** Opens `<stateDir>/heartbeat-commands.json`. */
  static openIn(stateDir: string, options: { limit?: number; logger?: Logger } = {}): Promise<FileCommandStore> {
    return FileCommandStore.open(join(stateDir, COMMAND_LEDGER_FILE), options);
  }

  override async add(commandId: string): Promise<void> {
    await this.addMany([commandId]);
  }

  override async addMany(commandIds: readonly string[]): Promise<void> {
    let added = false;
    for (const id of commandIds) if (this.remember(id)) added = true;
    if (!added) return;
    // Writes are chained so a slow one cannot overwrite a newer list.
    const snapshot: LedgerFile = { version: 1, ids: this.list() };
    const write = this.writing.then(() => writeAtomically(this.path, `${JSON.stringify(snapshot)}\n`));
    this.writing = write.catch(() => undefined);
    await write;
  }
}

function parseLedger(text: string): string[] | undefined {
  try {
    const data = JSON.parse(text) as unknown;
    if (data === null || typeof data !== "object") return undefined;
    const ids = (data as { ids?: unknown }).ids;
    if (!Array.isArray(ids) || !ids.every((id) => typeof id === "string")) return undefined;
    return ids as string[];
  } catch {
    return undefined;
  }
}

async function writeAtomically(path: string, text: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  const tmp = `${path}.${randomBytes(4).toString("hex")}.tmp`;
  try {
    const handle = await open(tmp, "w", 0o600);
    try {
      await handle.writeFile(text, "utf8");
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw new KittError(`cannot write command ledger ${path}: ${(err as Error).message}`, { code: "STATE", cause: err });
  }
}
