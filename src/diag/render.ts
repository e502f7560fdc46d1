import { MAX_ERRORS, sortDiagnostics, visible, type Diagnostic } from './diagnostic.js';
import type { SourceMap, Span } from './source.js';

const WIDTH = 80;

export interface Location {
  file: string;
  line: number;
  col: number;
  endLine: number;
  endCol: number;
}

export function locate(sources: SourceMap, span: Span): Location | undefined {
  const f = sources.get(span.file);
  if (!f) return undefined;
  const a = f.position(span.start);
  const b = f.position(span.end);
  return { file: span.file, line: a.line, col: a.col, endLine: b.line, endCol: b.col };
}

function where(sources: SourceMap, span: Span | undefined): string {
  if (!span) return 'egress';
  const l = locate(sources, span);
  return visible(l ? `${l.file}:${l.line}:${l.col}` : span.file);
}

/** The source line with a caret run under the span, trimmed to 80 columns keeping the caret visible. */
function excerpt(sources: SourceMap, span: Span, mark: string): string[] {
  const f = sources.get(span.file);
  if (!f) return [];
  const a = f.position(span.start);
  const b = f.position(span.end);
  // Control characters (terminal escapes among them) and bidi overrides are shown as '?', one column each, so carets stay aligned.
  let text = f
    .lineText(a.line)
    .replace(/\t/g, ' ')
    .replace(/[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g, '?');
  let col = a.col - 1;
  // A span over several lines (a whole mapping) is marked on its first line only, up to any comment.
  const firstLine = text.slice(col).replace(/\s+#.*$/, '').trimEnd();
  let len = b.line === a.line ? Math.max(1, b.col - a.col) : Math.max(1, firstLine.length);
  if (text.length + 4 > WIDTH) {
    const shift = Math.max(0, Math.min(col - 20, text.length - (WIDTH - 4)));
    if (shift > 0) {
      text = '…' + text.slice(shift + 1);
      col -= shift;
    }
    if (text.length > WIDTH - 4) text = text.slice(0, WIDTH - 5) + '…';
    len = Math.max(1, Math.min(len, WIDTH - 4 - col));
  }
  if (text.trim() === '') return [];
  return ['    ' + text, '    ' + ' '.repeat(Math.max(0, col)) + mark.repeat(len)];
}

function includeChain(sources: SourceMap, span: Span): string[] {
  const out: string[] = [];
  let f = sources.get(span.file);
  const seen = new Set<string>();
  while (f?.includedFrom && !seen.has(f.name)) {
    seen.add(f.name);
    out.push(`in file included from ${where(sources, f.includedFrom)}`);
    f = sources.get(f.includedFrom.file);
  }
  return out;
}

export function renderDiagnostic(sources: SourceMap, d: Diagnostic): string {
  const lines: string[] = [];
  if (d.span) lines.push(...includeChain(sources, d.span));
  // Messages and hints are made visible here too, for any user text that reached one without q().
  lines.push(`${where(sources, d.span)}: ${d.severity}: ${visible(d.message)}`);
  if (d.span && d.excerpt !== false) lines.push(...excerpt(sources, d.span, '^'));
  for (const n of d.notes ?? []) {
    lines.push(`${n.span ? where(sources, n.span) + ': ' : '  '}note: ${visible(n.message)}`);
    if (n.span) lines.push(...excerpt(sources, n.span, '~'));
  }
  if (d.hint) lines.push(`  hint: ${visible(d.hint)}`);
  return lines.join('\n');
}

/** Sort, cap errors at MAX_ERRORS, and render as text, one block per diagnostic. */
export function renderText(sources: SourceMap, ds: readonly Diagnostic[]): string {
  const sorted = capErrors(sortDiagnostics([...ds]));
  return sorted.map((d) => renderDiagnostic(sources, d)).join('\n') + (sorted.length ? '\n' : '');
}

export function capErrors(ds: Diagnostic[]): Diagnostic[] {
  let errors = 0;
  const out: Diagnostic[] = [];
  for (const d of ds) {
    if (d.severity === 'error' && ++errors > MAX_ERRORS) continue;
    out.push(d);
  }
  if (errors > MAX_ERRORS)
    out.push({ severity: 'error', code: 'too-many-errors', message: `too many errors (${errors - MAX_ERRORS} more not shown)` });
  return out;
}

export interface JsonDiagnostic {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  file?: string;
  line?: number;
  col?: number;
  endLine?: number;
  endCol?: number;
  hint?: string;
  notes?: { message: string; file?: string; line?: number; col?: number }[];
}

/** The same Diagnostic objects, with spans resolved to 1-based line/col, for `--json`. */
export function toJson(sources: SourceMap, ds: readonly Diagnostic[]): JsonDiagnostic[] {
  return capErrors(sortDiagnostics([...ds])).map((d) => {
    const loc = d.span ? locate(sources, d.span) : undefined;
    const out: JsonDiagnostic = { severity: d.severity, code: d.code, message: d.message };
    if (loc) Object.assign(out, loc);
    else if (d.span) out.file = d.span.file;
    if (d.hint) out.hint = d.hint;
    if (d.notes?.length)
      out.notes = d.notes.map((n) => {
        const l = n.span ? locate(sources, n.span) : undefined;
        return { message: n.message, ...(l ? { file: l.file, line: l.line, col: l.col } : {}) };
      });
    return out;
  });
}
