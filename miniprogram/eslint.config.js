const js = require('@eslint/js')
const globals = require('globals')

const wechat = { wx: 'readonly', App: 'readonly', Page: 'readonly', Component: 'readonly', getApp: 'readonly', getCurrentPages: 'readonly' }

module.exports = [
  { ignores: ['node_modules/**'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: { ecmaVersion: 2020, sourceType: 'commonjs', globals: { ...globals.node, ...wechat } },
    rules: { 'no-unused-vars': ['error', { args: 'none', caughtErrors: 'none' }], 'no-restricted-globals': 'off' },
  },
  {
    // Page logic gets `wx` injected: the global is only for app.js and the page shims.
    files: ['core/**/*.js', 'logic/**/*.js'],
    languageOptions: { globals: { ...globals.es2020, setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly' } },
    rules: { 'no-restricted-globals': ['error', 'wx', 'getApp'] },
  },
  { files: ['tests/**/*.js'], languageOptions: { globals: { ...globals.jest, ...globals.browser } } },
]
