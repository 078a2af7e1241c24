// `npm run db:seed`: demo tenant, key and admin. Prints the key's secret once, in development.
import { loadEnvOrExit } from '@pipedec/contracts';
import { createPrismaClient } from './client.js';
import { seedEnvShape } from './config.js';
import { seedDemo } from './seed.js';

const config = loadEnvOrExit('seed', seedEnvShape, process.env);

const prisma = createPrismaClient(config.DATABASE_URL, { poolSize: 2, allowExitOnIdle: true });
try {
  const result = await seedDemo(prisma, {
    adminEmail: config.SEED_ADMIN_EMAIL,
    adminPassword: config.SEED_ADMIN_PASSWORD,
  });
  const lines = [`seed: demo tenant ${result.tenantId}`];
  if (result.createdApiKey) {
    lines.push(
      config.NODE_ENV === 'development'
        ? `seed: demo API key (shown once, store it now): ${result.createdApiKey.secret}`
        : `seed: demo API key ${result.createdApiKey.id} created (secret not printed outside development)`,
    );
  } else {
    lines.push('seed: demo tenant already has a key (secrets are shown only at creation)');
  }
  lines.push(
    result.adminCreated
      ? `seed: admin user ${config.SEED_ADMIN_EMAIL} created (password from SEED_ADMIN_PASSWORD)`
      : `seed: admin user ${config.SEED_ADMIN_EMAIL} exists`,
  );
  process.stdout.write(lines.join('\n') + '\n');
} finally {
  await prisma.$disconnect();
}
