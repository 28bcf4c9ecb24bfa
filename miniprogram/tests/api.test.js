const { createApi } = require('../core/api')
const { fakeWx } = require('./helpers/fake-wx')

const LOGIN = { 'POST /api/v1/login': [200, { token: 'tok-1', bound: false, expires_at: 'x' }] }
const make = (wx, retries = 2) => createApi({ wx, baseUrl: 'https://gw.test/', retries, sleep: () => Promise.resolve() })

describe('the session', () => {
  test('wx.login code -> gateway token, kept in storage and sent as Bearer', async () => {
    const wx = fakeWx({ ...LOGIN, 'GET /api/v1/me': [200, { bound: false }] })
    const api = make(wx)
    await api.login()
    expect(wx.calls[0].data).toEqual({ code: 'login-code' })
    expect(wx.storage.session_token).toBe('tok-1')
    await api.call('GET', '/api/v1/me')
    expect(wx.calls[1].header.Authorization).toBe('Bearer tok-1')
    expect(wx.calls[1].url).toBe('https://gw.test/api/v1/me')
  })

  test('an expired session logs in again once and repeats the call', async () => {
    let n = 0
    const wx = fakeWx({ ...LOGIN, 'GET /api/v1/me': () => (n++ === 0 ? [401, { code: 'unauthenticated' }] : [200, { ok: 1 }]) })
    wx.storage.session_token = 'old'
    const api = make(wx)
    expect(await api.call('GET', '/api/v1/me')).toEqual({ ok: 1 })
    expect(wx.calls.map(c => c.url.split('gw.test')[1])).toEqual(['/api/v1/me', '/api/v1/login', '/api/v1/me'])
  })
})

describe('idempotency keys: one per user intent', () => {
  test('a retry after a transient failure reuses the key; nothing twice', async () => {
    let n = 0
    const wx = fakeWx({ 'POST /api/v1/orders': () => (n++ < 2 ? [n === 1 ? 0 : 503, { code: 'service_unavailable' }] : [201, { out_trade_no: 'T1' }]) })
    const api = make(wx)
    expect(await api.call('POST', '/api/v1/orders', { intent: 'order' })).toEqual({ out_trade_no: 'T1' })
    const keys = wx.calls.map(c => c.header['Idempotency-Key'])
    expect(keys).toHaveLength(3)
    expect(new Set(keys).size).toBe(1)
    expect(keys[0]).toMatch(/^[0-9a-f]{32}$/)
  })

  test('the same intent keeps its key across calls (and restarts) until finished', async () => {
    const wx = fakeWx({ 'POST /api/v1/orders': [201, {}] })
    const api = make(wx)
    await api.call('POST', '/api/v1/orders', { intent: 'order' })
    const again = make(wx) // the app restarted: the key is in storage
    await again.call('POST', '/api/v1/orders', { intent: 'order' })
    expect(wx.calls[0].header['Idempotency-Key']).toBe(wx.calls[1].header['Idempotency-Key'])
    again.finishIntent('order')
    await again.call('POST', '/api/v1/orders', { intent: 'order' })
    expect(wx.calls[2].header['Idempotency-Key']).not.toBe(wx.calls[1].header['Idempotency-Key'])
    expect(again.intentKey('a')).not.toBe(again.intentKey('b'))
  })

  test('a refusal is not retried and carries the code, the Chinese message and the details', async () => {
    const wx = fakeWx({ 'POST /api/v1/photos': [429, { code: 'quota_exhausted', message: '今日照片制作次数已用完', details: { reopens_at: 'T' }, request_id: 'r1' }] })
    const api = make(wx)
    await expect(api.upload('/api/v1/photos', 'wxfile://a.jpg', { intent: 'photo:a' })).rejects.toMatchObject({
      code: 'quota_exhausted',
      status: 429,
      message: '今日照片制作次数已用完',
      details: { reopens_at: 'T' },
      requestId: 'r1',
    })
    expect(wx.calls).toHaveLength(1)
  })

  test('without a body message the client has its own; unknown codes get the generic one', async () => {
    const wx = fakeWx({ 'GET /a': [409, { code: 'illegal_transition' }], 'GET /b': [418, { code: 'teapot' }], 'GET /c': [500, 'not json'] })
    const api = make(wx, 0)
    await expect(api.call('GET', '/a')).rejects.toMatchObject({ message: '当前进度不能进行此操作，请刷新后查看下一步。' })
    await expect(api.call('GET', '/b')).rejects.toMatchObject({ code: 'teapot', message: expect.stringContaining('系统繁忙') })
    await expect(api.call('GET', '/c')).rejects.toMatchObject({ code: 'internal_error', status: 500 })
  })

  test('the network away for good ends as network_error after the retries', async () => {
    const wx = fakeWx({ 'GET /x': [0, null] })
    const api = make(wx, 2)
    await expect(api.call('GET', '/x')).rejects.toMatchObject({ code: 'network_error', message: expect.stringContaining('网络') })
    expect(wx.calls).toHaveLength(3)
  })

  test('rate_limited waits retry_after_s and tries again', async () => {
    let n = 0
    const waits = []
    const wx = fakeWx({ 'POST /api/v1/photos': () => (n++ === 0 ? [429, { code: 'rate_limited', details: { retry_after_s: 2.5 } }] : [202, { photo_id: 'p' }]) })
    const api = createApi({ wx, baseUrl: 'https://gw.test', sleep: ms => waits.push(ms) && Promise.resolve() })
    expect(await api.upload('/api/v1/photos', 'f', { intent: 'photo:f' })).toEqual({ photo_id: 'p' })
    expect(waits).toEqual([2500])
  })
})

