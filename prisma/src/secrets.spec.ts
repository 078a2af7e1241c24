import {
  API_KEY_PREFIX,
  digestsEqual,
  hashApiKeySecret,
  hashPassword,
  newApiKeySecret,
  verifyPassword,
} from './secrets.js';

describe('API key secrets', () => {
  it('are random, prefixed, displayable by prefix and stored as a SHA-256 hex digest', () => {
    const a = newApiKeySecret();
    const b = newApiKeySecret();
    expect(a.secret).not.toBe(b.secret);
    expect(a.secret.startsWith(API_KEY_PREFIX)).toBe(true);
    expect(a.secret.startsWith(a.prefix)).toBe(true);
    expect(a.prefix.length).toBeLessThan(a.secret.length / 2);
    expect(a.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(a.hash).toBe(hashApiKeySecret(a.secret));
    expect(digestsEqual(a.hash, hashApiKeySecret(a.secret))).toBe(true);
    expect(digestsEqual(a.hash, b.hash)).toBe(false);
    expect(digestsEqual(a.hash, a.hash.slice(0, 10))).toBe(false);
  });
});

describe('admin passwords', () => {
  it('verify only the right password, with a salt per hash', async () => {
    const h1 = await hashPassword('correct horse');
    const h2 = await hashPassword('correct horse');
    expect(h1).not.toBe(h2);
    expect(h1.startsWith('scrypt$')).toBe(true);
    expect(await verifyPassword('correct horse', h1)).toBe(true);
    expect(await verifyPassword('correct horse!', h1)).toBe(false);
    expect(await verifyPassword('correct horse', 'not-a-hash')).toBe(false);
  });
});
