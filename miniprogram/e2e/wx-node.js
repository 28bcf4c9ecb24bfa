// A Node implementation of the `wx` API the pages use, over real HTTP: the gateway for wx.request /
// uploadFile / downloadFile, the WeChat sandbox for what WeChat itself does (wx.login's code, the phone
// button's code, the cashier behind wx.requestPayment). What the student "picks" (the scanned QR text,
// the album image, the camera's picture) comes from queues the journey fills, like a real person would.
const fs = require('fs')
const os = require('os')
const path = require('path')
const http = require('http')

function send(method, url, { headers = {}, body = null } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url)
    const started = process.hrtime.bigint()
    const req = http.request(
      { method, hostname: u.hostname, port: u.port, path: u.pathname + u.search, headers: Object.assign({}, headers, body ? { 'content-length': body.length } : {}) },
      res => {
        const chunks = []
        res.on('data', c => chunks.push(c))
        res.on('end', () => {
          const data = Buffer.concat(chunks)
          const rawHeaders = res.rawHeaders.reduce((n, h) => n + Buffer.byteLength(h) + 2, 0)
          const sentHeaders = `${method} ${u.pathname}${u.search} HTTP/1.1\r\n` + Object.entries(req.getHeaders()).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n'
          resolve({
            status: res.statusCode,
            headers: res.headers,
            body: data,
            ms: Number(process.hrtime.bigint() - started) / 1e6,
            sent: Buffer.byteLength(sentHeaders) + (body ? body.length : 0),
            received: 17 + rawHeaders + 2 + data.length,
          })
        })
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.setTimeout(60000, () => req.destroy(new Error('timeout')))
    if (body) req.write(body)
    req.end()
  })
}

const MIME = { '.jpg': 'image/jpeg', '.jpeg': 'image/jpeg', '.png': 'image/png' }

/** Width, height and type of a JPEG or PNG file, as wx.getImageInfo gives them. */
function imageInfo(file) {
  const b = fs.readFileSync(file)
  if (b.slice(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))) {
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20), type: 'png' }
  }
  let i = 2
  while (i < b.length) {
    if (b[i] !== 0xff) break
    const marker = b[i + 1]
    const len = b.readUInt16BE(i + 2)
    if (marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker)) {
      return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7), type: 'jpeg' }
    }
    i += 2 + len
  }
  throw new Error(`not an image: ${file}`)
}

