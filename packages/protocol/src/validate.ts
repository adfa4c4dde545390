import { ProtocolError } from "./errors.js";
import { schemas, type SchemaName } from "./schemas.js";
import * as generated from "./validators.generated.js";

/** One problem as a validator reports it (the shape of ajv's `ErrorObject`). */
export interface SchemaError {
  keyword: string;
  instancePath: string;
  params: Record<string, unknown>;
  message?: string;
}

/** A validator of scripts/gen-validators.mjs: ajv's standalone code, `errors` set after a failed call. */
interface Validator {
  (data: unknown): boolean;
  errors?: SchemaError[] | null;
}

// Generated at build time by ajv (standalone code): validating loads neither
// ajv nor a schema compiler, so the daemon does not carry them (~13 MiB).
const validators: Record<SchemaName, Validator> = generated;

/** `/commands/0/payload` -> `commands.0.payload`. */
function dotted(pointer: string): string {
  return pointer
    .split("/")
    .slice(1)
    .map((p) => p.replace(/~1/g, "/").replace(/~0/g, "~"))
    .join(".");
}

function join(base: string, key: string): string {
  return base === "" ? key : `${base}.${key}`;
}

function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function lookup(data: unknown, pointer: string): unknown {
  let cur: unknown = data;
  for (const part of pointer.split("/").slice(1)) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part.replace(/~1/g, "/").replace(/~0/g, "~")];
  }
  return cur;
}

/** Turns the validator's first error into (field, one-line detail). */
export function describeError(error: SchemaError, data: unknown): { field: string; detail: string } {
  const base = dotted(error.instancePath);
  const params = error.params;
  switch (error.keyword) {
    case "required":
      return { field: join(base, String(params.missingProperty)), detail: "is required" };
    case "additionalProperties":
      return { field: join(base, String(params.additionalProperty)), detail: "is not allowed" };
    case "enum":
      return {
        field: base,
        detail: `must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(", ")}, got ${describeValue(lookup(data, error.instancePath))}`,
      };
    case "false schema":
      return { field: base, detail: "is not allowed here" };
    default:
      return { field: base, detail: `${error.message ?? "is invalid"}, got ${describeValue(lookup(data, error.instancePath))}` };
  }
}

/** Checks `data` against a schema; returns the first problem or undefined. */
export function check(name: SchemaName, data: unknown): ProtocolError | undefined {
  const fn = validators[name];
  if (fn(data)) return undefined;
  const first = fn.errors?.find((e) => e.keyword !== "if") ?? fn.errors?.[0];
  if (first === undefined) return new ProtocolError(String(schemas[name].$id), "", "is invalid");
  const { field, detail } = describeError(first, data);
  return new ProtocolError(String(schemas[name].$id), field, detail);
}

/** Returns `data` typed as T when it matches the schema, else throws ProtocolError. */
export function validate<T>(name: SchemaName, data: unknown): T {
  const problem = check(name, data);
  if (problem !== undefined) throw problem;
  return data as T;
}
