// The student journeys of the contract e2e: the real page logic, a Node `wx` over real HTTP, a live stack.
// Each journey records the student-visible wait of every step (tap -> the page shows the answer) and the
// gateway's own processing time in the same interval (its http_request_seconds histogram, summed).
const { createNodeWx, send } = require('./wx-node')
const { MiniProgram } = require('./driver')

class Failed extends Error {}

function expect(cond, message) {
  if (!cond) throw new Failed(message)
}

async function gatewaySeconds(metricsUrl) {
  if (!metricsUrl) return null
  const res = await send('GET', metricsUrl)
  let total = 0
  for (const line of res.body.toString().split('\n')) {
    // Every route's time but the scrape's own.
    if (line.startsWith('http_request_seconds_sum') && !line.includes('route="/metrics"')) total += Number(line.split(' ').pop())
  }
  return total
}

class Operator {
  constructor(gateway, email, password) {
    this.base = `${gateway}/console/api/v1`
    this.email = email
    this.password = password
    this.cookies = {}
  }

  async call(method, p, body) {
    const headers = { cookie: Object.entries(this.cookies).map(([k, v]) => `${k}=${v}`).join('; ') }
    if (method !== 'GET' && this.cookies.console_csrf) headers['x-csrf-token'] = this.cookies.console_csrf
    if (body) headers['content-type'] = 'application/json'
    const res = await send(method, this.base + p, { headers, body: body ? Buffer.from(JSON.stringify(body)) : null })
    for (const c of [].concat(res.headers['set-cookie'] || [])) {
      const [pair] = c.split(';')
      const [k, v] = pair.split('=')
      if (v) this.cookies[k.trim()] = v.trim()
    }
    const text = res.body.toString()
    return { status: res.status, body: text ? JSON.parse(text) : null }
  }

  async decide(applicationId, decision = 'approved') {
    if (!this.cookies.console_session) {
      const login = await this.call('POST', '/login', { email: this.email, password: this.password })
      expect(login.status === 200, `operator login: ${login.status} ${JSON.stringify(login.body)}`)
    }
    const r = await this.call('POST', `/reviews/${applicationId}/decision`, { decision, note: 'client e2e' })
    expect(r.status === 200, `decision: ${r.status} ${JSON.stringify(r.body)}`)
    return r.body
  }
}

class Journey {
  constructor(env, student) {
    this.env = env
    this.student = student
    this.steps = []
    this.calls = []
    this.wx = createNodeWx({ gateway: env.gateway, sandbox: env.sandbox, openid: student.openid, phone: student.phone, log: c => this.calls.push(c) })
    this.mp = new MiniProgram(this.wx, { baseUrl: env.gateway, schoolCode: env.school_code, pollIntervalMs: env.poll_ms || 300 })
  }

  async step(name, fn) {
    const before = await gatewaySeconds(this.env.metrics)
    const calls = this.calls.length
    const t0 = process.hrtime.bigint()
    await fn()
    const ms = Number(process.hrtime.bigint() - t0) / 1e6
    const after = await gatewaySeconds(this.env.metrics)
    const mine = this.calls.slice(calls).filter(c => c.kind === 'gateway')
    this.steps.push({ step: name, ms, gateway_ms: before === null ? null : (after - before) * 1000, calls: mine.length })
  }

  page() {
    return this.mp.page
  }

  async view() {
    return this.mp.api.call('GET', '/api/v1/application')
  }

