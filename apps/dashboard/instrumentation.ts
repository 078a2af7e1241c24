// Runs once when the server starts: parse the configuration now, so a bad variable stops
// `next start` with the full list instead of failing the first request.
import { ConfigError } from '@pipedec/contracts/config';
import { config } from './lib/config';

export function register(): void {
  try {
    config();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`${error.message}\n`);
      process.exit(1);
    }
    throw error;
  }
}
