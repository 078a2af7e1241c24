// Debian's Chromium driven by playwright-core (never a downloaded browser).
import pw from 'playwright-core';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { ROOT } from './stack.js';

export const ARTIFACTS = path.join(ROOT, 'test-artifacts/dashboard');

export async function launchChromium(): Promise<pw.Browser> {
  await mkdir(ARTIFACTS, { recursive: true });
  return pw.chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-dev-shm-usage',
    ],
  });
}

/** A full-page screenshot kept as a test artefact (test-artifacts/dashboard/<name>.png). */
export async function screenshot(page: pw.Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
}
