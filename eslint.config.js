// Lint rules that enforce the architecture (STYLE.md 1, 2, 11): src/core is pure.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`, `${m}/*`, `node:${m}/*`]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'src/console/dist/**', 'native/*/build/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain JavaScript files (bin/, this config) run on Node.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly', URL: 'readonly' } },
  },
  {
    // The native binding's loader is CommonJS (node-gyp's build output is loaded with require).
    files: ['native/**/*.js'],
    languageOptions: { sourceType: 'commonjs', globals: { module: 'writable', require: 'readonly' } },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: nodeBuiltins, message: 'src/core is pure: no I/O modules. Take what you need as an input (STYLE.md 1).' },
          { group: ['**/adapters/**', '**/daemon/**', '**/api/**', '**/cli/**'], message: 'src/core depends on nothing outside src/core (STYLE.md 11).' }],
      }],
      'no-restricted-globals': ['error',
        ...['setTimeout', 'setInterval', 'setImmediate', 'clearTimeout', 'clearInterval', 'clearImmediate', 'queueMicrotask', 'process', 'require', 'fetch', 'performance']
          .map((name) => ({ name, message: 'src/core has no timers or process access: time is an input (STYLE.md 2).' })),
      ],
      'no-restricted-properties': ['error',
        { object: 'Date', property: 'now', message: 'Time is an input in src/core (STYLE.md 2).' },
        { object: 'Math', property: 'random', message: 'Randomness is an input in src/core (STYLE.md 2).' },
      ],
      'no-restricted-syntax': ['error',
        { selector: "NewExpression[callee.name='Date'][arguments.length=0]", message: 'Time is an input in src/core (STYLE.md 2).' },
      ],
    },
  },
  {
    files: ['src/adapters/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/daemon/**', '**/api/**', '**/cli/**'], message: 'adapters depend only on core (STYLE.md 11).' }] }],
    },
  },
  {
    files: ['src/daemon/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/api/**', '**/cli/**'], message: 'daemon depends on core and adapters only (STYLE.md 11).' }] }],
    },
  },
);
