/// <reference types="vitest/config" />
import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// `npm run dev` proxies the API to a running console server (`trainconsole serve` or
// `trainconsole train`, port 7437 by default); point it elsewhere with
// TRAINCONSOLE_URL=http://127.0.0.1:PORT.
const apiTarget = process.env.TRAINCONSOLE_URL ?? 'http://127.0.0.1:7437'

export default defineConfig({
  // The page is served at `/` and at `/runs/{id}`: assets must resolve from the root.
  base: '/',
  plugins: [vue()],
  build: {
    // The Rust build passes `--outDir $OUT_DIR/web --emptyOutDir`; `dist/` otherwise.
    outDir: 'dist',
    target: 'es2022',
    // Keep every asset a file: the console is served with a CSP that allows no inline
    // script, and data: URLs would need their own allowance.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    sourcemap: false,
  },
  server: {
    proxy: {
      '/api': {
        target: apiTarget,
        ws: true,
        // The console refuses foreign Host and Origin headers (DNS rebinding, CSRF): present
        // the dev server's requests as the console's own.
        changeOrigin: true,
        configure(proxy) {
          proxy.on('proxyReq', (req) => {
            if (req.getHeader('origin')) req.setHeader('origin', apiTarget)
          })
          proxy.on('proxyReqWs', (req) => {
            if (req.getHeader('origin')) req.setHeader('origin', apiTarget)
          })
        },
      },
    },
  },
  test: {
    include: ['src/**/*.test.ts', 'tests/**/*.test.ts'],
    environment: 'node',
  },
})
