// The standardisation result (seed step 11): the standardised photo, or each refusal reason in Chinese
// with what to change; the standardisations left today and the cooling-off countdown.
const { countdown } = require('../core/rules')
const { errorText } = require('./common')

module.exports = function resultPage(deps) {
  const { wx, api, config } = deps
  const now = deps.now || (() => Date.now())
  return {
    data: { photoId: '', status: 'processing', image: '', reasons: [], left: null, reopensAt: '', countdown: '', error: '' },

    onLoad(query) {
      this.setData({ photoId: (query && query.photo_id) || '' })
      return this.refresh()
    },

    onUnload() {
      if (this.timer) clearInterval(this.timer)
      this.timer = null
    },

    async refresh() {
      const id = this.data.photoId
      try {
        const view = await api.waitForApplication(v => (v.photos || []).some(p => p.photo_id === id && p.status !== 'processing'), {
          intervalMs: config.pollIntervalMs,
          timeoutMs: 120000,
        })
        this.show(view)
        const photo = view.photos.find(p => p.photo_id === id)
        if (photo.image_url) this.setData({ image: await api.downloadImage(photo.image_url) })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    show(view) {
      const photo = view.photos.find(p => p.photo_id === this.data.photoId)
      const reasons = (photo.reasons || []).map((code, i) => ({ code, message: (photo.messages || [])[i] || '' }))
      this.setData({
        status: photo.status,
        reasons,
        left: view.quota.standardisations_left,
        reopensAt: view.quota.reopens_at || '',
      })
      this.tick()
      if (view.quota.reopens_at && !this.timer) this.timer = setInterval(() => this.tick(), 1000)
    },

    tick() {
      const text = countdown(this.data.reopensAt, now())
      this.setData({ countdown: text })
      if (!text && this.timer) {
        clearInterval(this.timer)
        this.timer = null
      }
    },

    onRetake() {
      wx.redirectTo({ url: '/pages/guide/index' })
    },

    onSubmit() {
      wx.redirectTo({ url: `/pages/submit/index?photo_id=${this.data.photoId}` })
    },
  }
}
