// A fake `wx` for unit tests: routes answer like the gateway, every call is recorded. No network.
function fakeWx(routes = {}, overrides = {}) {
  const storage = {}
  const calls = []
  const answer = (method, url, data) => {
    const path = url.replace(/^https?:\/\/[^/]+/, '')
    const key = `${method} ${path.split('?')[0]}`
    const handler = routes[key] || routes[`${method} ${path}`]
    if (!handler) return { statusCode: 404, data: { code: 'not_found', message: '未找到对应的记录。' } }
    const [statusCode, body] = typeof handler === 'function' ? handler(data, path) : handler
    return statusCode === 0 ? null : { statusCode, data: body }
  }
  const wx = {
    calls,
    storage,
    navigations: [],
    getStorageSync: k => (k in storage ? storage[k] : ''),
    setStorageSync: (k, v) => {
      storage[k] = v
    },
    login: ({ success }) => success({ code: 'login-code' }),
    request(opts) {
      calls.push({ api: 'request', method: opts.method, url: opts.url, data: opts.data, header: opts.header })
      const res = answer(opts.method, opts.url, opts.data)
      Promise.resolve().then(() => (res ? opts.success(res) : opts.fail({ errMsg: 'request:fail' })))
    },
    uploadFile(opts) {
      calls.push({ api: 'uploadFile', url: opts.url, filePath: opts.filePath, formData: opts.formData, header: opts.header })
      const res = answer('POST', opts.url, opts.formData)
      Promise.resolve().then(() => (res ? opts.success({ statusCode: res.statusCode, data: JSON.stringify(res.data) }) : opts.fail({ errMsg: 'uploadFile:fail' })))
    },
    downloadFile(opts) {
      calls.push({ api: 'downloadFile', url: opts.url, header: opts.header })
      Promise.resolve().then(() => opts.success({ statusCode: 200, tempFilePath: `wxfile://${opts.url.split('/').pop()}` }))
    },
    navigateTo(o) {
      wx.navigations.push(o.url)
    },
    redirectTo(o) {
      wx.navigations.push(o.url)
    },
    showModal: ({ success }) => success({ confirm: true }),
    showToast() {},
    makePhoneCall(o) {
      calls.push({ api: 'makePhoneCall', phoneNumber: o.phoneNumber })
    },
    setClipboardData() {},
    authorize: ({ success }) => success({}),
    openSetting: ({ success }) => success({ authSetting: { 'scope.camera': true } }),
    requestSubscribeMessage(o) {
      calls.push({ api: 'requestSubscribeMessage', tmplIds: o.tmplIds })
      o.success({})
    },
    requestPayment(o) {
      calls.push({ api: 'requestPayment', params: o })
      o.success({ errMsg: 'requestPayment:ok' })
    },
    scanCode: ({ success }) => success({ result: 'QR-TEXT', scanType: 'QR_CODE' }),
    chooseMedia: ({ success }) => success({ tempFiles: [{ tempFilePath: 'wxfile://album.jpg', size: 200 * 1024, fileType: 'image' }] }),
    getImageInfo: ({ success }) => success({ width: 480, height: 640, type: 'jpeg' }),
    createCameraContext: () => ({ takePhoto: ({ success }) => success({ tempImagePath: 'wxfile://shot.jpg' }) }),
  }
  return Object.assign(wx, overrides)
}

module.exports = { fakeWx }
