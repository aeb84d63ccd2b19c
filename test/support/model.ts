import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The AWS service model of IVS Real-Time, kept as test data in
 * test/fixtures/aws/ (its README says where it came from and its licence).
 */

interface ShapeRef {
  shape: string;
  location?: string;
  locationName?: string;
}
export interface Shape {
  type: string;
  required?: string[];
  members?: Record<string, ShapeRef>;
  member?: ShapeRef;
  key?: ShapeRef;
  value?: ShapeRef;
  min?: number;
  max?: number;
  pattern?: string;
  enum?: string[];
  error?: { httpStatusCode: number };
}
export interface Operation {
  http: { method: string; requestUri: string };
  input?: { shape: string };
  output?: { shape: string };
  errors?: { shape: string }[];
}
export interface Model {
  metadata: { signingName: string; protocol: string };
  operations: Record<string, Operation>;
  shapes: Record<string, Shape>;
}

const MODEL_PATH = fileURLToPath(new URL("../fixtures/aws/ivs-realtime-2020-07-14.service-2.json", import.meta.url));

export function loadModel(): Model {
  try {
    return JSON.parse(readFileSync(MODEL_PATH, "utf8")) as Model;
  } catch (error) {
    throw new Error(`The IVS service model is expected at ${MODEL_PATH} (test data in the repository)`, {
      cause: error,
    });
  }
}

/**
 * Checks a JSON value against a shape of the model: required members, types,
 * lengths, patterns, enums. Returns what is wrong, one line each.
 */
export function shapeProblems(model: Model, shapeName: string, value: unknown, path = "$"): string[] {
  const shape = model.shapes[shapeName];
  if (!shape) return [`${path}: unknown shape ${shapeName}`];
  const problems: string[] = [];
  switch (shape.type) {
    case "structure": {
      if (typeof value !== "object" || value === null || Array.isArray(value)) return [`${path}: expected an object`];
      const record = value as Record<string, unknown>;
      for (const name of shape.required ?? [])
        if (record[name] === undefined) problems.push(`${path}.${name}: required`);
      for (const [name, member] of Object.entries(record)) {
        const ref = shape.members?.[name];
        if (!ref) problems.push(`${path}.${name}: not a member of ${shapeName}`);
        else if (member !== undefined && ref.location === undefined)
          problems.push(...shapeProblems(model, ref.shape, member, `${path}.${name}`));
      }
      break;
    }
    case "list":
      if (!Array.isArray(value)) return [`${path}: expected a list`];
      if (shape.min !== undefined && value.length < shape.min) problems.push(`${path}: fewer than ${shape.min} items`);
      if (shape.max !== undefined && value.length > shape.max) problems.push(`${path}: more than ${shape.max} items`);
      value.forEach((item, i) => problems.push(...shapeProblems(model, shape.member!.shape, item, `${path}[${i}]`)));
      break;
    case "map":
      if (typeof value !== "object" || value === null) return [`${path}: expected a map`];
      for (const [k, v] of Object.entries(value)) {
        problems.push(...shapeProblems(model, shape.key!.shape, k, `${path}{key}`));
        problems.push(...shapeProblems(model, shape.value!.shape, v, `${path}.${k}`));
      }
      break;
    case "string":
      if (typeof value !== "string") return [`${path}: expected a string`];
      if (shape.min !== undefined && value.length < shape.min) problems.push(`${path}: shorter than ${shape.min}`);
      if (shape.max !== undefined && value.length > shape.max) problems.push(`${path}: longer than ${shape.max}`);
      if (shape.pattern && !new RegExp(`^(?:${shape.pattern})$`, "s").test(value))
        problems.push(`${path}: does not match ${shape.pattern}`);
      if (shape.enum && !shape.enum.includes(value)) problems.push(`${path}: not one of ${shape.enum.join(", ")}`);
      break;
    case "integer":
    case "long":
      if (!Number.isInteger(value)) return [`${path}: expected an integer`];
      if (shape.min !== undefined && (value as number) < shape.min) problems.push(`${path}: below ${shape.min}`);
      if (shape.max !== undefined && (value as number) > shape.max) problems.push(`${path}: above ${shape.max}`);
      break;
    case "boolean":
      if (typeof value !== "boolean") problems.push(`${path}: expected a boolean`);
      break;
    case "timestamp":
      if (typeof value !== "string" || Number.isNaN(Date.parse(value)))
        problems.push(`${path}: expected an ISO 8601 timestamp`);
      break;
    default:
      break;
  }
  return problems;
}
