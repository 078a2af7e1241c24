// REPO-LEVEL SUITE (test/): the compose file spans every app, so this reads each app's
// configuration module; it lives outside apps/ so that no app imports another.
// docker-compose.yml cannot run on this machine (no Docker engine), so this keeps it consistent
// with the real start-up instead: every variable a service sets is one its process reads, and
// parses with that process's own configuration parser; every command names a file or script
// the build produces; the pipeline of stage services is whole (indexes 0..count-1, one head);
// the images build what the commands run.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { seedEnvShape } from '@pipedec/db';
import { parse } from 'yaml';
import { dashboardEnvShape } from '../apps/dashboard/lib/config.js';
import { parseStageConfig, stageEnvShape } from '../apps/stage-node/src/config/stage-config.js';
import { apiEnvShape, parseApiConfig } from '../apps/api/src/config/api-config.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Service {
  command?: string[];
  environment?: Record<string, string>;
  image?: string;
  build?: string;
}

/** A value standing for a variable the compose file requires (`${VAR:?message}`). */
const REQUIRED = 'required-variable-value-0123456789';

/**
 * The compose file with merge keys applied, `${VAR:-default}` replaced by the default and
 * `${VAR:?message}` (a variable the operator must set) by REQUIRED.
 */
function compose(): Record<string, Service> {
  const text = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')
    .replace(/\$\{\w+:-([^}]*)\}/g, '$1')
    .replace(/\$\{\w+:\?[^}]*\}/g, REQUIRED);
  return (parse(text, { merge: true }) as { services: Record<string, Service> }).services;
}

interface PackageJson {
  name: string;
  scripts: Record<string, string>;
}

function readPackage(dir: string): PackageJson {
  return JSON.parse(readFileSync(path.join(ROOT, dir, 'package.json'), 'utf8')) as PackageJson;
}

function unknownKeys(env: Record<string, string>, ...shapes: object[]): string[] {
  const known = new Set(shapes.flatMap((s) => Object.keys(s)));
  return Object.keys(env).filter((k) => !known.has(k));
}

describe('docker-compose.yml', () => {
  const services = compose();
  const stages = Object.entries(services).filter(([, s]) =>
    s.command?.includes('apps/stage-node/dist/main.js'),
  );

  it('sets only variables the API and its seed read, and they parse', () => {
    const api = services.api;
    expect(unknownKeys(api.environment!, apiEnvShape, seedEnvShape)).toEqual([]);
    expect(() => parseApiConfig(api.environment!)).not.toThrow();
    const command = api.command!.join(' ');
    for (const script of ['db:migrate', 'db:seed']) {
      expect(command).toContain(`npm run ${script}`);
      expect(readPackage('.').scripts).toHaveProperty(script);
    }
    expect(command).toContain('apps/api/dist/main.js');
    expect(existsSync(path.join(ROOT, 'apps/api/dist/main.js'))).toBe(true);
  });

  it('runs one whole pipeline of stage nodes whose variables parse', () => {
    expect(stages.length).toBeGreaterThan(1);
    expect(existsSync(path.join(ROOT, 'apps/stage-node/dist/main.js'))).toBe(true);
    const configs = stages.map(([name, s]) => {
      // Paths in the image are relative to /app, the repository root.
      expect({ name, unknown: unknownKeys(s.environment!, stageEnvShape) }).toEqual({
        name,
        unknown: [],
      });
      // Paths in the image are relative to /app, the repository root.
      const env = { ...s.environment };
      for (const k of ['CHECKPOINT_DIR', 'DRAFT_CHECKPOINT_DIR'] as const) {
        if (env[k]) {
          expect(existsSync(path.join(ROOT, env[k], 'config.json'))).toBe(true);
          env[k] = path.join(ROOT, env[k]);
        }
      }
      return parseStageConfig(env);
    });
    const indexes = configs.map((c) => c.stageIndex).sort((a, b) => a - b);
    expect(indexes).toEqual(configs.map((_, i) => i));
    for (const c of configs) {
      expect(c.stageCount).toBe(configs.length);
      expect(c.pipelineId).toBe(configs[0].pipelineId);
    }
    // Every stage advertises the addresses its service name resolves to (gRPC, and the frame
    // socket the others send packets to), each a different one.
    for (const key of ['GRPC_ADVERTISE', 'FRAMES_ADVERTISE']) {
      const advertised = new Set(stages.map(([, s]) => s.environment![key]));
      expect(advertised.size).toBe(stages.length);
      for (const [name, s] of stages) expect(s.environment![key]).toMatch(new RegExp(`^${name}:`));
    }
    for (const c of configs) expect(c.frames?.listen).toMatch(/^0\.0\.0\.0:\d+$/);
    // The head runs the draft; the API serves the model name the pipeline serves.
    expect(configs.find((c) => c.stageIndex === 0)?.draftCheckpointDir).toBeTruthy();
    const apiConfig = parseApiConfig(services.api.environment!);
    for (const [, st] of stages) expect(st.environment!.MODEL_NAME).toBe(apiConfig.MODEL_NAME);
    expect(path.resolve(ROOT, apiConfig.MODEL_DIR)).toBe(configs[0].checkpointDir);
  });

  it('runs the dashboard with variables it reads, through its start script', () => {
    const d = services.dashboard;
    expect(unknownKeys(d.environment!, dashboardEnvShape)).toEqual([]);
    const pkg = readPackage('apps/dashboard');
    expect(pkg.name).toBe(d.command![d.command!.indexOf('-w') + 1]);
    expect(pkg.scripts).toHaveProperty('start');
  });

  it('gives the API and the dashboard the same forward secret, which the operator must set', () => {
    const raw = readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8');
    // Required, with no default in the file (#18: the API ignored the dashboard's header).
    expect(raw).not.toMatch(/DASHBOARD_FORWARD_SECRET:-/);
    expect(services.api.environment!.DASHBOARD_FORWARD_SECRET).toBe(REQUIRED);
    expect(services.dashboard.environment!.DASHBOARD_FORWARD_SECRET).toBe(REQUIRED);
    expect(parseApiConfig(services.api.environment!).DASHBOARD_FORWARD_SECRET).toBe(REQUIRED);
  });

  it('builds its image with the same install and build as `npm run setup`', () => {
    const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/RUN npm ci\b/);
    expect(dockerfile).toMatch(/RUN npm run build\b/);
    for (const name of ['api', 'dashboard', ...stages.map(([n]) => n)]) {
      expect(services[name].build ?? services[name].image).toBeTruthy();
    }
  });
});
