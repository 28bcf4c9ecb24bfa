// Promise forms of the callback-style wx APIs the pages use (injected `wx`, never the global).
function call(wx, name, options = {}) {
  return new Promise((resolve, reject) => {
    wx[name](Object.assign({}, options, { success: resolve, fail: reject }))
  })
}

/** Ask for subscribe-message permission. Must be called synchronously inside a tap handler. */
function askSubscribe(wx, tmplIds) {
  const ids = (tmplIds || []).filter(Boolean).slice(0, 3) // WeChat takes at most 3 per call
  if (!ids.length || typeof wx.requestSubscribeMessage !== 'function') return Promise.resolve({})
  return new Promise(resolve => {
    wx.requestSubscribeMessage({
      tmplIds: ids,
      success: res => resolve(res),
      fail: () => resolve({}), // refusing is allowed: the status page shows the same result
    })
  })
}

/** wx.requestPayment with the gateway's parameters; a cancel rejects with code payment_cancelled. */
function requestPayment(wx, payment) {
  return new Promise((resolve, reject) => {
    wx.requestPayment({
      timeStamp: payment.timeStamp,
      nonceStr: payment.nonceStr,
      package: payment.package,
      signType: payment.signType,
      paySign: payment.paySign,
      success: resolve,
      fail: err => {
        const cancelled = /cancel/.test((err && err.errMsg) || '')
        const e = new Error((err && err.errMsg) || 'requestPayment:fail')
        e.code = cancelled ? 'payment_cancelled' : 'payment_failed'
        reject(e)
      },
    })
  })
}

function toast(wx, title) {
  wx.showToast({ title: String(title).slice(0, 20), icon: 'none' })
}

module.exports = { call, askSubscribe, requestPayment, toast }
