/**
 * `learn --write`: add learned rules to the policy file's `allow` sequence,
 * keeping every comment, blank line and quirk of its layout.
 *
 * The file is parsed with the yaml Document API to find where `allow` is (its
 * node's source range); the new items are spliced into the original text at
 * the end of that sequence, indented like its existing items. Re-rendering
 * the whole Document with toString() would keep comments but normalise the
 * layout (spacing before `#`, `[ a, b ]` padding, blank lines), so it is only
 * the fallback for an `allow` written as a non-empty flow sequence.
 */
import { isMap, isScalar, isSeq, parseDocument, type Scalar, type YAMLSeq } from 'yaml';

export class MergeError extends Error {}

function columnOf(text: string, offset: number): number {
  return offset - (text.lastIndexOf('\n', offset - 1) + 1);
}

function indent(block: string, n: number): string {
  const pad = ' '.repeat(n);
  return block
    .split('\n')
    .map((l) => (l ? pad + l : l))
    .join('\n');
}

/** `items`: YAML sequence items at column 0 (learn.ts `learnedYaml`). Returns the new policy text. */
export function mergeLearned(policyText: string, items: string): string {
  if (!items.trim()) return policyText;
  const doc = parseDocument(policyText, { keepSourceTokens: false });
  if (doc.errors.length) throw new MergeError(`the policy does not parse as YAML: ${doc.errors[0]!.message.split('\n')[0]}`);
  if (!isMap(doc.contents)) throw new MergeError('the policy is not a YAML mapping');
  const body = items.endsWith('\n') ? items : items + '\n';
  const allow = doc.get('allow', true);
  if (allow === undefined || allow === null) {
    const sep = policyText === '' || policyText.endsWith('\n') ? '' : '\n';
    return `${policyText}${sep}\nallow:\n${indent(body, 2)}`;
  }
  if (!isSeq(allow)) throw new MergeError('"allow" is not a sequence');
  const seq = allow as YAMLSeq;
  const [start, end] = seq.range!;
  if (seq.flow) {
    if (seq.items.length === 0) {
      // "allow: []" becomes a block sequence under the key; whatever followed "]" on that line stays there.
      const pair = doc.contents.items.find((p) => isScalar(p.key) && p.key.value === 'allow')!;
      const keyCol = columnOf(policyText, (pair.key as Scalar).range![0]);
      let lineEnd = policyText.indexOf('\n', end);
      if (lineEnd < 0) lineEnd = policyText.length;
      const rest = policyText.slice(end, lineEnd);
      return `${policyText.slice(0, start).replace(/[ \t]+$/, '')}${rest}\n${indent(body, keyCol + 2)}${policyText.slice(lineEnd + 1)}`;
    }
    // A non-empty flow sequence cannot take commented block items: re-render (comments kept, spacing normalised).
    const add = parseDocument(body).contents as YAMLSeq;
    seq.flow = false;
    for (const it of add.items) seq.items.push(it);
    return doc.toString({ flowCollectionPadding: false, lineWidth: 0 });
  }
  const col = columnOf(policyText, start);
  const pre = end > 0 && policyText[end - 1] !== '\n' ? '\n' : '';
  return `${policyText.slice(0, end)}${pre}\n${indent(body, col)}${policyText.slice(end)}`;
}
