// The students' mini-program. Page logic lives in logic/*.js as plain modules that take `wx`, the API
// client and the shared store (deps), so the same code runs here, in jest and in the Node e2e.
const config = require('./config')
const { createApi } = require('./core/api')

const store = {}
const api = createApi({ wx, baseUrl: config.baseUrl, retries: config.retries })

App({
  globalData: { store },
  deps() {
    return { wx, api, store, config }
  },
})
