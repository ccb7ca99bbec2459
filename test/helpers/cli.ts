// The moekit CLI in a child process (from source, through tsx): its stdout, or the stderr of a run expected to fail.
import { execFileSync } from 'node:child_process';

export const cli = (args: string[]): string =>
  execFileSync(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

export const cliError = (args: string[]): string => {
  try {
    cli(args);
  } catch (e) {
    return String((e as { stderr?: string }).stderr);
  }
  throw new Error(`moekit ${args.join(' ')} succeeded; expected an error`);
};
