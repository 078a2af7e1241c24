import { loadEnvOrExit } from '@pipedec/contracts';
import { createApp } from './app.js';
import { apiEnvShape } from './config/api-config.js';

const config = loadEnvOrExit('api', apiEnvShape, process.env);
const app = await createApp(config);
await app.listen(config.API_PORT, config.API_HOST);
process.stdout.write(`api: listening on http://${config.API_HOST}:${config.API_PORT}\n`);
