// Checks that @huggingface/tokenizers (the JS library libs/model uses) reads the shipped
// tokenizer.json exactly as the Python tool does: same ids for every text in
// models/reference/tokens.json, and decode(ids) gives the text back.
// Usage (repo root, after npm install): node tools/train_demo/check_tokenizer.mjs [models/demo-target]
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';

const dir = process.argv[2] ?? 'models/demo-target';
const tok = new Tokenizer(
  JSON.parse(readFileSync(join(dir, 'tokenizer.json'), 'utf8')),
  JSON.parse(readFileSync(join(dir, 'tokenizer_config.json'), 'utf8')),
);
const cases = JSON.parse(
  readFileSync(process.argv[3] ?? 'models/reference/tokens.json', 'utf8'),
).cases;
let bad = 0;
for (const c of cases) {
  const ids = tok.encode(c.text).ids;
  const same = ids.length === c.ids.length && ids.every((v, i) => v === c.ids[i]);
  const back = ids.length > 1 ? tok.decode(ids.slice(1), { skip_special_tokens: false }) : '';
  if (!same || back !== c.text) {
    bad += 1;
    console.log(`MISMATCH ${c.id}: ${JSON.stringify(c.text).slice(0, 80)}`);
    if (!same) console.log(`  python ${JSON.stringify(c.ids)}\n  js     ${JSON.stringify(ids)}`);
    if (back !== c.text) console.log(`  decoded ${JSON.stringify(back).slice(0, 120)}`);
  }
}
console.log(`${cases.length - bad}/${cases.length} texts tokenized identically`);
process.exit(bad ? 1 : 0);
