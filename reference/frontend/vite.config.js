import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// The backend a developer runs locally (reference/backend on its first port).
const backend = process.env.ADAPTO_BACKEND ?? 'http://127.0.0.1:3001';

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    // nginx serves /assets/ as immutable (hashed names): keep Vite's default
    // folder and hashed file names so the two agree.
    assetsDir: 'assets',
    // Sandbox browsers are current; no legacy transforms keeps the build fast.
    target: 'es2022',
  },
  server: {
    // `npm run dev` talks to a local backend the way nginx does in production.
    proxy: {
      '/api': backend,
      '/ws': { target: backend, ws: true },
    },
  },
});
