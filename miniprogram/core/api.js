// The gateway client: the one place that owns the session token, the Idempotency-Keys (one per user
// intent, reused when that intent is retried), error codes -> Chinese messages, and the long poll.
// `wx` is injected, so the same code runs in WeChat, in jest and in the Node e2e (e2e/wx-node.js).
const { messageFor } = require('./messages')

const TOKEN_KEY = 'session_token'
const INTENTS_KEY = 'intents'
const TRANSIENT_STATUS = [0, 500, 502, 503, 504]

class ApiError extends Error {
  constructor(code, message, status, details, requestId) {
    super(message)
    this.code = code
    this.status = status || 0
    this.details = details || {}
    this.requestId = requestId || null
  }
}

function randomKey() {
  let key = ''
  for (let i = 0; i < 4; i += 1) key += Math.floor(Math.random() * 0x100000000).toString(16).padStart(8, '0')
  return key
}

function parseJson(data) {
  if (typeof data !== 'string') return data
  try {
    return JSON.parse(data)
  } catch (e) {
    return null
  }
}

function errorFrom(status, body, errMsg) {
  if (!status) return new ApiError('network_error', messageFor('network_error'), 0, { errMsg })
  const b = body && typeof body === 'object' ? body : {}
  const code = b.code || (status >= 500 ? 'internal_error' : 'invalid_request')
  return new ApiError(code, messageFor(code, b.message), status, b.details, b.request_id)
}