describe('busy', () => {
  test('409 busy is tried again with the same Idempotency-Key, then answered', async () => {
    let n = 0
    const wx = fakeWx({
      'POST /api/v1/orders': () =>
        n++ === 0 ? [409, { code: 'busy', message: '请求过于集中，请稍后重试。' }] : [201, { order_id: 'o' }],
    })
    const api = createApi({ wx, baseUrl: 'https://gw.test', sleep: () => Promise.resolve() })
    expect(await api.call('POST', '/api/v1/orders', { intent: 'order' })).toEqual({ order_id: 'o' })
    const keys = wx.calls.filter(c => c.url.endsWith('/api/v1/orders')).map(c => c.header['Idempotency-Key'])
    expect(keys).toHaveLength(2)
    expect(keys[0]).toBeTruthy()
    expect(keys[1]).toBe(keys[0])
  })
})

describe('the long poll', () => {
  test('asks with ?wait=N until the scan is decided', async () => {
    let n = 0
    const wx = fakeWx({ 'GET /api/v1/codes/s1': () => [200, n++ < 2 ? { status: 'pending', poll_after_ms: 10 } : { status: 'decoded' }] })
    const api = make(wx)
    expect(await api.waitForScan('s1', { waitSeconds: 20 })).toEqual({ status: 'decoded' })
    expect(wx.calls.map(c => c.url)).toEqual(Array(3).fill('https://gw.test/api/v1/codes/s1?wait=20'))
  })

  test('gives up with timeout after the deadline', async () => {
    let t = 0
    const wx = fakeWx({ 'GET /api/v1/codes/s1': [200, { status: 'pending' }] })
    const api = createApi({ wx, baseUrl: 'https://gw.test', sleep: () => Promise.resolve(), now: () => (t += 1000) })
    await expect(api.waitForScan('s1', { timeoutMs: 3000 })).rejects.toMatchObject({ code: 'timeout' })
  })
})

describe('waiting for a worker: the status long poll', () => {
  test('asks with ?wait&since=the updated_at it has, until the result is there', async () => {
    const views = [{ state: 'submitted', updated_at: 't1' }, { state: 'submitted', updated_at: 't2' }, { state: 'in_review', updated_at: 't3' }]
    const wx = fakeWx({ 'GET /api/v1/application': () => [200, views.shift()] })
    const api = make(wx)
    const view = await api.waitForApplication(v => v.state === 'in_review', { waitSeconds: 20 })
    expect(view.state).toBe('in_review')
    expect(wx.calls.map(c => c.url.split('gw.test')[1])).toEqual([
      '/api/v1/application',
      '/api/v1/application?wait=20&since=t1',
      '/api/v1/application?wait=20&since=t2',
    ])
  })

  test('an unchanged answer at once (no long poll on the gateway) is polled at the interval, then times out', async () => {
    let t = 0
    const waits = []
    const wx = fakeWx({ 'GET /api/v1/application': [200, { state: 'submitted', updated_at: 't1' }] })
    const api = createApi({ wx, baseUrl: 'https://gw.test', now: () => t, sleep: ms => waits.push(ms) && Promise.resolve((t += ms)) })
    await expect(api.waitForApplication(() => false, { intervalMs: 1000, timeoutMs: 3000 })).rejects.toMatchObject({ code: 'timeout' })
    expect(waits).toEqual([1000, 1000, 1000])
  })
})

describe('images behind the session', () => {
  test('downloaded with the Bearer header once per path, then reused', async () => {
    const wx = fakeWx({})
    wx.storage.session_token = 'tok'
    const api = make(wx)
    const first = await api.downloadImage('/api/v1/photos/p1/image')
    expect(await api.downloadImage('/api/v1/photos/p1/image')).toBe(first)
    await api.downloadImage('/api/v1/admission-photo')
    const downloads = wx.calls.filter(c => c.api === 'downloadFile')
    expect(downloads.map(c => c.url)).toEqual(['https://gw.test/api/v1/photos/p1/image', 'https://gw.test/api/v1/admission-photo'])
    expect(downloads[0].header.Authorization).toBe('Bearer tok')
  })

  test('a refused download is not cached and carries the gateway code', async () => {
    let n = 0
    const wx = fakeWx({}, {
      downloadFile(opts) {
        wx.calls.push({ api: 'downloadFile', url: opts.url })
        Promise.resolve().then(() => (n++ === 0 ? opts.success({ statusCode: 410, data: JSON.stringify({ code: 'photo_purged', message: '照片已按保存期限删除。' }) }) : opts.success({ statusCode: 200, tempFilePath: 'wxfile://x' })))
      },
    })
    const api = make(wx)
    await expect(api.downloadImage('/api/v1/photos/p9/image')).rejects.toMatchObject({ code: 'photo_purged', status: 410 })
    expect(await api.downloadImage('/api/v1/photos/p9/image')).toBe('wxfile://x')
  })
})
