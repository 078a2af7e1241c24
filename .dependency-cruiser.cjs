// Import rules (`npm run lint:imports`, part of `npm run check`): the boundaries of shared
// docs/architecture.md, checked on the sources. No import circles; no app imports another
// app (tests share harnesses through @pipedec/testkit); libs never import apps; the api never
// runs a model (no onnxruntime-node, and only @pipedec/model's tokenizer subpath); libs/engine
// does no I/O; onnxruntime-node is imported by libs/model/src/onnx-runtime.ts alone.
/** Node built-ins and packages that do I/O (files, network, processes, stores). */
const IO =
  '^(node:)?(fs|fs/promises|net|http|https|http2|dgram|dns|tls|child_process|cluster|worker_threads)$' +
  '|^(@grpc/|ioredis|bullmq|pg$|@prisma/|@pipedec/db|socket\\.io|@nestjs/)';

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'An import circle: split the shared part out, or invert one edge.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-folder-circular',
      severity: 'error',
      comment: 'Two folders that import each other are one part: give each its own job.',
      scope: 'folder',
      from: { path: '^(libs|apps|prisma)/' },
      to: { circular: true },
    },
    {
      name: 'no-app-imports-app',
      severity: 'error',
      comment: 'Apps meet through contracts and processes; shared test harnesses live in testkit.',
      // (The repo-level suite test/ is no app: its docker-compose.spec reads every app's config.)
      from: { path: '^apps/([^/]+)/' },
      to: { path: '^apps/', pathNot: '^apps/$1/' },
    },
    {
      name: 'no-lib-imports-app',
      severity: 'error',
      from: { path: '^(libs|prisma)/' },
      to: { path: '^apps/' },
    },
    {
      name: 'api-runs-no-model',
      severity: 'error',
      comment:
        'The api never runs a model: it may load only the tokenizer (@pipedec/model/tokenizer). ' +
        'Its tests too: they reach a model through @pipedec/testkit/model.',
      from: { path: '^apps/api/' },
      to: { path: '^libs/(model|engine)/', pathNot: '^libs/model/src/tokenizer\\.ts$' },
    },
    // Tests of app X import X, the packages X's sources may import, and @pipedec/testkit for
    // anything else (harnesses, checkpoints, references): each rule covers an app's sources
    // and its tests alike (apps/X/src, apps/X/test).
    {
      name: 'dashboard-imports-contracts-only',
      severity: 'error',
      comment:
        'The dashboard meets the service through the api and @pipedec/contracts; its tests ' +
        'reach a model or the database through @pipedec/testkit.',
      from: { path: '^apps/dashboard/' },
      to: { path: '^(libs/(model|engine)|prisma)/' },
    },
    {
      name: 'stage-node-uses-no-database',
      severity: 'error',
      comment: 'Stage nodes meet the api through Redis and gRPC, never its database.',
      from: { path: '^apps/stage-node/' },
      to: { path: '^prisma/' },
    },
    {
      name: 'api-never-loads-onnxruntime',
      severity: 'error',
      comment: 'Nothing the api loads reaches onnxruntime-node (module-graph.spec checks it too).',
      from: { path: '^apps/api/src/' },
      to: { path: 'onnxruntime-node', reachable: true },
    },
    {
      name: 'onnxruntime-only-in-onnx-runtime',
      severity: 'error',
      comment: 'libs/model/src/onnx-runtime.ts is the one place that imports onnxruntime-node.',
      from: {
        path: '^(libs|apps|prisma|bench)/',
        pathNot: '^libs/model/src/onnx-runtime\\.ts$|\\.spec\\.ts$',
      },
      to: { path: 'onnxruntime-node' },
    },
    {
      name: 'engine-does-no-io',
      severity: 'error',
      comment: 'libs/engine is the method in plain TypeScript: no framework and no I/O.',
      from: { path: '^libs/engine/src/', pathNot: '\\.spec\\.ts$' },
      to: { path: IO },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    // bench/results: measurements, and the one-off scripts some were taken with (not the product).
    exclude: { path: '^(apps|libs)/[^/]+/(dist|\\.next)/|^prisma/dist/|^bench/results/' },
    tsPreCompilationDeps: true,
    // For the dashboard's `@/` path alias (the other parts resolve through package exports).
    tsConfig: { fileName: 'tsconfig.depcruise.json' },
    combinedDependencies: false,
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['source', 'import', 'require', 'node', 'types', 'default'],
      extensions: ['.ts', '.tsx', '.js', '.mjs', '.cjs', '.d.ts'],
      mainFields: ['module', 'main', 'types'],
    },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
