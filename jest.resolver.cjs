/* global module */
/**
 * jest's module resolver: the default one, plus the custom `exports` condition
 * `@storycheck/source` (each workspace package.json maps it to src/index.ts), so a test's
 * in-process imports of workspace packages run their sources and need no build.
 * A module that is itself built output (…/dist/…, e.g. what packages/devtools/docs-gen.mjs
 * imports by path) resolves as plain node does, to dist/: one copy of each package per graph,
 * so `instanceof` holds between the modules it loads.
 */
const SOURCE_CONDITION = '@storycheck/source';
const BUILT = /[\\/]dist([\\/]|$)/;

module.exports = (request, options) => {
  const conditions = options.conditions ?? [];
  const wanted =
    BUILT.test(options.basedir) || conditions.includes(SOURCE_CONDITION)
      ? conditions
      : [SOURCE_CONDITION, ...conditions];
  return options.defaultResolver(request, { ...options, conditions: wanted });
};
