/**
 * The `hakit` command line (DESIGN.md 6). A thin client of the daemon's API, plus the local
 * commands that need no daemon (config check, cluster keygen, daemon itself, the witness).
 *
 * Contract: `main(argv)` never throws and never calls process.exit; it resolves to the exit code.
 * Errors print one line `hakit: <message> [<code>]` on stderr.
 */
import { Command, CommanderError, Option } from 'commander';
import { readFileSync } from 'node:fs';
import { HakitError } from '../core/errors.js';
import { DEFAULT_CONFIG_DIR, DEFAULT_SOCKET, ENV_CONFIG_DIR, ENV_SOCKET, ENV_STATE_DIR, DEFAULT_STATE_DIR } from '../core/paths.js';
import { ApiClient, RemoteError } from './client.js';
import { commandConfigCheck, commandKeygen } from './local.js';
import { commandStatus, commandModule, commandLog, commandChecker } from './remote.js';

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  env: NodeJS.ProcessEnv;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
};

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Builds the program; each action stores its exit code in `result.code`. */
export function buildProgram(io: Io, result: { code: number }): Command {
  const program = new Command('hakit');
  const socketOf = (): string => (program.opts().socket as string | undefined) ?? io.env[ENV_SOCKET] ?? DEFAULT_SOCKET;
  const client = (): ApiClient => new ApiClient(socketOf());
  const run = (fn: () => Promise<number>) => async () => {
    result.code = await fn();
  };

  program
    .description('hakit: high availability for one application on two ordinary Linux servers')
    .version(version(), '-V, --version', 'print the version')
    .addOption(new Option('--socket <path>', `control socket of the local daemon (env ${ENV_SOCKET})`).default(undefined, DEFAULT_SOCKET))
    .showHelpAfterError('(run `hakit --help` for the commands)')
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .exitOverride();

  program
    .command('daemon')
    .description('run the node agent: every module of this node')
    .option('--config-dir <dir>', `configuration directory (env ${ENV_CONFIG_DIR})`)
    .option('--state-dir <dir>', `state directory (env ${ENV_STATE_DIR}, default ${DEFAULT_STATE_DIR})`)
    .option('--socket <path>', `control socket (env ${ENV_SOCKET}, default ${DEFAULT_SOCKET})`)
    .option('--node <name>', 'this node\'s name in cluster.yaml (env HAKIT_NODE; default: the node whose address is on this host)')
    .action(async (opts: { configDir?: string; stateDir?: string; socket?: string; node?: string }) => {
      const { runDaemon } = await import('../api/serve.js');
      result.code = await runDaemon({
        node: opts.node ?? io.env.HAKIT_NODE,
        configDir: opts.configDir ?? io.env[ENV_CONFIG_DIR] ?? DEFAULT_CONFIG_DIR,
        stateDir: opts.stateDir ?? io.env[ENV_STATE_DIR] ?? DEFAULT_STATE_DIR,
        socket: opts.socket ?? socketOf(),
      });
    });

  program
    .command('witness')
    .description('run the arbitrator witness on a third host: grants each module\'s lease to one node at a time (docs/witness.md)')
    .requiredOption('--config <file>', 'the witness config file (listen, key_file, cluster, lease)')
    .action(async (opts: { config: string }) => {
      const { runWitness } = await import('../daemon/witness.js');
      result.code = await runWitness({ config: opts.config, err: io.err });
    });

  program
    .command('status [module]')
    .description('show the state of every module (or one) on this node and its peer')
    .option('--json', 'print one JSON object (the format of DESIGN.md 6)')
    .action((mod: string | undefined, opts: { json?: boolean }) => run(() => commandStatus(client(), io, mod, opts.json === true))());

  const moduleCommands: [string, string][] = [
    ['start', 'start the module on this node'],
    ['stop', 'stop the module on this node (a primary hands over to its peer at once)'],
    ['restart', 'restart the application on this node with its scripts, without failover'],
    ['stopstart', 'stop and start the module on this node: a primary fails over to its peer'],
    ['swap', 'exchange the roles: the primary becomes secondary and the secondary primary'],
    ['verify', 'compare the two replicas by content and list the paths that differ'],
  ];
  for (const [name, description] of moduleCommands) {
    program
      .command(`${name} <module>`)
      .description(description)
      .action((mod: string) => run(() => commandModule(client(), io, mod, name, {}))());
  }
  for (const name of ['prim', 'second'] as const) {
    program
      .command(`${name} <module>`)
      .description(name === 'prim'
        ? 'force this node to be primary (resolves a divergence: the peer\'s changed files go to quarantine)'
        : 'force this node to be secondary')
      .option('--fullsync', 'resynchronise every file, not only the changed ones')
      .action((mod: string, opts: { fullsync?: boolean }) => run(() => commandModule(client(), io, mod, name, { fullsync: opts.fullsync === true }))());
  }
  program
    .command('failover <onoff> <module>')
    .description('allow (on) or forbid (off) automatic takeover by the secondary')
    .action((onoff: string, mod: string) => run(async () => {
      if (onoff !== 'on' && onoff !== 'off') throw new HakitError('USAGE', { detail: `failover takes "on" or "off", not "${onoff}"` });
      return commandModule(client(), io, mod, 'failover', { on: onoff === 'on' });
    })());
  program
    .command('checker <onoff> <module> [name]')
    .description('turn the checkers of a module (or the one named) off for maintenance, or on again')
    .action((onoff: string, mod: string, name: string | undefined) => run(async () => {
      if (onoff !== 'on' && onoff !== 'off') throw new HakitError('USAGE', { detail: `checker takes "on" or "off", not "${onoff}"` });
      return commandChecker(client(), io, mod, onoff === 'on', name);
    })());
  program
    .command('log <module>')
    .description('show the recent transitions and events of a module')
    .option('-n, --lines <n>', 'how many entries', '50')
    .action((mod: string, opts: { lines: string }) => run(() => commandLog(client(), io, mod, Number(opts.lines)))());

  const config = program.command('config').description('configuration tools');
  config
    .command('check')
    .description('validate cluster.yaml and every modules/*/module.yaml; exit 0 valid, 1 invalid')
    .option('--config-dir <dir>', `configuration directory (env ${ENV_CONFIG_DIR}, default ${DEFAULT_CONFIG_DIR})`)
    .action((opts: { configDir?: string }) => run(() => commandConfigCheck(io, opts.configDir ?? io.env[ENV_CONFIG_DIR] ?? DEFAULT_CONFIG_DIR))());

  const cluster = program.command('cluster').description('cluster-wide tools');
  cluster
    .command('keygen')
    .description('print a new cluster key; save it as cluster.key (mode 0600) on every node')
    .action(() => run(() => commandKeygen(io))());

  return program;
}

export async function main(argv: string[], io: Io = defaultIo): Promise<number> {
  const result = { code: 0 };
  const program = buildProgram(io, result);
  try {
    await program.parseAsync(argv);
    return result.code;
  } catch (e) {
    return reportError(e, io);
  }
}

function reportError(e: unknown, io: Io): number {
  if (e instanceof CommanderError) {
    // help and version end with exitCode 0; usage errors were already printed by commander
    return e.exitCode === 0 ? 0 : 2;
  }
  if (e instanceof HakitError || e instanceof RemoteError) {
    const exit = e instanceof HakitError ? e.exit : e.exit;
    io.err(`hakit: ${e.message} [${e.code}]\n`);
    return exit;
  }
  const msg = e instanceof Error ? e.stack ?? e.message : String(e);
  io.err(`hakit: internal error: ${msg} [HAKIT_E_INTERNAL]\n`);
  return 70;
}
