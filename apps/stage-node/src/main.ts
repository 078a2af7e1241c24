// Entry point of one stage process: configuration from the environment (every bad variable
// listed, exit 1), then run until SIGTERM or SIGINT.
import { ConfigError } from '@pipedec/contracts';
import { bootStage } from './boot.js';
import { parseStageConfig, type StageConfig } from './config/stage-config.js';

function configOrExit(): StageConfig {
  try {
    return parseStageConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
}

const stage = await bootStage(configOrExit());
// A second signal must not cut the drain short: Ctrl-C reaches every process of the terminal's
// group, and the launcher then sends its own SIGTERM.
let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    stage.shutdown(signal).then(
      () => process.exit(0),
      (error: unknown) => {
        process.stderr.write(`shutdown failed: ${String(error)}\n`);
        process.exit(1);
      },
    );
  });
}