  async waitView(done, what, timeoutMs = 120000) {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const v = await this.view()
      if (done(v)) return v
      if (Date.now() > deadline) throw new Failed(`waited for ${what}; state ${v.state}`)
      await new Promise(r => setTimeout(r, 300))
    }
  }

  // --- the steps, in the seed's order -----------------------------------------------------------

  async login() {
    await this.step('login', async () => {
      await this.mp.open('/pages/index/index')
      expect(!this.page().data.error, `login: ${this.page().data.error}`)
    })
    await this.step('phone', async () => {
      await this.mp.tap('onPhone', await this.wx.phoneNumberEvent())
      expect(/\*\*\*\*/.test(this.page().data.phone), `phone: ${this.page().data.error}`)
    })
  }

  async consent() {
    await this.step('consent', async () => {
      await this.mp.tap('onStart')
      await this.mp.follow('/pages/notice/index')
      await this.mp.tap('onToggleAgree')
      await this.mp.tap('onContinue')
      await this.mp.follow('/pages/register/index')
    })
  }

  async register(via) {
    const s = this.student
    await this.step('code', async () => {
      for (const [field, value] of [['name', s.name], ['studentNumber', s.student_number], ['idLast4', s.id_last4]]) {
        await this.mp.tap('onInput', { currentTarget: { dataset: { field } }, detail: { value } })
      }
      if (via === 'album') {
        this.wx.picks.album.push(s.code_png)
        await this.mp.tap('onUpload')
      } else {
        this.wx.picks.scan.push(s.qr_text)
        await this.mp.tap('onScan')
      }
      const p = this.page()
      expect(p.data.phase !== 'rejected', `code refused: ${JSON.stringify(p.data.rejection)}`)
      await this.mp.follow('/pages/confirm/index')
    })
  }

  async confirm() {
    await this.step('confirm', async () => {
      expect(this.page().data.student && this.page().data.student.masked_name, 'confirm page without the decoded student')
      await this.mp.tap('onConfirm')
      await this.mp.follow('/pages/pay/index')
    })
  }

  async pay({ cancelFirst = false } = {}) {
    if (cancelFirst) {
      this.wx.behaviour.cancelPayments = 1
      await this.step('pay_cancelled', async () => {
        await this.mp.tap('onPay')
        expect(/取消支付/.test(this.page().data.error), `after a cancel the page says: ${this.page().data.error}`)
      })
    }
    await this.step('pay', async () => {
      await this.mp.tap('onPay')
      await this.mp.follow('/pages/guide/index')
    })
  }

  /** Take a photo with the camera (helper mode or not) and wait for the standardisation result. */
  async photo(file, { helper = false, expectStatus = 'standardized' } = {}) {
    await this.step('photo', async () => {
      await this.mp.tap(helper ? 'onHelper' : 'onSelf')
      await this.mp.follow('/pages/camera/index')
      this.wx.picks.camera.push(file)
      await this.mp.tap('onTake')
      await this.mp.tap('onConfirm')
      expect(!this.page().data.error, `upload: ${this.page().data.error}`)
    })
    await this.step('standardise', async () => {
      await this.mp.follow('/pages/result/index')
    })
    const p = this.page()
    expect(p.data.status === expectStatus, `photo ${p.data.status}, expected ${expectStatus}: ${JSON.stringify(p.data.reasons)} ${p.data.error}`)
    if (expectStatus === 'rejected') {
      expect(p.data.reasons.length && p.data.reasons.every(r => /[\u4e00-\u9fa5]/.test(r.message)), 'refusal reasons in Chinese')
      await this.mp.tap('onRetake')
      await this.mp.follow('/pages/guide/index')
    }
    return p.data
  }

  async submit(expectState = 'in_review') {
    await this.step('submit', async () => {
      await this.mp.tap('onSubmit')
      await this.mp.follow('/pages/submit/index')
      expect(this.page().data.admission && this.page().data.photo, 'both photos shown before submitting')
      await this.mp.tap('onToggleConfirm')
      await this.mp.tap('onSubmit')
      await this.mp.follow('/pages/status/index')
    })
    const v = this.page().data.view
    expect(v.state === expectState, `after the comparison: ${v.state}, expected ${expectState} (${JSON.stringify(v.match)})`)
    return v
  }

  async approvedByOperator(operator) {
    const view = this.page().data.view
    await operator.decide(view.application_id)
    await this.step('review_seen', async () => {
      const v = await this.waitView(x => x.state === 'approved', 'the approval')
      await this.mp.tap('refresh')
      expect(this.page().data.stateLabel === '审核通过', `status page shows ${this.page().data.stateLabel}`)
      return v
    })
  }

  async notified() {
    const deadline = Date.now() + 60000
    for (;;) {
      const res = await send('GET', `${this.env.sandbox}/sandbox/messages`)
      const messages = JSON.parse(res.body.toString()).messages.filter(m => m.touser === this.student.openid)
      const review = messages.find(m => /review/.test(m.template_id))
      if (review) return messages
      if (Date.now() > deadline) throw new Failed('no review-result subscribe message reached WeChat')
      await new Promise(r => setTimeout(r, 300))
    }
  }

  async ordersOfMine() {
    const res = await send('GET', `${this.env.sandbox}/sandbox/orders`)
    return JSON.parse(res.body.toString()).orders.filter(o => o.payer.openid === this.student.openid)
  }

  async withdrawAndRetake(file) {
    await this.step('withdraw', async () => {
      await this.mp.tap('onWithdraw')
      expect(this.page().data.view.state === 'withdrawn', `after withdrawing: ${this.page().data.view.state} ${this.page().data.error}`)
      await this.mp.tap('onRetake')
      await this.mp.follow('/pages/guide/index')
    })
    await this.photo(file)
  }
}

