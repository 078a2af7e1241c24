import { z } from 'zod';
import { ConfigError, envVar, parseEnv } from './env.js';

const shape = {
  PORT: envVar.port(3000),
  DATABASE_URL: envVar.url('postgresql://postgres@127.0.0.1:5432/pipedec'),
  DEBUG: envVar.bool(false),
  MODE: envVar.enumOf(['a', 'b'] as const, 'a'),
  SECRET: z.string().min(8),
};

describe('parseEnv', () => {
  it('applies defaults and coerces types', () => {
    const cfg = parseEnv('test', shape, { SECRET: 'long-enough', PORT: '', DEBUG: '1' });
    expect(cfg).toEqual({
      PORT: 3000,
      DATABASE_URL: 'postgresql://postgres@127.0.0.1:5432/pipedec',
      DEBUG: true,
      MODE: 'a',
      SECRET: 'long-enough',
    });
  });

  it('lists every invalid variable, not only the first', () => {
    let caught: unknown;
    try {
      parseEnv('test', shape, { PORT: 'abc', DATABASE_URL: 'not a url', MODE: 'c' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const vars = (caught as ConfigError).issues.map((i) => i.variable).sort();
    expect(vars).toEqual(['DATABASE_URL', 'MODE', 'PORT', 'SECRET']);
    expect((caught as ConfigError).message).toContain('PORT');
  });
});
