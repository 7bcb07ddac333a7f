import { defineConfig } from 'drizzle-kit';

// Used only by `pnpm --filter @storycheck/db generate` to write SQL migrations into ./drizzle.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/schema.ts',
  out: './drizzle',
});
