import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/**
 * The workspace packages' folder names (apps/* and packages/*), less devtools: its plain-node
 * scripts (lib.mjs) are shared by path with the benchmarks, as they run before any install.
 */
const PACKAGE_NAMES = ['apps', 'packages'].flatMap((dir) =>
  readdirSync(join(import.meta.dirname, dir), { withFileTypes: true })
    .filter((d) => d.isDirectory() && d.name !== 'devtools')
    .map((d) => d.name),
);

/**
 * A package is used through its name and its index (package.json `exports`), never through its
 * files: `@storycheck/x/src/…`, `@storycheck/x/dist/…`, a relative path into another package, or
 * into built output. A child process that must run built code imports its own package by name
 * (plain node resolves that to dist/; see packages/pool/test/fixtures/).
 */
const RESTRICTED_IMPORTS = {
  patterns: [
    {
      // A subpath the package itself exports (package.json "exports") is part of its API.
      group: ['@storycheck/*/**', '!@storycheck/pool/admin'],
      message:
        "Import a workspace package by its name only ('@storycheck/x'): src/ and dist/ paths skip its API (export what you need from its index).",
    },
    {
      regex: `^(\\.\\./)+(apps/|packages/(?!devtools/)|(${PACKAGE_NAMES.join('|')})/)`,
      message:
        "A relative path into another workspace package: import it by its name ('@storycheck/x'), and add it to this package's dependencies.",
    },
    {
      regex: '^\\.{1,2}/(.*/)?dist(/|$)',
      message:
        'Built output by path: import the package by its name (under plain node that is its dist/, under jest and tsc its src/).',
    },
  ],
};

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      '.tools/**',
      '.turbo/**',
      '**/drizzle/**',
      '**/drizzle.config.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: {
        // The test tsconfigs include src and test, so every .ts file has a program.
        project: [
          './apps/*/tsconfig.test.json',
          './packages/*/tsconfig.test.json',
          './packages/testkit/tsconfig.json',
        ],
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
    },
  },
  {
    rules: { 'no-restricted-imports': ['error', RESTRICTED_IMPORTS] },
  },
  {
    // Long functions hide their steps from stack traces, tests and readers (issue 20). A warning:
    // one over the limit says why next to it, or is split.
    files: ['apps/*/src/**/*.ts', 'packages/*/src/**/*.ts'],
    rules: {
      'max-lines-per-function': ['warn', { max: 80, skipBlankLines: true, skipComments: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        URL: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        performance: 'readonly',
        Buffer: 'readonly',
      },
    },
  },
);
