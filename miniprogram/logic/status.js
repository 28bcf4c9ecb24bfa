// Review status and progress (seed steps 12-14): 审核通过 / 审核未通过 with the reason, the free
// resubmissions left, withdraw while waiting for review, the retake path, and after approval the
// delivery (exported to CHSI, printed, mailed).
const { STATE_LABELS, deliverySteps } = require('../core/flow')
const { errorText } = require('./common')

const WAITING = ['code_submitted', 'submitted', 'in_review', 'registrar_review']

module.exports = function statusPage(deps) {
  const { wx, api } = deps
  return {
    data: { view: null, stateLabel: '', canWithdraw: false, canRetake: false, delivery: [], busy: false, error: '', withdrawn: false },

    onShow() {
      return this.refresh()
    },

    onHide() {
      if (this.timer) clearTimeout(this.timer)
      this.timer = null
    },

    onUnload() {
      this.onHide()
    },

    async refresh() {
      try {
        const view = await api.call('GET', '/api/v1/application')
        this.show(view)
        if (WAITING.includes(view.state) && !this.timer) {
          this.timer = setTimeout(() => {
            this.timer = null
            this.refresh()
          }, 5000)
        }
        return view
      } catch (err) {
        this.setData({ error: errorText(err) })
        return null
      }
    },

    show(view) {
      this.setData({
        view,
        stateLabel: STATE_LABELS[view.state] || view.state,
        canWithdraw: view.state === 'in_review',
        canRetake: view.next.action === 'take_photo',
        delivery: view.state === 'approved' ? deliverySteps(view.delivery) : [],
        error: '',
      })
    },

    onWithdraw() {
      if (this.data.busy) return Promise.resolve()
      return new Promise(resolve => {
        wx.showModal({
          title: '撤回提交',
          content: '撤回后可重新拍摄并提交照片，不占用免费重拍次数。确定撤回吗？',
          success: async res => {
            if (res.confirm) await this.withdraw()
            resolve()
          },
          fail: () => resolve(),
        })
      })
    },

    async withdraw() {
      const submission = (this.data.view && this.data.view.application_id) || ''
      const intent = `withdraw:${submission}:${this.data.view && this.data.view.updated_at}`
      this.setData({ busy: true })
      try {
        await api.call('POST', '/api/v1/submission/withdraw', { data: {}, intent })
        api.finishIntent(intent)
        this.setData({ withdrawn: true })
        await this.refresh()
      } catch (err) {
        this.setData({ error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },

    onRetake() {
      wx.navigateTo({ url: '/pages/guide/index' })
    },

    onFaq() {
      wx.navigateTo({ url: '/pages/faq/index' })
    },
  }
}
