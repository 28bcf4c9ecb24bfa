// 温馨提示, 《用户服务协议》 and 《隐私政策》 (seed steps 3-4): consent is recorded with the policy
// version before any personal data (name, 学号, ID tail, the code) is sent.
const { loadSchool, errorText } = require('./common')

module.exports = function noticePage(deps) {
  const { wx, api, store } = deps
  return {
    data: { school: null, agreed: false, showing: '', busy: false, error: '' },

    async onLoad() {
      try {
        const school = await loadSchool(deps)
        this.setData({ school, policyVersion: school.policy_version || '' })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onToggleAgree() {
      this.setData({ agreed: !this.data.agreed, error: '' })
    },

    onShowDocument(e) {
      const which = e.currentTarget.dataset.doc // agreement | privacy_policy
      this.setData({ showing: this.data.showing === which ? '' : which })
    },

    async onContinue() {
      if (!this.data.agreed) {
        this.setData({ error: '请先阅读并勾选同意《用户服务协议》和《隐私政策》。' })
        return
      }
      const school = this.data.school
      this.setData({ busy: true, error: '' })
      try {
        const consent = await api.call('POST', '/api/v1/consents', {
          data: { school_code: school.school_code, policy_version: school.policy_version },
        })
        store.consent = consent
        wx.navigateTo({ url: '/pages/register/index' })
      } catch (err) {
        this.setData({ error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },
  }
}
