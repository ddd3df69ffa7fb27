// Writes the Llama-2 vocabulary (piece -> id) as JSON, so the project can build a
// Llama-2-compatible tokenizer.model itself (llm::write_llama2_tokenizer_model) without shipping
// Meta's file. The pieces come from the MIT-licensed npm package llama-tokenizer-js, whose
// vocabById lists them in id order, spelled as in SentencePiece ("▁" for a space).
// (@lenml/llama2-tokenizer-vocab-llama2 does not fit: it holds Mistral's vocabulary.)
//
//   npm ci && node scripts/export-llama2-vocab.mjs build/llama2-vocab.json
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import llamaTokenizer from 'llama-tokenizer-js';

const [outFile] = process.argv.slice(2);
if (!outFile) {
  console.error('usage: node scripts/export-llama2-vocab.mjs OUT.json');
  process.exit(2);
}

const vocab = {};
llamaTokenizer.vocabById.forEach((piece, id) => {
  vocab[piece] = id;
});
mkdirSync(dirname(outFile), { recursive: true });
writeFileSync(outFile, JSON.stringify(vocab));
console.log(`wrote ${llamaTokenizer.vocabById.length} pieces to ${outFile}`);
