// What the running instance is: read at request time, never at build time, so that a
// build copied from another release (adapto's build cache) reports the release it runs in.
import fs from 'node:fs';
import path from 'node:path';

/** The release id adapto writes to backend/RELEASE ("dev" outside a release). */
export function release() {
  try {
    return fs.readFileSync(path.join(process.cwd(), 'RELEASE'), 'utf8').trim() || 'dev';
  } catch {
    return 'dev';
  }
}

/** The id of the `next build` this process serves (.next/BUILD_ID). */
export function buildId() {
  try {
    return fs.readFileSync(path.join(process.cwd(), '.next', 'BUILD_ID'), 'utf8').trim();
  } catch {
    return null;
  }
}

/** The port `next start -p $PORT` listens on. */
export function port() {
  const value = Number.parseInt(process.env.PORT || '', 10);
  return Number.isFinite(value) ? value : null;
}

/**
 * Where accepted messages are appended, one JSON line each.
 *
 * MESSAGES_FILE when set; otherwise beside the .env that adapto links into every
 * release (<root>/shared/), so that all instances and all releases write one file
 * that outlives a deploy; otherwise the working folder.
 */
export function messagesFile() {
  if (process.env.MESSAGES_FILE) return process.env.MESSAGES_FILE;
  try {
    const target = fs.readlinkSync(path.join(/* turbopackIgnore: true */ process.cwd(), '.env'));
    return path.join(path.dirname(path.resolve(/* turbopackIgnore: true */ process.cwd(), target)), 'messages.jsonl');
  } catch {
    return path.join(/* turbopackIgnore: true */ process.cwd(), 'messages.jsonl');
  }
}
