import type { ContainerSpec } from "./runtime.js";

/** The body of POST /containers/create for `spec` (the name goes in the query). */
export function createBody(spec: ContainerSpec): Record<string, unknown> {
  const portBindings: Record<string, { HostPort: string }[]> = {};
  const exposed: Record<string, object> = {};
  for (const p of spec.ports ?? []) {
    const key = `${p.containerPort}/${p.protocol ?? "tcp"}`;
    portBindings[key] = [{ HostPort: String(p.hostPort) }];
    exposed[key] = {};
  }
  return {
    Image: spec.image,
    Cmd: spec.cmd,
    ...(spec.entrypoint !== undefined ? { Entrypoint: spec.entrypoint } : {}),
    Env: Object.entries(spec.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: spec.labels,
    ...(spec.workingDir !== undefined ? { WorkingDir: spec.workingDir } : {}),
    ...(Object.keys(exposed).length > 0 ? { ExposedPorts: exposed } : {}),
    AttachStdin: false,
    AttachStdout: true,
    AttachStderr: true,
    Tty: false,
    OpenStdin: false,
    HostConfig: {
      // Never auto-removed: the exit code and logs are read first, then the agent removes it.
      AutoRemove: false,
      Binds: (spec.mounts ?? []).map((m) => `${m.source}:${m.target}${m.readOnly ? ":ro" : ""}`),
      ...(spec.networkMode !== undefined ? { NetworkMode: spec.networkMode } : {}),
      ...(Object.keys(portBindings).length > 0 ? { PortBindings: portBindings } : {}),
      ...(spec.gpus === true ? { DeviceRequests: [{ Driver: "", Count: -1, Capabilities: [["gpu"]] }] } : {}),
      ...(spec.shmSizeBytes !== undefined ? { ShmSize: spec.shmSizeBytes } : {}),
      ...(spec.ipcMode !== undefined ? { IpcMode: spec.ipcMode } : {}),
      ...(spec.ulimits !== undefined ? { Ulimits: spec.ulimits.map((u) => ({ Name: u.name, Soft: u.soft, Hard: u.hard })) } : {}),
    },
  };
}

/** `repo:tag` (or `repo@digest`) as POST /images/create asks for it: one tag, never "every tag". */
export function pullQuery(ref: string): { fromImage: string; tag?: string } {
  const colon = ref.lastIndexOf(":");
  if (ref.includes("@") || colon <= ref.lastIndexOf("/")) return ref.includes("@") ? { fromImage: ref } : { fromImage: ref, tag: "latest" };
  return { fromImage: ref.slice(0, colon), tag: ref.slice(colon + 1) };
}

/** `registry:5000/kitt:1.7` -> repo and tag for POST /images/{name}/tag (`latest` when none). */
export function splitTag(tag: string): { repo: string; tag: string } {
  const colon = tag.lastIndexOf(":");
  return colon > tag.lastIndexOf("/") ? { repo: tag.slice(0, colon), tag: tag.slice(colon + 1) } : { repo: tag, tag: "latest" };
}
