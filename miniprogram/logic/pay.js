// Pay (seed step 7): wx.requestPayment with the gateway's parameters. The order is one intent: a cancelled
// or failed payment is retried with the same Idempotency-Key, so the gateway hands back the same pending
// order (same prepay_id) and the student can never be charged twice.
const { askSubscribe, requestPayment } = require('../core/wxp')
const { MESSAGES } = require('../core/messages')
const { yuan } = require('../core/rules')
const { loadSchool, errorText, templates } = require('./common')

module.exports = function payPage(deps) {
  const { wx, api, store, config } = deps
  return {
    data: { fee: '', items: [], phase: 'ready', error: '', busy: false }, // ready | paying | confirming

    async onLoad() {
      try {
        const school = await loadSchool(deps)
        this.setData({ fee: yuan(school.fee_fen), items: school.service_items.filter(i => i.included).map(i => i.name) })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    // A tap: the subscribe-message request must come first, synchronously, inside it.
    onPay() {
      if (this.data.busy) return Promise.resolve()
      const asked = askSubscribe(wx, templates(store.school, 'payment'))
      this.setData({ busy: true, phase: 'paying', error: '' })
      return this.pay(asked)
    },

    async pay(asked) {
      try {
        await asked
        const order = await api.call('POST', '/api/v1/orders', { intent: 'order' })
        store.order = order
        await requestPayment(wx, order.payment)
        this.setData({ phase: 'confirming' })
        // WeChat Pay tells the gateway (its notification); the page waits for the gateway to know.
        await api.waitForApplication(v => Boolean(v.order && v.order.status === 'paid'), {
          intervalMs: config.pollIntervalMs,
          timeoutMs: 60000,
        })
        api.finishIntent('order')
        wx.redirectTo({ url: '/pages/guide/index' })
      } catch (err) {
        if (err.code === 'illegal_transition' && err.details && err.details.reason === 'already_paid') {
          api.finishIntent('order')
          wx.redirectTo({ url: '/pages/guide/index' })
          return
        }
        const text = err.code === 'payment_cancelled' || err.code === 'payment_failed' ? MESSAGES[err.code] : errorText(err)
        this.setData({ phase: 'ready', error: text })
      } finally {
        this.setData({ busy: false })
      }
    },
  }
}
