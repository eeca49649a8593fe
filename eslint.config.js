// ESLint: the recommended JavaScript and typescript-eslint rules, nothing project-specific.
// Formatting is Prettier's job (npm run format), so no stylistic rules here.
import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'runs/', '.tmp/', 'models/', 'scripts/.k8s-typecheck.ts'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly' },
    },
    rules: {
      // `_` marks a value deliberately unused (destructuring, callbacks).
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  // The playground is plain browser JavaScript.
  { files: ['web/**/*.js'], languageOptions: { globals: globals.browser } },
);
