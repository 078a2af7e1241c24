import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const srcDir = path.dirname(fileURLToPath(import.meta.url));
// Both src/ (tests, tsx) and dist/ (compiled) sit one level below the package folder.
const packageDir = path.join(srcDir, '..');
const configFile = path.join(packageDir, 'src', 'prisma.config.ts');

export class MigrationError extends Error {
  readonly code = 'MIGRATION_FAILED';
}

/**
 * Applies the committed migrations to the database at `url` with `prisma migrate deploy`
 * (the same command as `npm run db:migrate`), so tests run against exactly what ships.
 */
export async function migrateDeploy(url: string): Promise<void> {
  const cli = createRequire(import.meta.url).resolve('prisma/build/index.js');
  const args = [cli, 'migrate', 'deploy', '--config', configFile];
  const output: string[] = [];
  const code = await new Promise<number | null>((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: packageDir,
      env: { ...process.env, DATABASE_URL: url, PRISMA_HIDE_UPDATE_MESSAGE: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => output.push(d.toString()));
    child.stderr.on('data', (d: Buffer) => output.push(d.toString()));
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) {
    throw new MigrationError(`prisma migrate deploy exited with ${code}:\n${output.join('')}`);
  }
}
