import crypto from 'node:crypto';
import fs from 'node:fs';

import { messagesFile, port, release } from '../../../lib/runtime.js';

export const dynamic = 'force-dynamic';

const MAX_TEXT = 4000;
const MAX_DELAY_MS = 5000;

function invalid(error) {
  return Response.json({ error }, { status: 400 });
}

/**
 * Accept one chat message: {"text": "...", "client_id"?: "...", "delay_ms"?: 0..5000}.
 *
 * 201 with the id it was given once it is appended (one write(2) with O_APPEND,
 * so lines from both instances never interleave); 400 naming what is wrong.
 * client_id is recorded as sent, so a test can tell a request processed twice.
 */
export async function POST(request) {
  let body;
  try {
    body = await request.json();
  } catch {
    return invalid('body: not valid JSON');
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return invalid('body: expected a JSON object');
  }
  const { text, client_id: clientId, delay_ms: delayMs = 0 } = body;
  if (typeof text !== 'string' || text.trim() === '') {
    return invalid('text: a non-empty string is required');
  }
  if (text.length > MAX_TEXT) {
    return invalid(`text: longer than ${MAX_TEXT} characters`);
  }
  if (clientId !== undefined && (typeof clientId !== 'string' || clientId.length > 200)) {
    return invalid('client_id: expected a string of at most 200 characters');
  }
  if (!Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_DELAY_MS) {
    return invalid(`delay_ms: expected an integer from 0 to ${MAX_DELAY_MS}`);
  }
  // A slow handler on request: shows that a stopping instance finishes what it accepted.
  if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
  const record = {
    id: crypto.randomUUID(),
    client_id: clientId ?? null,
    text,
    release: release(),
    port: port(),
    pid: process.pid,
    at: new Date().toISOString(),
  };
  fs.appendFileSync(messagesFile(), `${JSON.stringify(record)}\n`);
  return Response.json({ id: record.id, release: record.release }, { status: 201 });
}
