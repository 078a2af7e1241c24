export { ConfigError, envVar, loadEnvOrExit, parseEnv, type EnvIssue } from './env.js';
