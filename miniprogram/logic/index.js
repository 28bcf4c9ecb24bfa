// Home (seed steps 1-3): sign in with WeChat, authorise the phone number, choose 「学信网采集码采集」.
const { loadSchool, errorText } = require('./common')
const { pageFor } = require('../core/flow')

module.exports = function indexPage(deps) {
  const { wx, api, store } = deps
  return {
    data: { ready: false, bound: false, student: null, phone: '', hasApplication: false, error: '', nickname: '', avatar: '' },

    async onLoad() {
      try {
        const login = await api.login()
        store.student = login.student || null
        const school = await loadSchool(deps)
        const me = await api.call('GET', '/api/v1/me')
        this.setData({
          ready: true,
          bound: login.bound,
          student: login.student || null,
          phone: me.phone || '',
          hasApplication: Boolean(me.application_id),
          schoolName: school.name,
          nickname: wx.getStorageSync('nickname') || '',
          avatar: wx.getStorageSync('avatar') || '',
          error: '',
        })
      } catch (err) {
        this.setData({ ready: true, error: errorText(err) })
      }
    },

    // <button open-type="chooseAvatar">: kept on the phone only; the gateway never needs it.
    onChooseAvatar(e) {
      const avatar = (e.detail && e.detail.avatarUrl) || ''
      wx.setStorageSync('avatar', avatar)
      this.setData({ avatar })
    },

    onNickname(e) {
      const nickname = String((e.detail && e.detail.value) || '').slice(0, 20)
      wx.setStorageSync('nickname', nickname)
      this.setData({ nickname })
    },

    // <button open-type="getPhoneNumber" bindgetphonenumber>: a one-time code the gateway exchanges.
    async onPhone(e) {
      const code = e.detail && e.detail.code
      if (!code) {
        this.setData({ error: '未授权手机号。授权后客服可在需要时联系您。' })
        return
      }
      try {
        const answer = await api.call('POST', '/api/v1/me/phone', { data: { code } })
        this.setData({ phone: answer.phone, error: '' })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onStart() {
      wx.navigateTo({ url: '/pages/notice/index' })
    },

    async onProgress() {
      try {
        const view = await api.call('GET', '/api/v1/application')
        store.view = view
        wx.navigateTo({ url: pageFor(view) })
      } catch (err) {
        if (err.code === 'no_application') wx.navigateTo({ url: '/pages/notice/index' })
        else this.setData({ error: errorText(err) })
      }
    },

    onMe() {
      wx.navigateTo({ url: '/pages/me/index' })
    },
  }
}