// --- scenarios ---------------------------------------------------------------------------------

const SCENARIOS = {
  // Scan the code, pay, camera photo, submit, operator approves: 审核通过 and the subscribe message.
  async happy(j, env, op) {
    await j.login()
    await j.consent()
    await j.register('scan')
    await j.confirm()
    await j.pay()
    await j.photo(j.student.photos[0])
    await j.submit()
    await j.approvedByOperator(op)
    await j.notified()
  },
  // The code from the album; a photo the quality check refuses (cap on: 免冠), retaken in helper mode.
  async quality_retake(j, env, op) {
    await j.login()
    await j.consent()
    await j.register('album')
    await j.confirm()
    await j.pay()
    await j.photo(j.student.bad_photo, { expectStatus: 'rejected' })
    await j.photo(j.student.photos[0], { helper: true })
    await j.submit()
    await j.approvedByOperator(op)
    await j.notified()
  },
  // The roster's admission photo is someone else: the comparison fails, the retake fails too, the case
  // goes to the registrar (the seed's 学籍部门), who approves through the console.
  async match_retake(j, env, op) {
    await j.login()
    await j.consent()
    await j.register('scan')
    await j.confirm()
    await j.pay()
    await j.photo(j.student.photos[0])
    const failed = await j.submit('match_failed')
    expect(failed.last_failure && /80/.test(failed.last_failure.message), 'the failed comparison says why (80)')
    expect(j.page().data.canRetake, 'the retake path is offered')
    await j.mp.tap('onRetake')
    await j.mp.follow('/pages/guide/index')
    await j.photo(j.student.photos[1])
    await j.submit('registrar_review')
    await j.approvedByOperator(op)
    await j.notified()
  },
  // The first payment is cancelled in the cashier; paying again uses the same order: one charge.
  async pay_cancel(j, env, op) {
    await j.login()
    await j.consent()
    await j.register('scan')
    await j.confirm()
    await j.pay({ cancelFirst: true })
    const orders = await j.ordersOfMine()
    expect(orders.length === 1 && orders[0].trade_state === 'SUCCESS', `one order, paid once: ${JSON.stringify(orders.map(o => o.trade_state))}`)
    await j.photo(j.student.photos[0])
    await j.submit()
    await j.approvedByOperator(op)
    await j.notified()
  },
  // Withdraw while waiting for review, retake, resubmit: the free resubmissions are unchanged.
  async withdraw(j, env, op) {
    await j.login()
    await j.consent()
    await j.register('scan')
    await j.confirm()
    await j.pay()
    await j.photo(j.student.photos[0])
    const first = await j.submit()
    await j.withdrawAndRetake(j.student.photos[1])
    const again = await j.submit()
    expect(again.resubmissions_left === first.resubmissions_left, `resubmissions ${first.resubmissions_left} -> ${again.resubmissions_left}`)
    await j.approvedByOperator(op)
    await j.notified()
  },
}

async function runJourney(env, student, operator) {
  const j = new Journey(env, student)
  const started = Date.now()
  let error = null
  try {
    await SCENARIOS[student.scenario](j, env, operator)
  } catch (err) {
    error = err instanceof Failed ? err.message : `${err && err.stack}`
  } finally {
    j.mp.close()
  }
  let finalState = null
  try {
    finalState = (await j.view()).state
  } catch (err) {
    finalState = null
  }
  const gatewayCalls = j.calls.filter(c => c.kind === 'gateway')
  return {
    scenario: student.scenario,
    passed: !error && finalState === 'approved',
    final_state: finalState,
    error,
    seconds: (Date.now() - started) / 1000,
    steps: j.steps,
    http_calls: gatewayCalls.length,
    bytes_sent: gatewayCalls.reduce((n, c) => n + c.sent, 0),
    bytes_received: gatewayCalls.reduce((n, c) => n + c.received, 0),
    wechat_calls: j.calls.length - gatewayCalls.length,
    subscribe_requests: j.wx.events.filter(e => e.api === 'requestSubscribeMessage').length,
    calls: gatewayCalls.map(c => ({ method: c.method, path: c.path.split('?')[0], status: c.status, ms: c.ms, sent: c.sent, received: c.received })),
  }
}

module.exports = { SCENARIOS, Operator, Journey, runJourney }
