// adapto links node_modules into each release from <root>/shared/deps/<hash>/ (one
// install per package-lock.json), so the real node_modules sits outside the app's
// folder. Turbopack compiles nothing outside its root ("Could not find the Next.js
// package"): the root is the nearest folder holding both the app and its real
// node_modules. Outside adapto (a plain node_modules folder) that is the app itself.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function workspaceRoot() {
  let modules;
  try {
    modules = fs.realpathSync(path.join(here, 'node_modules'));
  } catch {
    return here;
  }
  let root = fs.realpathSync(here);
  while (!`${modules}${path.sep}`.startsWith(`${root}${path.sep}`) && path.dirname(root) !== root) {
    root = path.dirname(root);
  }
  return root;
}

const root = workspaceRoot();

/** @type {import('next').NextConfig} */
const nextConfig = {
  poweredByHeader: false,
  // Both must agree (Next.js warns otherwise): builds and file tracing share the root.
  turbopack: { root },
  outputFileTracingRoot: root,
};

export default nextConfig;
