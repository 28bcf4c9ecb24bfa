// Confirm the decoded code (seed step 6): school, masked name, 学号, ID tail, category, level, department,
// class; pick 学历/级/届 and the mailing method (the school's first options are the defaults).
const { loadSchool, errorText } = require('./common')

module.exports = function confirmPage(deps) {
  const { wx, api, store } = deps
  return {
    data: { student: null, years: [], mailing: [], yearIndex: 0, mailingIndex: 0, busy: false, error: '' },

    async onLoad() {
      try {
        let student = store.scan && store.scan.student
        if (!student) {
          const view = await api.call('GET', '/api/v1/application')
          student = view.student
        }
        const school = await loadSchool(deps, student && student.school_code)
        this.setData({ student, years: school.graduation_years, mailing: school.mailing_options })
      } catch (err) {
        this.setData({ error: errorText(err) })
      }
    },

    onYear(e) {
      this.setData({ yearIndex: Number(e.detail.value) })
    },

    onMailing(e) {
      this.setData({ mailingIndex: Number(e.detail.value) })
    },

    onReread() {
      wx.redirectTo({ url: '/pages/register/index' })
    },

    async onConfirm() {
      if (this.data.busy) return
      this.setData({ busy: true, error: '' })
      try {
        const year = this.data.years[this.data.yearIndex]
        const mailing = this.data.mailing[this.data.mailingIndex]
        store.confirmation = await api.call('POST', '/api/v1/application/confirm', {
          data: { graduation_year: year && year.code, mailing_method: mailing && mailing.code },
        })
        wx.redirectTo({ url: '/pages/pay/index' })
      } catch (err) {
        this.setData({ error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },
  }
}
