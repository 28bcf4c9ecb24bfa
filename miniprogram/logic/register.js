// Register and read the collection code (seed steps 5-6): name, 学号, ID tail; scan the code or upload the
// saved image; wait for the codec with a long poll; every refusal shown as the gateway words it.
const { checkIdLast4, checkName, checkStudentNumber, normaliseIdLast4, ID_LAST4_HELP } = require('../core/rules')
const { call } = require('../core/wxp')
const { loadSchool, errorText } = require('./common')

function hash(text) {
  let h = 2166136261
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), 16777619) >>> 0
  return h.toString(16)
}

module.exports = function registerPage(deps) {
  const { wx, api, store, config } = deps
  return {
    data: {
      name: '',
      studentNumber: '',
      idLast4: '',
      agreed: false,
      errors: {},
      help: ID_LAST4_HELP,
      phase: 'form', // form | decoding | rejected
      rejection: null,
      error: '',
      busy: false,
    },

    onLoad() {
      this.setData({ agreed: Boolean(store.consent) })
    },

    onInput(e) {
      const field = e.currentTarget.dataset.field
      this.setData({ [field]: e.detail.value, [`errors.${field}`]: '' })
    },

    onToggleAgree() {
      this.setData({ agreed: !this.data.agreed })
    },

    /** The typed fields, or null after showing what is wrong with them. */
    validated() {
      const errors = {
        name: checkName(this.data.name) || '',
        studentNumber: checkStudentNumber(this.data.studentNumber) || '',
        idLast4: checkIdLast4(this.data.idLast4) || '',
      }
      const agreed = this.data.agreed
      this.setData({ errors, error: agreed ? '' : '请先阅读并同意《用户服务协议》和《隐私政策》。' })
      if (errors.name || errors.studentNumber || errors.idLast4 || !agreed) return null
      return {
        name: this.data.name.trim(),
        student_number: this.data.studentNumber.trim(),
        id_last4: normaliseIdLast4(this.data.idLast4),
      }
    },

    // 扫描采集码: the scanner hands back the QR text itself.
    async onScan() {
      const fields = this.validated()
      if (!fields || this.data.busy) return
      let scanned
      try {
        scanned = await call(wx, 'scanCode', { scanType: ['qrCode'] })
      } catch (err) {
        return // the student closed the scanner
      }
      const body = Object.assign({}, fields, { agreed: true, qr_text: scanned.result, school_code: config.schoolCode })
      const intent = `code:${hash(JSON.stringify(body))}`
      await this.submit(intent, () => api.call('POST', '/api/v1/codes', { data: body, intent }))
    },

    // 上传采集码: the saved image from the album; the gateway decodes it.
    async onUpload() {
      const fields = this.validated()
      if (!fields || this.data.busy) return
      let picked
      try {
        picked = await call(wx, 'chooseMedia', { count: 1, mediaType: ['image'], sourceType: ['album'], sizeType: ['original'] })
      } catch (err) {
        return
      }
      const file = picked.tempFiles[0].tempFilePath
      const formData = Object.assign({}, fields, { agreed: 'true', school_code: config.schoolCode })
      const intent = `code:${hash(file + JSON.stringify(formData))}`
      await this.submit(intent, () => api.upload('/api/v1/codes', file, { name: 'image', formData, intent }))
    },

    async submit(intent, send) {
      this.setData({ busy: true, phase: 'decoding', rejection: null, error: '' })
      try {
        const accepted = await send()
        const scan = await api.waitForScan(accepted.scan_id, { waitSeconds: config.longPollSeconds })
        api.finishIntent(intent)
        if (scan.status === 'decoded') {
          store.scan = scan
          store.student = scan.student
          await loadSchool(deps, scan.student.school_code)
          wx.redirectTo({ url: '/pages/confirm/index' })
          this.setData({ phase: 'form' })
          return
        }
        this.setData({
          phase: 'rejected',
          rejection: { reason: scan.reason, message: scan.message, fields: scan.mismatched_fields || [] },
        })
      } catch (err) {
        if (err.status && err.status < 500) api.finishIntent(intent)
        this.setData({ phase: 'form', error: errorText(err) })
      } finally {
        this.setData({ busy: false })
      }
    },

    // 重新读取
    onReread() {
      this.setData({ phase: 'form', rejection: null, error: '' })
    },
  }
}
