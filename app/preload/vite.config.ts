import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/** The sandboxed preload as one CommonJS file (dist/electron/preload.cjs); only `electron` is external. */
export default defineConfig({
  logLevel: 'warn',
  build: {
    outDir: here('../../dist/electron'),
    emptyOutDir: false,
    target: 'chrome140',
    minify: false,
    sourcemap: true,
    lib: { entry: here('preload.ts'), formats: ['cjs'], fileName: () => 'preload.cjs' },
    rollupOptions: { external: ['electron'] },
  },
});
