module.exports = {
  testEnvironment: 'jsdom',
  testMatch: ['<rootDir>/tests/**/*.test.js'],
  // Nothing from the network, ever: the tests fake `wx`; the e2e (e2e/) is run by `make client-e2e`.
  testPathIgnorePatterns: ['/node_modules/', '/e2e/'],
}
