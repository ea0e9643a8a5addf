import { buildId, port, release } from '../../../lib/runtime.js';

// Answered per request: a prerendered health would report the build, not the process.
export const dynamic = 'force-dynamic';

export function GET() {
  return Response.json({
    status: 'ok',
    release: release(),
    build: buildId(),
    pid: process.pid,
    port: port(),
    node: process.version,
  });
}
