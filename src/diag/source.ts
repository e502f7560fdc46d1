/**
 * Source text and offset → position mapping.
 *
 * Lines and columns are BOTH 1-based. Columns count characters the way the
 * `yaml` library counts them: JavaScript string indices (UTF-16 code units),
 * not bytes. esbuild mixes 0-based byte columns with 1-based lines; we don't.
 */
export interface Span {
  file: string;
  start: number;
  end: number;
}

export interface Position {
  line: number;
  col: number;
}

export class SourceFile {
  private readonly lineStarts: number[];

  constructor(
    readonly name: string,
    readonly text: string,
    /** Where this file was included from (`sets: { file: … }`), for the "in file included from" chain. */
    readonly includedFrom?: Span,
  ) {
    const starts = [0];
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 10) starts.push(i + 1);
    this.lineStarts = starts;
  }

  position(offset: number): Position {
    const o = Math.max(0, Math.min(offset, this.text.length));
    let lo = 0;
    let hi = this.lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.lineStarts[mid]! <= o) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: o - this.lineStarts[lo]! + 1 };
  }

  /** The text of a 1-based line, without its newline. */
  lineText(line: number): string {
    const start = this.lineStarts[line - 1] ?? this.text.length;
    const next = this.lineStarts[line];
    const end = next === undefined ? this.text.length : next - 1;
    return this.text.slice(start, end).replace(/\r$/, '');
  }

  span(start: number, end: number): Span {
    return { file: this.name, start, end };
  }
}

/** Every source file a run has read, so diagnostics can be rendered with their text. */
export class SourceMap {
  private readonly files = new Map<string, SourceFile>();
  add(f: SourceFile): SourceFile {
    this.files.set(f.name, f);
    return f;
  }
  get(name: string): SourceFile | undefined {
    return this.files.get(name);
  }

}
