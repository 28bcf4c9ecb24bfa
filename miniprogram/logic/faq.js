// FAQ and support from the school's configuration.
const { loadSchool, errorText } = require('./common')

module.exports = function faqPage(deps) {
  const { wx } = deps
  return {
    data: { faq: [], support: null, open: -1, error: '' },

    async onLoad() {
      try {
        const school = await loadSchool(deps)
        this.setData({ faq: school.faq, support: school.support })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onToggle(e) {
      const index = Number(e.currentTarget.dataset.index)
      this.setData({ open: this.data.open === index ? -1 : index })
    },

    onCall() {
      if (this.data.support) wx.makePhoneCall({ phoneNumber: this.data.support.phone })
    },

    onCopyQq() {
      if (this.data.support && this.data.support.qq) wx.setClipboardData({ data: this.data.support.qq })
    },
  }
}
