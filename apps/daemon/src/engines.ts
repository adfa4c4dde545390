import { createEngineDriver, ENGINE_NAMES, type EngineDriver, type EngineDriverOptions, type EngineStatus, type NativeEngineName } from "@kitt/engines";
import type { EngineStatus as WireEngineStatus, Logger } from "@kitt/protocol";

/** Probes are slow (`import vllm` takes seconds): the heartbeat reads a copy at most this old. */
export const ENGINE_PROBE_MAX_AGE_MS = 60_000;

export interface EngineCatalog {
  /** The driver of one engine; its start/stop/install refresh the cached probes when they end. */
  driver(name: NativeEngineName): EngineDriver;
  /** Every engine's status, probed now (the local API). */
  statusAll(): Promise<EngineStatus[]>;
  /**
   * The last probes for the heartbeat, never waiting on a probe: a copy older
   * than a minute (or none yet) starts a refresh in the background.
   */
  cached(): WireEngineStatus[] | undefined;
  /** Probes again now (after an engine command); resolves when done. */
  refresh(): Promise<void>;
}

/** The agent's engines, with probes cached for the heartbeat. */
export function engineCatalog(options: EngineDriverOptions & { logger: Logger; now?: () => number }): EngineCatalog {
  const now = options.now ?? Date.now;
  const drivers = new Map<NativeEngineName, EngineDriver>();
  let last: { at: number; engines: WireEngineStatus[] } | undefined;
  let inFlight: Promise<void> | undefined;

  const statusAll = (): Promise<EngineStatus[]> => Promise.all(ENGINE_NAMES.map((name) => catalog.driver(name).status()));
  const refresh = (): Promise<void> => {
    inFlight ??= statusAll()
      .then((engines) => {
        // The heartbeat carries the fields the server's schema knows.
        last = { at: now(), engines: engines.map(({ engine, installed, running, version, binary_path }) => ({ engine, installed, running, version, binary_path })) };
      })
      .catch((err: unknown) => options.logger.warn(`engine probes failed: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        inFlight = undefined;
      });
    return inFlight;
  };

  const catalog: EngineCatalog = {
    driver(name) {
      let driver = drivers.get(name);
      if (driver === undefined) {
        const inner = createEngineDriver(name, options);
        const thenRefresh = <T>(work: Promise<T>): Promise<T> => work.finally(() => void refresh());
        driver = {
          name: inner.name,
          defaultPort: inner.defaultPort,
          discover: () => inner.discover(),
          status: () => inner.status(),
          start: (config, modelPath, opts) => thenRefresh(inner.start(config, modelPath, opts)),
          stop: () => thenRefresh(inner.stop()),
          install: (opts) => thenRefresh(inner.install(opts)),
        };
        drivers.set(name, driver);
      }
      return driver;
    },
    statusAll,
    cached() {
      if (last === undefined || now() - last.at > ENGINE_PROBE_MAX_AGE_MS) void refresh();
      return last?.engines;
    },
    refresh,
  };
  return catalog;
}
