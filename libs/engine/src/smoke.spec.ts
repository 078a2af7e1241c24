describe('workspace', () => {
  it('runs ESM TypeScript through SWC', async () => {
    const { createHash } = await import('node:crypto');
    expect(createHash('sha256').update('x').digest('hex')).toHaveLength(64);
  });
});
