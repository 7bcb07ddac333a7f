// Types of docs-gen.mjs (plain node, so it runs without a build step of its own), for the tests.

/** The parts of a commander Command the docs read. */
export interface CliCommand {
  name(): string;
  description(): string;
  commands: CliCommand[];
  options: Array<{ flags: string; long?: string; short?: string; description: string }>;
  registeredArguments: Array<{ name(): string; required: boolean; variadic: boolean }>;
}

export const ROOT: string;
export const SRC_DIR: string;
export const PAGES: string[];
export const SCANNED: string[];
export function slugify(text: string): string;
export function splitSections(
  text: string,
  level?: number,
): { preamble: string; sections: Map<string, string>; order: string[] };
export function formatDuration(ms: number): string;
export function readSchemaSource(): Array<{ name: string; expr: string; doc: string }>;
export function configDefaults(): Promise<{
  schemaKeys: string[];
  vars: Array<{ name: string; expr: string; doc: string }>;
  defaults: Map<string, string>;
}>;
export function loadProgram(): Promise<CliCommand>;
export function leafCommands(program: CliCommand): Array<{ path: string; cmd: CliCommand }>;
export function scannedFiles(): string[];
export function scanErrorCodes(): Map<string, string>;
export function scanErrorClasses(): Map<string, string>;
export function collectMetrics(): Promise<
  Map<string, { type: string; help: string; labels: string[]; on: string[] }>
>;
export function generate(): Promise<{ pages: Map<string, string>; problems: string[] }>;
export function scanLogMessages(): Map<string, string>;
export function scanMetricNames(): Map<string, string>;
