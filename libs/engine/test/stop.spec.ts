import { StopRules } from '../src/index.js';

const decode = (ids: readonly number[]) => ids.map((i) => String.fromCharCode(96 + i)).join('');

describe('StopRules', () => {
  it('stops at max tokens, or at the context limit with its own reason', () => {
    const r = new StopRules({
      maxTokens: 2,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: [],
    });
    expect(r.push(1).finish).toBeNull();
    expect(r.push(2).finish).toBe('max_tokens');
    const c = new StopRules({
      maxTokens: 1,
      finishAtLimit: 'context_full',
      eosTokenIds: [],
      stop: [],
    });
    expect(c.push(1).finish).toBe('context_full');
  });

  it('stops at an end-of-sequence id without emitting it', () => {
    const r = new StopRules({
      maxTokens: 9,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [0],
      stop: [],
      decode,
    });
    expect(r.push(1)).toEqual({ emit: true, delta: 'a', finish: null });
    expect(r.push(0)).toEqual({ emit: false, delta: '', finish: 'eos' });
    expect(r.tokens).toEqual([1]);
  });

  it('matches a stop string split across tokens, holding back text that may start it', () => {
    const r = new StopRules({
      maxTokens: 9,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: ['cd'],
      decode,
    });
    expect(r.push(1).delta).toBe('a'); // "a"
    expect(r.push(3).delta).toBe(''); // "ac": "c" may begin "cd"
    const last = r.push(4); // "acd"
    expect(last).toEqual({ emit: true, delta: '', finish: 'stop_string' });
    expect(r.output).toBe('a');
  });

  it('releases held-back text once it cannot become a stop string', () => {
    const r = new StopRules({
      maxTokens: 9,
      finishAtLimit: 'max_tokens',
      eosTokenIds: [],
      stop: ['cd'],
      decode,
    });
    r.push(3);
    expect(r.push(5).delta).toBe('ce');
  });
});
