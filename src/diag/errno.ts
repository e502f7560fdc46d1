/**
 * The one place an operating-system error becomes words for a person: every
 * "cannot read FILE: …" message (policies, set files, logs, state) says the
 * same thing for the same errno.
 */
export function errnoText(e: unknown): string {
  const code = (e as { code?: string } | undefined)?.code;
  switch (code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    case 'EROFS':
      return 'read-only file system';
    case 'ENOSPC':
      return 'no space left on the device';
    case 'EDQUOT':
      return 'disk quota exceeded';

    case 'ENOTFOUND':
      return 'name not found';
  }
  const m = e instanceof Error ? e.message : String(e);
  return m.replace(/^[A-Z]+: /, '');
}
