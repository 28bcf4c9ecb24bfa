// Runs the real page logic (logic/*.js) as WeChat's Page() would: data, setData, lifecycle, taps, and
// the navigation the logic asks for. One student's mini-program.
const path = require('path')
const { createApi } = require('../core/api')
const config = require('../config')

function setPath(target, key, value) {
  const parts = key.replace(/\[(\d+)\]/g, '.$1').split('.')
  let node = target
  for (const part of parts.slice(0, -1)) {
    if (typeof node[part] !== 'object' || node[part] === null) node[part] = {}
    node = node[part]
  }
  node[parts[parts.length - 1]] = value
}

function instantiate(definition) {
  const page = { data: JSON.parse(JSON.stringify(definition.data || {})) }
  for (const [k, v] of Object.entries(definition)) if (typeof v === 'function') page[k] = v.bind(page)
  page.setData = patch => {
    for (const [k, v] of Object.entries(patch)) setPath(page.data, k, v === undefined ? v : JSON.parse(JSON.stringify(v)))
  }
  return page
}

class MiniProgram {
  constructor(wx, { baseUrl, schoolCode, pollIntervalMs = 300 }) {
    this.wx = wx
    this.store = {}
    this.config = Object.assign({}, config, { baseUrl, schoolCode, pollIntervalMs, longPollSeconds: 20 })
    this.api = createApi({ wx, baseUrl, retries: 3 })
    this.deps = { wx, api: this.api, store: this.store, config: this.config }
    this.page = null
    this.route = ''
  }

  /** Open a page (e.g. after a navigation): onLoad(query) then onShow, awaited. */
  async open(url) {
    const [route, query] = url.split('?')
    const name = route.split('/')[2]
    if (this.page && this.page.onUnload) this.page.onUnload()
    this.route = route
    this.page = instantiate(require(path.join(__dirname, '..', 'logic', name))(this.deps))
    const q = Object.fromEntries(new URLSearchParams(query || ''))
    if (this.page.onLoad) await this.page.onLoad(q)
    if (this.page.onShow) await this.page.onShow()
    return this.page
  }

  /** Follow the last navigation the page asked for; fails if it asked for none or another page. */
  async follow(expected) {
    const url = this.wx.navigations.pop()
    if (!url) throw new Error(`${this.route}: no navigation (error: ${this.page && this.page.data.error})`)
    if (expected && !url.startsWith(expected)) throw new Error(`${this.route}: went to ${url}, expected ${expected} (error: ${this.page.data.error})`)
    return this.open(url)
  }

  /** A tap on a handler, awaited like the student waits for the page to answer. */
  async tap(handler, event = {}) {
    if (!this.page[handler]) throw new Error(`${this.route} has no ${handler}`)
    await this.page[handler](Object.assign({ currentTarget: { dataset: {} }, detail: {} }, event))
    return this.page
  }

  close() {
    if (this.page && this.page.onUnload) this.page.onUnload()
    if (this.page && this.page.onHide) this.page.onHide()
  }
}

module.exports = { MiniProgram, instantiate }
