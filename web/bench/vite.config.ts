// Builds the chart lab page (bench/index.html + lab.ts) into bench/dist: the benchmark
// (bench/run.mjs) and the real-browser pixel test (e2e/chart.test.mjs) load it. Not part of
// the product build.
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vite'

const root = fileURLToPath(new URL('.', import.meta.url))

export default defineConfig({
  root,
  base: './',
  logLevel: 'warn',
  build: { outDir: 'dist', emptyOutDir: true, target: 'es2022', sourcemap: false, modulePreload: { polyfill: false } },
})