function createApi(options) {
  const wx = options.wx
  const baseUrl = options.baseUrl.replace(/\/$/, '')
  const retries = options.retries === undefined ? 3 : options.retries
  const sleep = options.sleep || (ms => new Promise(resolve => setTimeout(resolve, ms)))
  const now = options.now || (() => Date.now())
  let token = safeGet(TOKEN_KEY) || ''
  let intents = safeGet(INTENTS_KEY) || {}

  function safeGet(key) {
    try {
      return wx.getStorageSync(key)
    } catch (e) {
      return ''
    }
  }
  function safeSet(key, value) {
    try {
      wx.setStorageSync(key, value)
    } catch (e) {
      // storage full or unavailable: keys then live for this run only, which is still correct
    }
  }

  /** The Idempotency-Key of a user intent ("order", "photo:<file>", ...): made once, reused on retry. */
  function intentKey(intent) {
    if (!intents[intent]) {
      intents = Object.assign({}, intents, { [intent]: randomKey() })
      safeSet(INTENTS_KEY, intents)
    }
    return intents[intent]
  }

  /** The intent reached its end (accepted for good): the next such intent gets a new key. */
  function finishIntent(intent) {
    if (!intents[intent]) return
    intents = Object.assign({}, intents)
    delete intents[intent]
    safeSet(INTENTS_KEY, intents)
  }

  function headers(intent, extra) {
    const h = Object.assign({}, extra || {})
    if (token) h.Authorization = `Bearer ${token}`
    if (intent) h['Idempotency-Key'] = intentKey(intent)
    return h
  }

  function once(method, path, data, intent) {
    return new Promise(resolve => {
      wx.request({
        url: baseUrl + path,
        method,
        data,
        header: headers(intent, data === undefined ? {} : { 'content-type': 'application/json' }),
        dataType: 'json',
        success: res => resolve({ status: res.statusCode, body: parseJson(res.data) }),
        fail: err => resolve({ status: 0, body: null, errMsg: err && err.errMsg }),
      })
    })
  }

  function uploadOnce(path, filePath, name, formData, intent) {
    return new Promise(resolve => {
      wx.uploadFile({
        url: baseUrl + path,
        filePath,
        name,
        formData,
        header: headers(intent),
        success: res => resolve({ status: res.statusCode, body: parseJson(res.data) }),
        fail: err => resolve({ status: 0, body: null, errMsg: err && err.errMsg }),
      })
    })
  }

  // One exchange, retried while the answer says the system was briefly away (same Idempotency-Key),
  // and once after a fresh login when the session expired.
  async function exchange(send, { auth = true } = {}) {
    let relogged = false
    for (let attempt = 0; ; attempt += 1) {
      const res = await send()
      if (res.status >= 200 && res.status < 300) return res.body
      if (res.status === 401 && auth && !relogged) {
        relogged = true
        await login()
        continue
      }
      const code = res.body && res.body.code
      const transient =
        TRANSIENT_STATUS.includes(res.status) && code !== 'order_failed' && code !== 'wechat_unavailable'
      // 409 busy: the gateway could not settle the request yet (an order still being placed, a write
      // that kept racing); its message says to try again shortly, so a retry with the same key is right.
      const busy = res.status === 409 && code === 'busy'
      const limited = res.status === 429 && code === 'rate_limited'
      if ((transient || busy || limited) && attempt < retries) {
        const after = limited ? Number((res.body.details || {}).retry_after_s || 1) * 1000 : 500 * 2 ** attempt
        await sleep(after)
        continue
      }
      throw errorFrom(res.status, res.body, res.errMsg)
    }
  }

  function call(method, path, { data, intent, auth = true } = {}) {
    return exchange(() => once(method, path, data, intent), { auth })
  }

  function upload(path, filePath, { name = 'image', formData = {}, intent } = {}) {
    return exchange(() => uploadOnce(path, filePath, name, formData, intent))
  }

  function wxLogin() {
    if (options.loginCode) return options.loginCode()
    return new Promise((resolve, reject) => {
      wx.login({
        success: res => resolve(res.code),
        fail: err => reject(new ApiError('network_error', messageFor('network_error'), 0, err)),
      })
    })
  }

  /** wx.login -> POST /login: the gateway's own session token, kept in storage. */
  async function login() {
    const code = await wxLogin()
    token = ''
    const answer = await exchange(() => once('POST', '/api/v1/login', { code }), { auth: false })
    token = answer.token
    safeSet(TOKEN_KEY, token)
    return answer
  }

  /** Long poll of a code scan: GET /codes/{id}?wait=N until it is decided or `timeoutMs` passed. */
  async function waitForScan(scanId, { waitSeconds = 20, timeoutMs = 60000 } = {}) {
    const deadline = now() + timeoutMs
    for (;;) {
      const scan = await call('GET', `/api/v1/codes/${encodeURIComponent(scanId)}?wait=${waitSeconds}`)
      if (scan.status !== 'pending') return scan
      if (now() >= deadline) throw new ApiError('timeout', messageFor('timeout'), 0)
      if (scan.poll_after_ms) await sleep(Math.min(scan.poll_after_ms, 2000))
    }
  }

  /** GET /application until `done(view)` (a worker's result arrived) or `timeoutMs` passed: a long poll
   * (`?wait=N&since=UPDATED_AT`, the gateway answers as soon as the application changes); an answer that
   * comes back unchanged at once (a gateway without the long poll) is polled every `intervalMs`. */
  async function waitForApplication(done, { intervalMs = 1000, timeoutMs = 90000, waitSeconds = 20 } = {}) {
    const deadline = now() + timeoutMs
    let since = ''
    for (;;) {
      const left = Math.ceil((deadline - now()) / 1000)
      const query = since ? `?wait=${Math.max(0, Math.min(waitSeconds, left))}&since=${encodeURIComponent(since)}` : ''
      const asked = now()
      const view = await call('GET', `/api/v1/application${query}`)
      if (done(view)) return view
      if (now() >= deadline) throw new ApiError('timeout', messageFor('timeout'), 0)
      if (view.updated_at === since && now() - asked < intervalMs) await sleep(intervalMs)
      since = view.updated_at
    }
  }

  // Images never change under their path (a photo id's standardised JPEG, the admission photo): fetched
  // once per run, so the submit page shows the photo the result page already downloaded.
  const images = {}

  /** An image behind the session (standardised photo, admission photo) as a local file for <image>. */
  function downloadImage(path) {
    if (images[path]) return Promise.resolve(images[path])
    return fetchImage(path).then(file => {
      images[path] = file
      return file
    })
  }

  function fetchImage(path) {
    return new Promise((resolve, reject) => {
      wx.downloadFile({
        url: baseUrl + path,
        header: headers(null),
        success: res =>
          res.statusCode === 200
            ? resolve(res.tempFilePath)
            : reject(errorFrom(res.statusCode, parseJson(res.data), null)),
        fail: err => reject(errorFrom(0, null, err && err.errMsg)),
      })
    })
  }

  return {
    login,
    call,
    upload,
    waitForScan,
    waitForApplication,
    downloadImage,
    intentKey,
    finishIntent,
    hasSession: () => Boolean(token),
    logout() {
      token = ''
      safeSet(TOKEN_KEY, '')
    },
  }
}

module.exports = { createApi, ApiError, errorFrom }
