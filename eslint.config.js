import js from '@eslint/js';
import tseslint from 'typescript-eslint';

// Layer rules (STYLE.md §3.1): src/k8s and src/clearml sit at the bottom and import neither each
// other nor anything above them; only src/main.ts wires the layers together.
const layer = (files, forbidden) => ({
  files,
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: forbidden.map((group) => ({
          group: [group],
          message: 'layer rule: see STYLE.md §3.1',
        })),
      },
    ],
  },
});

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'coverage/',
      '.cache/',
      '.cluster/',
      'launcher/',
      'charts/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.strict,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      // Constant log messages, data in fields (STYLE.md §13).
      'no-restricted-syntax': [
        'error',
        {
          selector:
            'CallExpression[callee.property.name=/^(trace|debug|info|warn|error|fatal)$/][callee.object.name=/^(log|logger)$/] > TemplateLiteral',
          message: 'log messages are constant strings; put variable data in the fields object',
        },
      ],
    },
  },
  {
    // In tests a missing field is a failure the next assertion reports; `!` keeps them short.
    files: ['test/**'],
    rules: { '@typescript-eslint/no-non-null-assertion': 'off' },
  },
  layer(
    ['src/k8s/**'],
    ['**/clearml/**', '**/controller/**', '**/api/**', '**/metrics/**', '**/web/**', '**/main*'],
  ),
  layer(
    ['src/clearml/**'],
    ['**/k8s/**', '**/controller/**', '**/api/**', '**/metrics/**', '**/web/**', '**/main*'],
  ),
  layer(['src/controller/**'], ['**/metrics/**', '**/web/**', '**/main*']),
  layer(['src/api/**'], ['**/controller/**', '**/metrics/**', '**/web/**', '**/main*']),
  layer(['src/metrics/**', 'src/web/**'], ['**/main*']),
);
