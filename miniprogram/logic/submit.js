// Submit and compare (seed steps 12-14): confirm the admission photo is you, submit the standardised
// photo, see the comparison. 「录取照片不是本人」 opens a case for support instead of a comparison that
// can only fail.
const { askSubscribe } = require('../core/wxp')
const { loadSchool, errorText, templates } = require('./common')

module.exports = function submitPage(deps) {
  const { wx, api, store, config } = deps
  return {
    data: { photoId: '', photo: '', admission: '', confirmed: false, phase: 'ready', match: null, disputed: false, support: null, error: '', busy: false },

    async onLoad(query) {
      this.setData({ photoId: (query && query.photo_id) || '' })
      try {
        const school = await loadSchool(deps)
        this.setData({ support: school.support })
        const [photo, admission] = await Promise.all([
          api.downloadImage(`/api/v1/photos/${this.data.photoId}/image`),
          api.downloadImage('/api/v1/admission-photo'),
        ])
        this.setData({ photo, admission })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onToggleConfirm() {
      this.setData({ confirmed: !this.data.confirmed, error: '' })
    },

    // A tap: the subscribe-message request (review result) first, synchronously.
    onSubmit() {
      if (this.data.busy) return Promise.resolve()
      if (!this.data.confirmed) {
        this.setData({ error: '请先确认录取照片是本人。' })
        return Promise.resolve()
      }
      const asked = askSubscribe(wx, templates(store.school, 'submission'))
      this.setData({ busy: true, error: '' })
      return this.submit(asked)
    },

    async submit(asked) {
      const intent = `submit:${this.data.photoId}`
      try {
        await asked
        await api.call('POST', '/api/v1/submissions', {
          data: { photo_id: this.data.photoId, admission_photo_confirmed: true },
          intent,
        })
        api.finishIntent(intent)
        this.setData({ phase: 'matching' })
        const view = await api.waitForApplication(v => v.state !== 'submitted', { intervalMs: config.pollIntervalMs, timeoutMs: 120000 })
        store.view = view
        this.setData({ phase: 'matched', match: view.match })
        wx.redirectTo({ url: '/pages/status/index' })
      } catch (err) {
        if (err.status && err.status < 500) api.finishIntent(intent)
        this.setData({ phase: 'ready', error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },

    async onNotMe() {
      if (this.data.busy) return
      this.setData({ busy: true, error: '' })
      try {
        await api.call('POST', '/api/v1/admission-photo/dispute', { data: {}, intent: 'dispute' })
        this.setData({ disputed: true })
      } catch (err) {
        this.setData({ error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },

    onCall() {
      if (this.data.support) wx.makePhoneCall({ phoneNumber: this.data.support.phone })
    },
  }
}
