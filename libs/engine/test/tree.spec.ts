// The prediction tree alone: expansion picks the best W children over the whole frontier, a hit
// keeps exactly the child's subtree, a miss discards everything, and masks follow ancestry.
// The property test drives random sequences of expand, hit, miss and prune.

import fc from 'fast-check';
import { PredictionTree } from '../src/index.js';

function withCandidates(tree: PredictionTree, lists: [number, number][][]): void {
  tree.layer(tree.height).forEach((n, i) => {
    n.candidates = (lists[i % lists.length] ?? []).map(([token, p]) => ({
      token,
      logProb: Math.log(p),
    }));
  });
}

describe('PredictionTree', () => {
  it('keeps the best W children over the whole frontier by cumulative log-probability', () => {
    const tree = new PredictionTree(3, 2, 100);
    const root = tree.reset(7, 9, 0, -1, 99);
    root.candidates = [
      { token: 1, logProb: Math.log(0.6) },
      { token: 2, logProb: Math.log(0.3) },
      { token: 3, logProb: Math.log(0.1) }, // beyond k = 2
    ];
    const l1 = tree.expand();
    expect(l1.map((n) => [n.token, n.depth, n.position, n.parent])).toEqual([
      [1, 1, 10, 99],
      [2, 1, 10, 99],
    ]);
    l1[0].candidates = [
      { token: 4, logProb: Math.log(0.4) }, // 0.24
      { token: 5, logProb: Math.log(0.3) }, // 0.18
    ];
    l1[1].candidates = [{ token: 6, logProb: Math.log(0.9) }]; // 0.27
    const l2 = tree.expand();
    expect(l2.map((n) => n.token)).toEqual([6, 4, 5]);
    expect(l2[0].logProb).toBeCloseTo(Math.log(0.27));
  });

  it('re-roots on a hit and prunes everything outside the child subtree', () => {
    const tree = new PredictionTree(4, 2, 1);
    tree.reset(0, 0, 0, -1, 0).candidates = [
      { token: 1, logProb: -0.1 },
      { token: 2, logProb: -0.2 },
    ];
    const [a, b] = tree.expand();
    a.candidates = [{ token: 3, logProb: -0.1 }];
    b.candidates = [{ token: 4, logProb: -0.1 }];
    const [c, d] = tree.expand();
    expect(tree.childWithToken(2)?.id).toBe(b.id);
    const pruned = tree.reroot(b.id);
    expect(pruned.sort()).toEqual([0, a.id, c.id].sort());
    expect(tree.root.id).toBe(b.id);
    expect(tree.liveIds().sort()).toEqual([b.id, d.id].sort());
    expect(tree.layer(1).map((n) => n.id)).toEqual([d.id]);
  });

  it('picks nodes the stages lack best first, parents before children, up to a limit', () => {
    const tree = new PredictionTree(8, 2, 1);
    const root = tree.reset(0, 0, 0, -1, 0);
    root.injected = true;
    root.candidates = [
      { token: 1, logProb: Math.log(0.7) },
      { token: 2, logProb: Math.log(0.3) },
    ];
    const [a, b] = tree.expand();
    a.injected = true; // the stages hold a (0.7) but not b (0.3)
    a.candidates = [{ token: 3, logProb: Math.log(0.2) }]; // 0.14
    b.candidates = [{ token: 4, logProb: Math.log(0.9) }]; // 0.27, but b is not sent yet
    const [d, c] = tree.expand();
    expect([d.token, c.token]).toEqual([4, 3]);
    expect(tree.injectedHeight).toBe(1);
    // Best first: b (0.3), then its child d (0.27) now that b goes too, then c (0.14).
    expect(tree.pickForInjection(2, 2).map((n) => n.id)).toEqual([b.id, d.id]);
    expect(tree.pickForInjection(8, 2).map((n) => n.id)).toEqual([b.id, d.id, c.id]); // by depth, then id
    // Not below the height asked for; nothing whose parent the stages lack.
    expect(tree.pickForInjection(8, 1).map((n) => n.id)).toEqual([b.id]);
    b.injected = true;
    d.injected = true;
    expect(tree.pickForInjection(8, 2).map((n) => n.id)).toEqual([c.id]);
    expect(tree.injectedHeight).toBe(2);
  });

  it('builds the ancestor mask of a layer', () => {
    const tree = new PredictionTree(2, 2, 1);
    tree.reset(0, 0, 0, -1, 0).candidates = [
      { token: 1, logProb: -0.1 },
      { token: 2, logProb: -0.2 },
    ];
    const [a, b] = tree.expand();
    a.candidates = [{ token: 3, logProb: -0.1 }];
    b.candidates = [{ token: 4, logProb: -0.5 }];
    const [c, d] = tree.expand();
    const m = tree.ancestorMask(2);
    expect(m.rowIds).toEqual([c.id, d.id]);
    expect(m.colIds).toEqual([0, a.id, b.id, c.id, d.id]);
    expect([...m.mask]).toEqual([1, 1, 0, 1, 0, 1, 0, 1, 0, 1]);
  });

  type Op =
    { kind: 'expand'; lists: [number, number][][] } | { kind: 'hit' | 'miss'; pick: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      kind: fc.constant('expand' as const),
      lists: fc.array(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.double({ min: 0.01, max: 1 })), {
          maxLength: 4,
        }),
        { minLength: 1, maxLength: 4 },
      ),
    }),
    fc.record({ kind: fc.constantFrom('hit' as const, 'miss' as const), pick: fc.nat() }),
  );

  it('after any sequence of expand, hit and miss: every live node descends from the root and masks match ancestry', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 4 }),
        fc.array(op, { maxLength: 40 }),
        (width, k, ops) => {
          const tree = new PredictionTree(width, k, 1);
          tree.reset(0, 5, 0, -1, 0);
          const removed = new Set<number>();
          let epoch = 0;
          for (const o of ops) {
            if (o.kind === 'expand') {
              withCandidates(tree, o.lists);
              const layer = tree.expand();
              expect(layer.length).toBeLessThanOrEqual(width);
            } else if (o.kind === 'hit' && tree.root.children.some((c) => tree.has(c))) {
              const kids = tree.root.children.filter((c) => tree.has(c));
              for (const id of tree.reroot(kids[o.pick % kids.length])) removed.add(id);
            } else {
              for (const id of tree.liveIds()) removed.add(id);
              const old = tree.root;
              tree.reset(o.pick % 10, old.position + 1, ++epoch, old.id);
            }
            const root = tree.root;
            for (const n of tree.liveNodes()) {
              expect(removed.has(n.id)).toBe(false);
              expect(tree.isAncestorOrSelf(root.id, n.id)).toBe(true);
              expect(n.position - root.position).toBe(n.depth - root.depth);
            }
            for (let d = 0; d <= tree.height; d++) {
              const m = tree.ancestorMask(d);
              m.rowIds.forEach((r, i) =>
                m.colIds.forEach((c, j) =>
                  expect(m.mask[i * m.colIds.length + j]).toBe(tree.isAncestorOrSelf(c, r) ? 1 : 0),
                ),
              );
            }
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});
