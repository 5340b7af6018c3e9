import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Io, main } from '../src/cli.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const FIXTURE = 'packages/conformance/test/fixtures/mirror-driver.ts';

/** Runs the CLI in this process with captured output. */
export async function run(args: string[], env: Record<string, string | undefined> = {}) {
  let stdout = '';
  let stderr = '';
  const io: Io = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    stderrIsTTY: false,
    stdoutIsTTY: false,
    env: { INIT_CWD: ROOT, ...env },
  };
  const prev = process.env.INIT_CWD;
  process.env.INIT_CWD = ROOT;
  try {
    const code = await main(args, io);
    return { code, stdout, stderr };
  } finally {
    if (prev === undefined) delete process.env.INIT_CWD;
    else process.env.INIT_CWD = prev;
  }
}

/** Spawns `node --conditions=@hmmkit/source --import tsx apps/cli/src/bin.ts ARGS` from the repo root. */
export function spawn(args: string[]) {
  const r = spawnSync(
    process.execPath,
    ['--conditions=@hmmkit/source', '--import', 'tsx', 'apps/cli/src/bin.ts', ...args],
    {
      cwd: ROOT,
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', INIT_CWD: ROOT },
      timeout: 120_000,
    },
  );
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The arguments of a printed `pnpm hmmkit ...` command. */
export function commandArgs(command: string): string[] {
  const parts = command.trim().split(/\s+/);
  if (parts[0] !== 'pnpm' || parts[1] !== 'hmmkit') throw new Error(`not a pnpm hmmkit command: ${command}`);
  return parts.slice(2);
}
