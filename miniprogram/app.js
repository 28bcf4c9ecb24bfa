// The students' mini-program. Page logic lives in logic/*.js as plain modules that take `wx`, the API
// client and the shared store (deps), so the same code runs here, in jest and in the Node e2e.
const config = require('./config')
const { createApi } = require('./core/api')

const store = {}
const api = createApi({ wx, baseUrl: config.baseUrl, retries: config.retries, loginCode: config.sandboxUrl ? sandboxLoginCode : null })

// Development against the WeChat sandbox only (config.sandboxUrl): a login code for this install's test openid.
function sandboxLoginCode() {
  let openid = wx.getStorageSync('sandbox_openid')
  if (!openid) {
    openid = `oDevTools${Date.now().toString(36)}${Math.random().toString(36).slice(2, 10)}`.slice(0, 28)
    wx.setStorageSync('sandbox_openid', openid)
  }
  return new Promise((resolve, reject) => {
    wx.request({
      url: `${config.sandboxUrl}/sandbox/login-codes`,
      method: 'POST',
      data: { openid },
      success: res => (res.statusCode === 201 ? resolve(res.data.code) : reject(new Error(`sandbox login code: ${res.statusCode}`))),
      fail: reject,
    })
  })
}

App({
  globalData: { store },
  deps() {
    return { wx, api, store, config }
  },
})