function createNodeWx({ gateway, sandbox, openid, phone, log }) {
  const storage = {}
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'wx-'))
  const picks = { scan: [], album: [], camera: [] }
  const behaviour = { cancelPayments: 0 }
  const events = [] // what the student saw WeChat do (subscribe requests, payments, navigation)
  const navigations = []
  const record = (kind, method, url, res) => {
    if (log) log({ kind, method, path: url.replace(/^https?:\/\/[^/]+/, ''), status: res.status, ms: res.ms, sent: res.sent, received: res.received })
  }

  async function sandboxCall(p, body) {
    const res = await send('POST', sandbox + p, { headers: { 'content-type': 'application/json' }, body: Buffer.from(JSON.stringify(body)) })
    record('wechat', 'POST', p, res)
    return { status: res.status, body: JSON.parse(res.body.toString() || '{}') }
  }

  const finish = (opts, promise) =>
    promise.then(
      res => {
        if (opts.success) opts.success(res)
        if (opts.complete) opts.complete(res)
      },
      err => {
        const e = { errMsg: (err && err.errMsg) || `fail ${err && err.message}` }
        if (opts.fail) opts.fail(e)
        if (opts.complete) opts.complete(e)
      },
    )

  const wx = {
    picks,
    behaviour,
    events,
    navigations,
    getStorageSync: k => (k in storage ? storage[k] : ''),
    setStorageSync: (k, v) => {
      storage[k] = JSON.parse(JSON.stringify(v))
    },

    // wx.login: WeChat hands the mini-program a one-time code for this user (the sandbox mints it).
    login(opts) {
      finish(opts, sandboxCall('/sandbox/login-codes', { openid }).then(r => ({ code: r.body.code, errMsg: 'login:ok' })))
    },

    /** The getPhoneNumber button's event detail, as WeChat gives it after the user allows. */
    async phoneNumberEvent() {
      const r = await sandboxCall('/sandbox/phone-codes', { phone })
      return { detail: { code: r.body.code, errMsg: 'getPhoneNumber:ok' } }
    },

    request(opts) {
      const method = (opts.method || 'GET').toUpperCase()
      const headers = Object.assign({}, opts.header || {})
      let url = opts.url
      let body = null
      if (opts.data !== undefined && opts.data !== null) {
        if (method === 'GET') {
          const q = new URLSearchParams(opts.data).toString()
          if (q) url += (url.includes('?') ? '&' : '?') + q
        } else {
          body = Buffer.from(JSON.stringify(opts.data))
          headers['content-type'] = headers['content-type'] || 'application/json'
        }
      }
      finish(
        opts,
        send(method, url, { headers, body }).then(res => {
          record('gateway', method, url, res)
          const text = res.body.toString()
          let data = text
          if (opts.dataType !== 'text') {
            try {
              data = JSON.parse(text)
            } catch (e) {
              data = text
            }
          }
          return { statusCode: res.status, data, header: res.headers, errMsg: 'request:ok' }
        }),
      )
    },

    uploadFile(opts) {
      const boundary = `----wxnode${Math.random().toString(16).slice(2)}`
      const parts = []
      for (const [k, v] of Object.entries(opts.formData || {})) {
        parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${k}"\r\n\r\n${v}\r\n`))
      }
      const file = fs.readFileSync(opts.filePath)
      const type = MIME[path.extname(opts.filePath).toLowerCase()] || 'application/octet-stream'
      parts.push(Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${opts.name}"; filename="${path.basename(opts.filePath)}"\r\nContent-Type: ${type}\r\n\r\n`))
      parts.push(file, Buffer.from(`\r\n--${boundary}--\r\n`))
      const headers = Object.assign({}, opts.header || {}, { 'content-type': `multipart/form-data; boundary=${boundary}` })
      finish(
        opts,
        send('POST', opts.url, { headers, body: Buffer.concat(parts) }).then(res => {
          record('gateway', 'POST', opts.url, res)
          return { statusCode: res.status, data: res.body.toString(), errMsg: 'uploadFile:ok' }
        }),
      )
    },

    downloadFile(opts) {
      finish(
        opts,
        send('GET', opts.url, { headers: opts.header || {} }).then(res => {
          record('gateway', 'GET', opts.url, res)
          const file = path.join(tmp, `dl-${Date.now()}-${Math.random().toString(16).slice(2)}.jpg`)
          fs.writeFileSync(file, res.body)
          return { statusCode: res.status, tempFilePath: file, data: res.status >= 400 ? res.body.toString() : undefined }
        }),
      )
    },

    // The cashier: WeChat checks paySign and takes the money (or the student closes it).
    requestPayment(opts) {
      const cancel = behaviour.cancelPayments > 0
      if (cancel) behaviour.cancelPayments -= 1
      events.push({ api: 'requestPayment', cancel, package: opts.package })
      const params = { timeStamp: opts.timeStamp, nonceStr: opts.nonceStr, package: opts.package, signType: opts.signType, paySign: opts.paySign }
      finish(
        opts,
        sandboxCall('/sandbox/request-payment', Object.assign(params, { openid, cancel })).then(r => {
          if (r.status !== 200 || r.body.errMsg !== 'requestPayment:ok') throw { errMsg: r.body.errMsg || `requestPayment:fail ${r.status}` }
          return { errMsg: 'requestPayment:ok' }
        }),
      )
    },

    requestSubscribeMessage(opts) {
      events.push({ api: 'requestSubscribeMessage', tmplIds: opts.tmplIds })
      const res = { errMsg: 'requestSubscribeMessage:ok' }
      for (const id of opts.tmplIds) res[id] = 'accept'
      finish(opts, Promise.resolve(res))
    },

    scanCode(opts) {
      const text = picks.scan.shift()
      finish(opts, text === undefined ? Promise.reject({ errMsg: 'scanCode:fail cancel' }) : Promise.resolve({ result: text, scanType: 'QR_CODE', errMsg: 'scanCode:ok' }))
    },

    chooseMedia(opts) {
      const file = picks.album.shift()
      finish(opts, file === undefined ? Promise.reject({ errMsg: 'chooseMedia:fail cancel' }) : Promise.resolve({ tempFiles: [{ tempFilePath: file, size: fs.statSync(file).size, fileType: 'image' }], type: 'image' }))
    },

    getImageInfo(opts) {
      finish(opts, Promise.resolve().then(() => Object.assign(imageInfo(opts.src), { path: opts.src })))
    },

    createCameraContext() {
      return {
        takePhoto(opts) {
          const file = picks.camera.shift()
          finish(opts, file === undefined ? Promise.reject({ errMsg: 'takePhoto:fail' }) : Promise.resolve({ tempImagePath: file }))
        },
      }
    },

    authorize: opts => finish(opts, Promise.resolve({ errMsg: 'authorize:ok' })),
    openSetting: opts => finish(opts, Promise.resolve({ authSetting: { 'scope.camera': true } })),
    showModal: opts => finish(opts, Promise.resolve({ confirm: true, cancel: false })),
    showToast() {},
    makePhoneCall: opts => events.push({ api: 'makePhoneCall', phoneNumber: opts.phoneNumber }),
    setClipboardData: opts => finish(opts, Promise.resolve({})),
    navigateTo: opts => navigations.push(opts.url),
    redirectTo: opts => navigations.push(opts.url),
  }
  return wx
}

module.exports = { createNodeWx, send, imageInfo }
