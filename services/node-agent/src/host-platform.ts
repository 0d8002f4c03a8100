// The host as the contracts name it: module `requires.os` and the processor types compare against these values.

/** Node's `os.platform()` to the OS name a node reports; `win32` is reported as `windows`, the rest as Node names them. */
export function contractOs(platform: NodeJS.Platform | string): string {
  return platform === 'win32' ? 'windows' : platform;
}

/** Node's `process.arch` to a processor type, or null for an architecture no module can be built for. */
export function contractProcessorType(arch: string): 'x86_64' | 'arm64' | null {
  if (arch === 'x64') return 'x86_64';
  if (arch === 'arm64') return 'arm64';
  return null;
}
