import { builtinModules } from 'node:module';
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));

/**
 * Electron main as one CommonJS file (dist/electron/main.cjs): our code and
 * its libraries bundled, `electron` and Node's own modules left to the
 * runtime. Vite builds it directly (no Forge plugin: Forge needs the
 * Electron binary).
 */
export default defineConfig({
  logLevel: 'warn',
  resolve: { conditions: ['node', 'import', 'default'], mainFields: ['module', 'main'] },
  build: {
    outDir: here('../../dist/electron'),
    emptyOutDir: false,
    target: 'node22',
    minify: false,
    sourcemap: true,
    lib: { entry: here('main.ts'), formats: ['cjs'], fileName: () => 'main.cjs' },
    rollupOptions: {
      external: ['electron', ...builtinModules, ...builtinModules.map((m) => `node:${m}`)],
      onwarn(w, warn) {
        // zod's comments that Rollup cannot place are harmless.
        if (w.code !== 'INVALID_ANNOTATION') warn(w);
      },
    },
  },
});
