// GPT-2's byte <-> unicode table, which byte-level BPE (Llama 3, tiktoken-style tokenizer.json)
// uses to spell arbitrary bytes as printable characters inside token strings.

function buildTables(): { byteToChar: string[]; charToByte: Map<string, number> } {
  const printable: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) printable.push(b);
  for (let b = 0xa1; b <= 0xac; b++) printable.push(b);
  for (let b = 0xae; b <= 0xff; b++) printable.push(b);
  const byteToChar: string[] = new Array<string>(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    byteToChar[b] = printable.includes(b)
      ? String.fromCodePoint(b)
      : String.fromCodePoint(256 + extra++);
  }
  const charToByte = new Map(byteToChar.map((c, b) => [c, b]));
  return { byteToChar, charToByte };
}

export const { byteToChar: BYTE_TO_CHAR, charToByte: CHAR_TO_BYTE } = buildTables();

/** The bytes a byte-level token string spells, or null if it is not byte-level text. */
export function byteLevelTokenBytes(token: string): Uint8Array | null {
  const chars = [...token];
  const out = new Uint8Array(chars.length);
  for (let i = 0; i < chars.length; i++) {
    const b = CHAR_TO_BYTE.get(chars[i]);
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}
