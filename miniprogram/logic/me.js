// 我的: the masked profile, unbinding (解除绑定), FAQ and support.
const { errorText } = require('./common')

module.exports = function mePage(deps) {
  const { wx, api, store } = deps
  return {
    data: { me: null, error: '', busy: false },

    onShow() {
      return this.refresh()
    },

    async refresh() {
      try {
        this.setData({ me: await api.call('GET', '/api/v1/me'), error: '' })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onUnbind() {
      return new Promise(resolve => {
        wx.showModal({
          title: '解除绑定',
          content: '解除后本微信将不能再为您操作；您的采集进度会保留，可用新的微信重新读取采集码继续。',
          success: async res => {
            if (res.confirm) {
              try {
                const me = await api.call('DELETE', '/api/v1/me/binding')
                store.student = null
                store.view = null
                this.setData({ me, error: '' })
              } catch (err) {
                this.setData({ error: errorText(err) })
              }
            }
            resolve()
          },
          fail: () => resolve(),
        })
      })
    },

    onFaq() {
      wx.navigateTo({ url: '/pages/faq/index' })
    },
  }
}
